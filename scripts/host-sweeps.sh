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
#   VALGRIND=1 scripts/host-sweeps.sh       each sweep once under valgrind
#                                           memcheck (VG_STRIDE: every Kth
#                                           failure point, default 1)
# Needs gcc, the liblua5.X-dev and libluajit-5.1-dev headers, and
# build/<lua51|lua52|lua53|lua54|luajit>/select.so (./make.sh build, or
# scripts/build-so.sh; a missing one is built here).
#
# A sweep runs every failure point inside one host process. When the host
# crashes (an abort, a signal), the crash is recorded with its N and the
# place of the injection, and the sweep goes on from N+1 in a new process.
# Failures are grouped by place: one "not ok" line per place, with how many
# failure points hit it and the first N (rerun it with N=<that N>).
set -u
cd "$(dirname "$0")/.."
root=$(pwd)
out=build/host
mkdir -p "$out"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
max_crashes=${MAX_CRASHES:-400}

if [ "$#" -eq 0 ]; then set -- lua5.1 lua5.2 lua5.3 lua5.4 luajit; fi
modes=${MODES:-alloc gc}
stride=${VG_STRIDE:-1}

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

vg() {
  if [ "${VALGRIND:-0}" = 1 ]; then
    valgrind --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite \
      --show-leak-kinds=definite --track-fds=no --num-callers=30 \
      --suppressions=scripts/valgrind.supp --log-file="$vglog" "$@"
  else
    "$@"
  fi
}

# One sweep: interpreter, mode. Restarts after a crash.
sweep() {
  lua=$1 mode=$2
  f=$(feature_of "$lua")
  host="$out/allocfail-$lua"
  so="build/$f/select.so"
  from=1 crashes=0 runs=0 errors=0 successes=0 in_module=0 injected=0 bad=0 heap=0 total=
  fails="$tmp/fails-$lua-$mode"
  : > "$fails"
  vg_bad=0 vg_runs=0
  while :; do
    progress="$tmp/progress"
    : > "$progress"
    vglog="$tmp/vg-$lua-$mode-$from.log"
    extra=""
    if [ -n "${N:-}" ]; then extra="--n $N --verbose"; else extra="--from $from --stride $stride"; fi
    # Each run in a forked child (a crash is one result among others), but
    # not under valgrind: there a crash ends the process and the loop here
    # starts a new one after it.
    if [ "${VALGRIND:-0}" != 1 ]; then extra="$extra --fork"; fi
    if [ "${VERBOSE:-0}" = 1 ]; then extra="$extra --verbose"; fi
    rc=0
    # shellcheck disable=SC2086
    ALLOCFAIL_PROGRESS=$progress vg "$host" --mode "$mode" --cpath "$root/build/$f/?.so" \
      --lpath "$root/lua/?.lua;$root/lua/?/init.lua" $extra tests/host/workload.lua \
      > "$tmp/out" 2> "$tmp/err" || rc=$?
    if [ "${N:-}" != "" ] || [ "${VERBOSE:-0}" = 1 ]; then cat "$tmp/out" "$tmp/err"; fi
    grep '^FAIL ' "$tmp/out" >> "$fails"
    summary=$(grep -E '^[a-z0-9.]+ (alloc|gc): [0-9]+ runs' "$tmp/out" | tail -1)
    if [ -n "$summary" ]; then
      counts=$(printf '%s\n' "$summary" | sed -E 's/.*: ([0-9]+) runs .*clean run: ([0-9]+) .*, ([0-9]+) injected, ([0-9]+) clean errors, ([0-9]+) successes, ([0-9]+) raised in select.so, ([0-9]+) bad, ([0-9]+) interpreter.*/\1 \3 \4 \5 \6 \7 \8/')
      total=$(printf '%s\n' "$summary" | sed -n 's/.*clean run: \([0-9]*\) allocations.*/\1/p')
    else
      # crashed: the counts before the run that crashed, from the progress file
      counts=$(sed -n 's/^counts //p' "$progress" | tail -1)
    fi
    if [ -n "$counts" ]; then
      # shellcheck disable=SC2086
      set -- $counts
      runs=$((runs + $1)); injected=$((injected + $2)); errors=$((errors + $3))
      successes=$((successes + $4)); in_module=$((in_module + $5)); bad=$((bad + $6))
      heap=$((heap + $7))
    fi
    grep '^# ' "$tmp/out" >> "$tmp/notes-$lua-$mode"
    if [ "${VALGRIND:-0}" = 1 ]; then
      vg_runs=$((vg_runs + 1))
      lost=$(sed -n 's/.*definitely lost: \([0-9,]*\) bytes.*/\1/p' "$vglog" | tail -1)
      errs=$(sed -n 's/.*ERROR SUMMARY: \([0-9]*\) errors.*/\1/p' "$vglog" | tail -1)
      if [ "${errs:-x}" != 0 ] || [ "${lost:-0}" != 0 ]; then
        vg_bad=$((vg_bad + 1))
        cp "$vglog" "/tmp/host-sweep-valgrind-$lua-$mode-$from.log"
        echo "# valgrind: ${errs:-?} errors, ${lost:-0} bytes definitely lost; log /tmp/host-sweep-valgrind-$lua-$mode-$from.log"
      fi
    fi
    if [ -n "$summary" ] || [ -n "${N:-}" ]; then break; fi
    # No summary: the host crashed (or valgrind stopped it).
    n=$(sed -n 's/^run \([0-9]*\)$/\1/p' "$progress" | tail -1)
    where=$(sed -n 's/^injected at //p' "$progress" | head -1)
    raised=$(sed -n 's/^finalizer raised in //p' "$progress" | head -1)
    if [ -n "$raised" ]; then where="finalizer raised in $raised"; else where="injected at ${where:-?}"; fi
    why=$(grep -v '^==' "$tmp/err" | tail -1)
    [ -z "$why" ] && why="exit status $rc"
    if [ -z "$n" ]; then
      echo "not ok - $lua $mode sweep: host failed before the first run: $why"
      cat "$tmp/out" "$tmp/err" | tail -5
      return
    fi
    echo "CRASH $lua $mode N=$n: $why ($where)" >> "$fails"
    crashes=$((crashes + 1)); runs=$((runs + 1)); injected=$((injected + 1))
    if [ "$crashes" -ge "$max_crashes" ]; then
      echo "not ok - $lua $mode sweep: gave up after $crashes crashes (N=$n)"
      break
    fi
    from=$((n + stride))
  done
  # One line per place: the kind of failure and where it was injected, with
  # the number of failure points that hit it and the first N.
  nfail=$(wc -l < "$fails")
  if [ "$nfail" -gt 0 ]; then
    sed -E 's/^(FAIL|CRASH) ([^ ]+) ([^ ]+) N=([0-9]+): (.*)$/\1|\4|\5/' "$fails" |
      sed -E 's/\[descriptors: [0-9]+ before the run, [0-9]+ after\]/[descriptors leaked]/' |
      awk -F'|' -v lua="$lua" -v mode="$mode" '
        { place = $3; sub(/ < .*\)$/, ")", place)
          key = ($1 == "CRASH" || $3 ~ /^crashed/ ? "crash" : "bad end") "|" place
          if (!(key in first)) { first[key] = $2; order[++k] = key } count[key]++ }
        END { for (i = 1; i <= k; i++) { split(order[i], p, "|");
          printf "not ok - %s %s sweep: %s at %d failure point(s), first N=%s: %s\n",
            lua, mode, p[1], count[order[i]], first[order[i]], p[2] } }'
  fi
  note=""
  if [ "$stride" != 1 ]; then note=" (every ${stride}th failure point)"; fi
  if [ "$mode" = gc ]; then
    detail="$runs runs$note, $injected finalizer errors raised ($in_module inside select.so calls$( [ "$lua" = lua5.4 ] && echo ', turned into warnings by 5.4')), $errors clean errors, $successes successes"
  else
    detail="$runs failure points$note (clean run: ${total:-?} allocations), $errors clean errors, $successes successes"
  fi
  if [ "$heap" -gt 0 ]; then
    detail="$detail; $heap runs where the interpreter itself kept heap blocks after lua_close (not counted)"
  fi
  if [ "$crashes" -gt 0 ] || [ "$bad" -gt 0 ]; then
    echo "not ok - $lua $mode sweep: $crashes crashes, $bad bad ends; $detail"
  else
    echo "ok - $lua $mode sweep: $detail"
  fi
  if [ "${VALGRIND:-0}" = 1 ]; then
    if [ "$vg_bad" = 0 ]; then
      echo "ok - $lua $mode sweep under valgrind: 0 errors, 0 bytes definitely lost ($vg_runs process(es))"
    else
      echo "not ok - $lua $mode sweep under valgrind: $vg_bad of $vg_runs process(es) with errors or leaks"
    fi
  fi
}

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
    vg "$out/threads-$lua" "$root/build/$f/?.so" > "$tmp/out" 2>&1 || rc=$?
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
