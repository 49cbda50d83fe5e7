#!/bin/sh
# lua-select benchmark suite: `sh bench/run.sh` from anywhere (./make.sh bench
# builds first, then runs this). Not part of the test suite.
#
#   sh bench/run.sh                 full run (~8-10 min); writes bench/RESULTS.md
#   BENCH_QUICK=1 sh bench/run.sh   quick run (~1-2 min); report in bench/out/ only
#   BENCH_ONLY=compat sh bench/run.sh   only the C1 rows (select.compat against
#                                   socket.select, ~1 min); report in bench/out/ only
#
# Every driver runs BENCH_ROUNDS times (rounds interleave the drivers, so a
# burst of load from elsewhere hits one round, not one implementation); in
# each round a figure is the median of BENCH_RUNS batches of ~BENCH_BATCH_MS
# ms; the report takes the median over the rounds. Raw figures and the
# report go to bench/out/.
set -u
cd "$(dirname "$0")/.."
ROOT=$(pwd)
OUT=$ROOT/bench/out
mkdir -p "$OUT/bin"
RAW=$OUT/raw.txt
: >"$RAW"

say() { printf '== %s\n' "$*" >&2; }

QUICK=${BENCH_QUICK:-0}
[ "$QUICK" = "" ] && QUICK=0
if [ "$QUICK" != 0 ]; then
  : "${BENCH_ROUNDS:=3}" "${BENCH_RUNS:=3}" "${BENCH_BATCH_MS:=10}"
else
  : "${BENCH_ROUNDS:=5}" "${BENCH_RUNS:=5}" "${BENCH_BATCH_MS:=40}"
fi
export BENCH_RUNS BENCH_BATCH_MS

# --- what the suite needs ------------------------------------------------
PKGS="lua5.1 lua5.3 lua5.4 luajit liblua5.4-dev libluajit-5.1-dev lua-socket lua-posix lua-luv lua-cqueues gcc"
missing=""
for p in $PKGS; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
done
command -v python3 >/dev/null 2>&1 || missing="$missing python3"
if [ -n "$missing" ]; then
  if [ "$(id -u)" = 0 ]; then
    say "installing:$missing"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq && apt-get install -y -qq $missing >/dev/null || {
      echo "bench: could not install:$missing" >&2
      exit 1
    }
  else
    echo "bench: missing Debian packages; run: sudo apt-get update && sudo apt-get install -y$missing" >&2
    exit 1
  fi
fi
if [ ! -f build/lua51/select.so ] || [ ! -f build/lua54/select.so ] || [ ! -f build/luajit/select.so ]; then
  say "building the module (./make.sh build)"
  ./make.sh build >&2 || exit 1
fi

# A private copy of the module: a rebuild during the run (build-so.sh copies
# over build/*/select.so in place) must not change or crash what is measured.
for tag in lua51 lua54 luajit; do
  mkdir -p "$OUT/so/$tag"
  cp "build/$tag/select.so" "$OUT/so/$tag/select.so" || exit 1
done

say "compiling the C baselines (gcc -O2)"
for c in poll epoll select; do
  gcc -O2 -Wall -o "$OUT/bin/$c" "bench/c/$c.c" || exit 1
done
# The C binding floor (bench/c/luafloor.c), once per interpreter.
for t in lua54:/usr/include/lua5.4 luajit:/usr/include/luajit-2.1; do
  mkdir -p "$OUT/floor/${t%%:*}"
  gcc -O2 -Wall -shared -fPIC -I"${t#*:}" -o "$OUT/floor/${t%%:*}/luafloor.so" bench/c/luafloor.c -lm || exit 1
done

# Up to the hard limit of open files (N = 10,000 needs it; memory uses all).
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
FDLIMIT=$(ulimit -n)
export BENCH_FD_LIMIT=$FDLIMIT

# --- metadata ------------------------------------------------------------
meta() { printf 'M\t%s\t%s\n' "$1" "$2" >>"$RAW"; }
if [ "$QUICK" != 0 ]; then meta "command" "\`BENCH_QUICK=1 sh bench/run.sh\`"; else meta "command" "\`sh bench/run.sh\`"; fi
meta "date" "$(date -u '+%Y-%m-%d %H:%M UTC')"
meta "machine" "$(nproc) cores, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1), Linux $(uname -r)"
meta "method" "median over $BENCH_ROUNDS rounds of the median of $BENCH_RUNS batches of ~$BENCH_BATCH_MS ms, process CPU time; open-file limit $FDLIMIT"
meta "interpreters" "$(lua5.4 -v 2>&1 | cut -d' ' -f1-2), $(luajit -v 2>&1 | cut -d' ' -f1-2), $(lua5.3 -v 2>&1 | cut -d' ' -f1-2), $(python3 -V 2>&1), gcc $(gcc -dumpversion)"
dirty=$(git status --porcelain -- src Cargo.toml 2>/dev/null | head -1)
meta "module" "build/lua51/select.so, build/lua54/select.so and build/luajit/select.so (copied at start), built from $(git log -1 --format='commit %h' 2>/dev/null || echo 'an unknown commit')${dirty:+ plus uncommitted changes}"

# Runs one driver; its R/N lines go to the raw file, a failure becomes a note.
run() {
  label=$1
  shift
  say "[$r/$BENCH_ROUNDS] $label"
  t0=$(date +%s)
  timeout 600 "$@" >>"$RAW" 2>"$OUT/stderr.txt"
  rc=$?
  if [ $rc != 0 ]; then
    why="exit $rc"
    [ $rc = 124 ] && why="timed out after 600 s"
    [ $rc -gt 128 ] && [ $rc != 124 ] && why="killed by signal $((rc - 128))"
    printf 'N\t%s failed (%s) %s\n' "$label" "$why" "$(tail -3 "$OUT/stderr.txt" | tr '\n\t' '  ')" >>"$RAW"
    say "$label FAILED (exit $rc), see $OUT/stderr.txt"
  fi
  say "  $(($(date +%s) - t0)) s"
}

OURS_PATH="$ROOT/bench/lua/?.lua;$ROOT/lua/?.lua;$ROOT/lua/?/init.lua;;"
PEER_PATH="$ROOT/bench/lua/?.lua;;"

ONLY=${BENCH_ONLY:-}
case $ONLY in
  ""|compat) ;;
  *) echo "bench: BENCH_ONLY must be empty or compat" >&2; exit 2 ;;
esac
[ -n "$ONLY" ] && meta "command" "\`BENCH_ONLY=$ONLY sh bench/run.sh\`"

T_START=$(date +%s)
r=1
while [ "$r" -le "$BENCH_ROUNDS" ]; do
  # C1: select.compat.socket_select against luasocket's socket.select.
  for lua in lua5.1 lua5.4 luajit; do
    tag=$($lua -e 'print(jit and "luajit" or (_VERSION:gsub("Lua (%d)%.(%d)", "lua%1%2")))')
    run "C1 compat vs socket.select under $lua" env LUA_PATH="$OURS_PATH" LUA_CPATH="$OUT/so/$tag/?.so;;" \
      $lua bench/lua/peers.lua compat
  done
  if [ -n "$ONLY" ]; then r=$((r + 1)); continue; fi
  run "C poll(2)" "$OUT/bin/poll"
  run "C epoll_wait(2)" "$OUT/bin/epoll"
  run "C select(2)" "$OUT/bin/select"
  run "CPython select/poll/epoll/selectors" python3 bench/py/bench.py
  for lua in lua5.4 luajit; do
    tag=$($lua -e 'print(jit and "luajit" or (_VERSION:gsub("Lua (%d)%.(%d)", "lua%1%2")))')
    for api in select poll epoll kqueue selectors; do
      run "ours $api under $lua" env LUA_PATH="$OURS_PATH" LUA_CPATH="$OUT/so/$tag/?.so;;" \
        $lua bench/lua/ours.lua $api
    done
    run "ours kqueue against epoll, in alternation, under $lua" env LUA_PATH="$OURS_PATH" \
      LUA_CPATH="$OUT/so/$tag/?.so;;" $lua bench/lua/ours.lua pair
    run "C binding floor under $lua" env LUA_PATH="$PEER_PATH" LUA_CPATH="$OUT/floor/$tag/?.so;;" \
      $lua bench/lua/floor.lua
  done
  run "luasocket socket.select (lua5.4)" env LUA_PATH="$PEER_PATH" lua5.4 bench/lua/peers.lua luasocket
  run "luaposix posix.poll (lua5.3)" env LUA_PATH="$PEER_PATH" lua5.3 bench/lua/peers.lua luaposix
  run "luv (lua5.4)" env LUA_PATH="$PEER_PATH" lua5.4 bench/lua/peers.lua luv
  run "cqueues (lua5.4)" env LUA_PATH="$PEER_PATH" lua5.4 bench/lua/peers.lua cqueues
  for lua in lua5.4 luajit; do
    tag=$($lua -e 'print(jit and "luajit" or (_VERSION:gsub("Lua (%d)%.(%d)", "lua%1%2")))')
    for kind in poll epoll kqueue; do
      run "memory: ours $kind under $lua" env LUA_PATH="$OURS_PATH" LUA_CPATH="$OUT/so/$tag/?.so;;" \
        $lua bench/lua/ours.lua mem $kind
    done
  done
  r=$((r + 1))
done
meta "wall time" "$(($(date +%s) - T_START)) s"

lua5.4 bench/lua/report.lua "$RAW" ${ONLY:+C1} >"$OUT/report.md" || exit 1
cat "$OUT/report.md"
if [ "$QUICK" = 0 ] && [ -z "$ONLY" ]; then
  cp "$OUT/report.md" bench/RESULTS.md
  say "report written to bench/RESULTS.md (raw figures: $RAW)"
else
  say "quick run: report in $OUT/report.md (bench/RESULTS.md is only written by a full run)"
fi
