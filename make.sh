#!/bin/sh
# lua-select's one entry point.
#   ./make.sh demo    installs what is missing, builds, runs the demo (examples/)
#   ./make.sh test    installs what is missing, runs every test; ends "N passed, N failed"
#   ./make.sh build   builds select.so for every Lua version into build/<version>/
#   ./make.sh deps    installs the Debian packages the project needs (as root)
#   ./make.sh bench   runs the benchmark suite (bench/)
set -eu
cd "$(dirname "$0")"

LUAS="lua5.1 lua5.2 lua5.3 lua5.4 luajit"
PACKAGES="lua5.1 lua5.2 lua5.3 lua5.4 luajit liblua5.1-0-dev liblua5.2-dev liblua5.3-dev liblua5.4-dev libluajit-5.1-dev luarocks lua-busted lua-socket lua-posix lua-check lua-ldoc lua-discount gcc make git curl ca-certificates rustc-web cargo-web rust-web-src cmake pkg-config valgrind"

say() { printf '== %s\n' "$*"; }

deps() {
  missing=""
  for p in $PACKAGES; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
  done
  if [ -n "$missing" ]; then
    if [ "$(id -u)" = 0 ]; then
      say "installing:$missing"
      export DEBIAN_FRONTEND=noninteractive
      apt-get update -qq
      apt-get install -y -qq $missing >/dev/null
    else
      echo "Missing Debian packages. Run:" >&2
      echo "  sudo apt-get update && sudo apt-get install -y$missing" >&2
      exit 1
    fi
  fi
  # rustup installs into ~/.cargo/bin, which a shell opened before it lacks.
  if ! command -v cargo >/dev/null 2>&1 && [ -x "$HOME/.cargo/bin/cargo" ]; then
    PATH="$HOME/.cargo/bin:$PATH"; export PATH
  fi
  if ! command -v cargo >/dev/null 2>&1; then
    echo "Rust (cargo, with clippy and rustfmt) is needed. Install it with rustup, then run this again:" >&2
    echo "  curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y" >&2
    exit 1
  fi
}

. scripts/lua-feature.sh  # feature_of LUA: its cargo feature (lua54, luajit, ...)

build() {
  for lua in $LUAS; do
    f=$(feature_of "$lua")
    say "building select.so for $lua"
    scripts/build-so.sh "$lua" "build/$f" release
  done
}

# Runs busted under one interpreter; prints its summary line.
busted_one() {
  lua=$1
  f=$(feature_of "$lua")
  "$lua" /usr/bin/busted --cpath="build/$f/?.so" --lpath="lua/?.lua;lua/?/init.lua;spec/?.lua" \
    -o utfTerminal spec 2>&1
}

test_all() {
  deps
  passed=0; failed=0
  add() { passed=$((passed + $1)); failed=$((failed + $2)); }
  # A step that prints "ok ..."/"not ok ..." lines (in $out, exit status in
  # $rc): tap_count sets p and q from them; tap_add counts them, and a
  # failing exit with no "not ok" line as one failure.
  tap_count() {
    p=$(printf '%s\n' "$out" | grep -c '^ok ' || true)
    q=$(printf '%s\n' "$out" | grep -c '^not ok ' || true)
  }
  tap_add() {
    if [ "$rc" != 0 ] && [ "$q" = 0 ]; then q=1; fi
    add "$p" "$q"
  }

  # Adds the counts of every "test result:" line of cargo test's output ($out).
  add_cargo() {
    printf '%s\n' "$out" | grep -E "test result|panicked|FAILED|failed" || true
    p=$(printf '%s\n' "$out" | sed -n 's/.*test result: [a-zA-Z]*\. \([0-9]*\) passed; \([0-9]*\) failed.*/\1/p' | awk '{s+=$1} END {print s+0}')
    q=$(printf '%s\n' "$out" | sed -n 's/.*test result: [a-zA-Z]*\. \([0-9]*\) passed; \([0-9]*\) failed.*/\2/p' | awk '{s+=$1} END {print s+0}')
    if ! printf '%s\n' "$out" | grep -q "test result"; then q=$((q + 1)); printf '%s\n' "$out" | tail -30; fi
    add "$p" "$q"
  }

  say "cargo test"
  out=$(cargo test --quiet 2>&1) || true
  add_cargo
  # Without a Lua feature src/lua is not compiled: its unit tests (and those
  # that run the module in a Lua 5.4 state, linked with liblua5.4) need one.
  say "cargo test --features lua54 --lib (the Lua binding's unit tests)"
  out=$(cargo test --quiet --features lua54 --lib --target-dir target/lua54-test 2>&1) || true
  add_cargo

  say "cargo clippy -D warnings"
  if cargo clippy --quiet --all-targets --features lua54 -- -D warnings 2>&1 | tail -40 | grep -E "^(error|warning)" ; then add 0 1; else add 1 0; fi
  say "cargo fmt --check"
  if cargo fmt --check >/dev/null 2>&1; then add 1 0; else cargo fmt --check 2>&1 | head -20; add 0 1; fi
  say "luacheck"
  if luacheck -q lua spec examples bench tests/host 2>&1 | tail -20; then add 1 0; else add 0 1; fi

  build
  for lua in $LUAS; do
    say "busted under $lua"
    out=$(busted_one "$lua") || true
    printf '%s\n' "$out" | grep -vE '^[●◼✱]+$' | tail -60
    line=$(printf '%s\n' "$out" | grep -E '[0-9]+ successes? / [0-9]+ failures? / [0-9]+ errors?' | tail -1)
    if [ -z "$line" ]; then add 0 1; continue; fi
    s=$(printf '%s' "$line" | awk '{print $1}')
    fl=$(printf '%s' "$line" | awk '{print $4}')
    er=$(printf '%s' "$line" | awk '{print $7}')
    add "$s" $((fl + er))
  done
  say "luarocks make / pack / install, offline (scripts/test-luarocks.sh)"
  rc=0
  out=$(scripts/test-luarocks.sh 2>&1) || rc=$?
  printf '%s\n' "$out" | grep -v '^ok ' || true
  tap_count
  echo "$p of $((p + q)) luarocks checks ok"
  tap_add

  say "cross type-check for FreeBSD, macOS (arm64, x86-64), OpenBSD, NetBSD x lua54, lua51, luajit (scripts/cross-check.sh)"
  rc=0
  out=$(scripts/cross-check.sh 2>&1) || rc=$?
  printf '%s\n' "$out"
  tap_count
  tap_add

  say "native kqueue backend on libkqueue, Lua 5.4 and LuaJIT (scripts/test-libkqueue.sh)"
  rc=0
  out=$(scripts/test-libkqueue.sh 2>&1) || rc=$?
  # Failures, skips of the whole check, and each known difference of libkqueue.
  printf '%s\n' "$out" | grep -E '^(not ok|skip|#)|# SKIP' || true
  tap_count
  k=$(printf '%s\n' "$out" | grep -c '# SKIP' || true)
  if printf '%s\n' "$out" | grep -q '^skip '; then
    echo "libkqueue check skipped (see above): not counted"
  else
    echo "$p of $((p + q)) libkqueue checks ok; $k of them pending with the reason listed above (a known difference of libkqueue, or of the emulation from native kqueue, or a missing test dependency)"
  fi
  tap_add

  say "allocation-failure and finalizer sweeps from a C host, two threads (scripts/host-sweeps.sh, VALGRIND=1)"
  rc=0
  out=$(VALGRIND=${VALGRIND:-1} scripts/host-sweeps.sh 2>&1) || rc=$?
  printf '%s\n' "$out" | grep -vE '^(ok |# )' | head -80 || true
  printf '%s\n' "$out" | grep -E '^ok .* sweep' || true
  tap_count
  echo "$p of $((p + q)) host checks ok"
  tap_add

  say "reference docs: ldoc builds without warnings, links resolve, examples run (scripts/check-docs.sh)"
  rc=0
  out=$(scripts/check-docs.sh --examples 2>&1) || rc=$?
  printf '%s\n' "$out" | tail -20
  if [ "$rc" = 0 ]; then add 1 0; else add 0 1; fi

  echo "$passed passed, $failed failed"
  [ "$failed" = 0 ]
}

demo() {
  deps
  say "building select.so for lua5.4"
  scripts/build-so.sh lua5.4 build/lua54 release
  for ex in examples/echo_server.lua; do
    say "lua5.4 $ex"
    LUA_CPATH="build/lua54/?.so;;" LUA_PATH="lua/?.lua;;" lua5.4 "$ex"
  done
}

case ${1:-} in
  deps) deps ;;
  build) deps; build ;;
  test) test_all ;;
  demo) demo ;;
  bench) deps; build; exec sh bench/run.sh ;;
  *) sed -n '2,8p' "$0"; exit 2 ;;
esac
