#!/bin/sh
# Allocation-failure and finalizer-error sweeps of select.so from a C host
# (tests/host/allocfail.c running tests/host/workload.lua), for Lua 5.1-5.4
# and LuaJIT, and the two-threads signal-mask test (tests/host/threads.c).
# Prints one "ok ..." or "not ok ..." line per check (make.sh counts them).
#
#   scripts/host-sweeps.sh                  every interpreter, both sweeps, threads
#   scripts/host-sweeps.sh lua5.1 luajit    some interpreters
#   N=123 scripts/host-sweeps.sh lua5.4     one failure point alone, verbose
#   MODES=gc scripts/host-sweeps.sh         only the finalizer sweep (or alloc)
#   VERBOSE=1 scripts/host-sweeps.sh ...    every run's outcome (--verbose)
#   VALGRIND=1 scripts/host-sweeps.sh       also each sweep once more under
#                                           valgrind memcheck, in one process
#                                           per interpreter and sweep, every
#                                           VG_STRIDE-th failure point (10)
# Needs gcc, the liblua5.X-dev and libluajit-5.1-dev headers, and
# build/<lua51|lua52|lua53|lua54|luajit>/select.so (./make.sh build, or
# scripts/build-so.sh; a missing one is built here).
#
# A sweep runs every failure point in one host process, each in a forked
# child, so that a crash (an abort, a signal) is one result among others,
# reported with its N and the place of the injection. Failures are grouped
# by kind and innermost frame: one "not ok" line per group, with how many
# failure points hit it and the first N (rerun it alone with N=<that N>;
# within one build the failure points are reproducible).
set -u
cd "$(dirname "$0")/.."
root=$(pwd)
out=build/host
mkdir -p "$out"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

if [ "$#" -eq 0 ]; then set -- lua5.1 lua5.2 lua5.3 lua5.4 luajit; fi
modes=${MODES:-alloc gc}
stride=${VG_STRIDE:-10}

feature_of() {
  case $1 in luajit) echo luajit ;; lua5.*) echo "lua$(echo "$1" | tr -d 'lua.')" ;; esac
}

flags_of() {
  case $1 in
    luajit) echo "$(pkg-config --cflags luajit) -- $(pkg-config --libs luajit)" ;;
    *) v=${1#lua}; echo "-I/usr/include/lua$v -- -llua$v" ;;
  esac
}

build_host() { # lua source binary
  bh_flags=$(flags_of "$1")
  cflags=${bh_flags%% -- *}
  libs=${bh_flags#* -- }
  # shellcheck disable=SC2086
  gcc -std=gnu99 -O1 -g -Wall -Wextra $cflags -o "$3" "$2" $libs -ldl -lpthread
}

vgrun() { # log-file command...
  log=$1; shift
  valgrind --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite \
    --show-leak-kinds=definite --track-fds=no --num-callers=40 \
    --suppressions=scripts/valgrind.supp --suppressions=tests/host/valgrind.supp \
    --log-file="$log" "$@"
}

# Summarises a valgrind log: its error count, bytes definitely lost, and one
# "# ..." line per loss record or error naming the first frames of select.so.
vg_summary() { # log label
  errs=$(sed -n 's/.*ERROR SUMMARY: \([0-9]*\) errors.*/\1/p' "$1" | tail -1)
  lost=$(sed -n 's/.*definitely lost: \([0-9,]*\) bytes.*/\1/p' "$1" | tail -1)
  awk -v label="$2" '
    function flush() { if (head != "") printf "# %s: %s at %s\n", label, head, (where == "" ? "?" : where); head = ""; where = ""; n = 0 }
    /definitely lost in loss record/ { flush(); sub(/^==[0-9]+== /, ""); sub(/ in loss record.*/, ""); head = $0; next }
    /^==[0-9]+== (Invalid|Conditional|Use of uninit|Syscall param|Mismatched|Source and dest)/ { flush(); sub(/^==[0-9]+== /, ""); head = $0; next }
    head != "" && /^==[0-9]+==    (at|by) / && / select::/ && n < 3 {
      line = $0; sub(/.*(at|by) 0x[0-9A-F]+: /, "", line); sub(/ \(.*[\/ ]/, " (", line)
      if (line ~ /core::panic|catch_unwind|call_once|stack::call/) next
      where = where (where == "" ? "" : " < ") line; n++ }
    /^==[0-9]+== $/ { if (head != "" && where != "") flush() }
    END { flush() }' "$1" | sort | uniq -c | sed 's/^ *\([0-9]*\) # /# (x\1) /' | head -40
}

# One sweep: interpreter, mode; each failure point in a forked child.
sweep() {
  lua=$1 mode=$2
  f=$(feature_of "$lua")
  host="$out/allocfail-$lua"
  fails="$tmp/fails-$lua-$mode"
  skip="$tmp/skip-$lua-$mode"
  : > "$fails"; : > "$skip"
  extra="--from 1"
  if [ -n "${N:-}" ]; then extra="--n $N --verbose"; fi
  if [ "${VERBOSE:-0}" = 1 ]; then extra="$extra --verbose"; fi
  rc=0
  # shellcheck disable=SC2086
  "$host" --fork --mode "$mode" --cpath "$root/build/$f/?.so" \
    --lpath "$root/lua/?.lua;$root/lua/?/init.lua" $extra tests/host/workload.lua \
    > "$tmp/out" 2> "$tmp/err" || rc=$?
  if [ -n "${N:-}" ] || [ "${VERBOSE:-0}" = 1 ]; then cat "$tmp/out" "$tmp/err"; fi
  grep '^FAIL ' "$tmp/out" >> "$fails"
  sed -n 's/^FAIL [^ ]* [^ ]* N=\([0-9]*\): crashed.*/\1/p' "$fails" > "$skip"
  if [ "${VERBOSE:-0}" = 1 ]; then grep '^# ' "$tmp/out"; fi
  summary=$(grep -E '^[a-z0-9.]+ (alloc|gc): [0-9]+ runs' "$tmp/out" | tail -1)
  if [ -z "$summary" ]; then
    echo "not ok - $lua $mode sweep: the host stopped (status $rc): $(tail -1 "$tmp/err")"
    tail -3 "$tmp/out"
    return
  fi
  # shellcheck disable=SC2046
  set -- $(printf '%s\n' "$summary" | sed -E 's/.*: ([0-9]+) runs .*clean run: ([0-9]+) .*, ([0-9]+) injected, ([0-9]+) clean errors, ([0-9]+) successes, ([0-9]+) raised in select.so, ([0-9]+) bad, ([0-9]+) interpreter.*/\1 \2 \3 \4 \5 \6 \7 \8/')
  runs=$1 total=$2 injected=$3 errors=$4 successes=$5 in_module=$6 bad=$7 heap=$8
  crashes=$(wc -l < "$skip")
  # One line per place: the kind of failure and the innermost frame where it
  # was injected, with the number of failure points and the first N.
  if [ -s "$fails" ]; then
    sed -E 's/^FAIL ([^ ]+) ([^ ]+) N=([0-9]+): (.*)$/\3|\4/' "$fails" |
      sed -E 's/\[descriptors: [0-9]+ before the run, [0-9]+ after\]/[descriptors leaked]/' |
      awk -F'|' -v lua="$lua" -v mode="$mode" '
        { place = $2; sub(/ < .*\)$/, ")", place)
          key = ($2 ~ /^crashed/ ? "crash" : "bad end") "|" place
          if (!(key in first)) { first[key] = $1; order[++k] = key } count[key]++ }
        END { for (i = 1; i <= k; i++) { split(order[i], p, "|");
          printf "not ok - %s %s sweep: %s at %d failure point(s), first N=%s: %s\n",
            lua, mode, p[1], count[order[i]], first[order[i]], p[2] } }'
  fi
  if [ "$mode" = gc ]; then
    detail="$runs runs, $injected finalizer errors raised ($in_module inside select.so calls$( [ "$lua" = lua5.4 ] && echo ', turned into warnings by 5.4')), $errors clean errors, $successes successes"
  else
    detail="$runs failure points (clean run: $total allocations), $errors clean errors, $successes successes"
  fi
  if [ "$heap" -gt 0 ]; then
    detail="$detail; $heap runs where the interpreter itself kept heap blocks after lua_close (not counted)"
  fi
  if [ "$bad" -gt 0 ]; then
    echo "not ok - $lua $mode sweep: $bad bad ends ($crashes crashes); $detail"
  else
    echo "ok - $lua $mode sweep: $detail"
  fi
  if [ "${VALGRIND:-0}" = 1 ] && [ -z "${N:-}" ]; then vg_sweep "$lua" "$mode"; fi
}

# The same sweep in one process under valgrind memcheck, every VG_STRIDE-th
# failure point, leaving out those that crashed above (a crash would end the
# process; should one crash anyway, a new process goes on after it).
vg_sweep() {
  lua=$1 mode=$2
  from=1 procs=0 vbad=0 vcrash=0 vruns=0
  : > "$tmp/vgnotes"
  while :; do
    procs=$((procs + 1))
    progress="$tmp/progress"
    : > "$progress"
    log="$tmp/vg-$lua-$mode-$procs.log"
    rc=0
    ALLOCFAIL_PROGRESS=$progress vgrun "$log" "$host" --mode "$mode" --cpath "$root/build/$f/?.so" \
      --lpath "$root/lua/?.lua;$root/lua/?/init.lua" --from "$from" --stride "$stride" \
      --skip "$skip" tests/host/workload.lua > "$tmp/vgout" 2>&1 || rc=$?
    summary=$(grep -E '^[a-z0-9.]+ (alloc|gc): [0-9]+ runs' "$tmp/vgout" | tail -1)
    if [ -n "$summary" ]; then
      vg_summary "$log" "$lua $mode valgrind" >> "$tmp/vgnotes"
    else
      # A process that crashed (reported by the forked sweep) never closed
      # its state: only errors other than leaks count.
      errs=$(( $(sed -n 's/.*ERROR SUMMARY: \([0-9]*\) errors.*/\1/p' "$log" | tail -1) \
        - $(grep -c 'definitely lost in loss record' "$log") ))
      lost=0
    fi
    if [ "${errs:-x}" != 0 ] || [ "${lost:-0}" != 0 ]; then
      vbad=$((vbad + 1))
      cp "$log" "/tmp/host-sweep-valgrind-$lua-$mode-$procs.log"
      echo "# valgrind ($lua $mode, process $procs): ${errs:-?} errors, ${lost:-0} bytes definitely lost; log /tmp/host-sweep-valgrind-$lua-$mode-$procs.log"
    fi
    if [ -n "$summary" ]; then
      vruns=$((vruns + $(printf '%s\n' "$summary" | sed -n 's/.*: \([0-9]*\) runs.*/\1/p')))
      break
    fi
    n=$(sed -n 's/^run \([0-9]*\)$/\1/p' "$progress" | tail -1)
    if [ -z "$n" ]; then echo "# valgrind ($lua $mode): the host stopped before its first run"; break; fi
    vruns=$((vruns + $(sed -n 's/^counts \([0-9]*\) .*/\1/p' "$progress" | tail -1) + 1))
    vcrash=$((vcrash + 1))
    # Failure points can shift by a few between a forked child and one
    # process (LuaJIT): a crash here is one the forked sweep reported.
    echo "# valgrind ($lua $mode): crash at N=$n, a new process goes on after it"
    [ "$vcrash" -ge 20 ] && break
    from=$((n + stride))
  done
  cat "$tmp/vgnotes"
  what="$vruns failure points (every ${stride}th; $(wc -l < "$skip") that crashed above left out), $procs process(es)"
  if [ "$vcrash" -gt 0 ]; then what="$what, $vcrash crash(es) (see the forked sweep)"; fi
  if [ "$vbad" = 0 ]; then
    echo "ok - $lua $mode sweep under valgrind: 0 errors, 0 bytes definitely lost; $what"
  else
    echo "not ok - $lua $mode sweep under valgrind: errors or leaks in $vbad process(es); $what"
  fi
}

main() {
for lua in "$@"; do
  f=$(feature_of "$lua")
  if [ ! -f "build/$f/select.so" ]; then
    scripts/build-so.sh "$lua" "build/$f" release || { echo "not ok - $lua: cannot build select.so"; continue; }
  fi
  if ! build_host "$lua" tests/host/allocfail.c "$out/allocfail-$lua" 2> "$tmp/cc"; then
    echo "not ok - $lua: cannot build the host"; tail -5 "$tmp/cc"; continue
  fi
  for mode in $modes; do sweep "$lua" "$mode"; done
done

if [ -z "${N:-}" ] && [ -f tests/host/threads.c ] && [ "${THREADS:-1}" = 1 ]; then
  # lua5.4 when it is among those asked for, else the first one
  lua=$1
  for a in "$@"; do [ "$a" = lua5.4 ] && lua=$a; done
  f=$(feature_of "$lua")
  if build_host "$lua" tests/host/threads.c "$out/threads-$lua" 2> "$tmp/cc"; then
    vglog="$tmp/vg-threads.log"
    rc=0
    if [ "${VALGRIND:-0}" = 1 ]; then
      vgrun "$vglog" "$out/threads-$lua" "$root/build/$f/?.so" > "$tmp/out" 2>&1 || rc=$?
    else
      "$out/threads-$lua" "$root/build/$f/?.so" > "$tmp/out" 2>&1 || rc=$?
    fi
    grep -E '^(ok|not ok|#)' "$tmp/out"
    if [ "$rc" != 0 ] && ! grep -q '^not ok' "$tmp/out"; then
      echo "not ok - threads ($lua): exit status $rc"; tail -5 "$tmp/out"
    fi
    if [ "${VALGRIND:-0}" = 1 ]; then
      lost=$(sed -n 's/.*definitely lost: \([0-9,]*\) bytes.*/\1/p' "$vglog" | tail -1)
      errs=$(sed -n 's/.*ERROR SUMMARY: \([0-9]*\) errors.*/\1/p' "$vglog" | tail -1)
      if [ "${errs:-x}" = 0 ] && [ "${lost:-0}" = 0 ]; then
        echo "ok - threads ($lua) under valgrind: 0 errors, 0 bytes definitely lost"
      else
        cp "$vglog" /tmp/host-sweep-valgrind-threads.log
        echo "not ok - threads ($lua) under valgrind: ${errs:-?} errors, ${lost:-0} bytes definitely lost (/tmp/host-sweep-valgrind-threads.log)"
      fi
    fi
  else
    echo "not ok - threads: cannot build the host"; tail -5 "$tmp/cc"
  fi
fi
}

main "$@" | tee "$tmp/all"
! grep -q '^not ok' "$tmp/all"
