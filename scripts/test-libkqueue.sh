#!/bin/sh
# Runs the native kqueue backend (src/core/bsd/) on Linux, linked against
# libkqueue, a C implementation of the BSD kqueue interface: the kqueue specs
# (spec/kqueue*_spec.lua, spec/kevent_spec.lua), the KqueueSelector cases
# of spec/selectors_spec.lua and the fork() case of spec/faults_spec.lua
# (needs luaposix: LuaJIT here), under Lua 5.4 and LuaJIT, plus the backend's
# Rust unit tests.
#
# Output is TAP-like: "ok"/"not ok" per test. A test that meets a known
# difference of libkqueue from FreeBSD's kqueue (or where the emulation's
# behaviour is not the kernels') is reported "ok ... # SKIP <reason>": shown
# and counted, never dropped (spec/testutil.lua, libkqueue_differs).
#
# libkqueue's source and build script are not part of this repository: they
# are looked for in ../shared (relative to the repository). Without them the
# script says so and exits 0 with a "skip" line.
set -u
cd "$(dirname "$0")/.."
here=$(pwd)
tool=$here/../shared/tools/build-libkqueue.sh
if [ ! -x "$tool" ]; then
  echo "skip - libkqueue check: $tool not found (libkqueue's source comes with ../shared, which this clone lacks)"
  exit 0
fi
prefix=${LIBKQUEUE_DIR:-$here/target/libkqueue}
if [ ! -e "$prefix/lib/libkqueue.so" ]; then
  if ! out=$("$tool" "$prefix" 2>&1); then
    echo "not ok - build libkqueue into $prefix"
    printf '%s\n' "$out" | sed 's/^/#   /'
    exit 1
  fi
fi
echo "ok - libkqueue built in $prefix"
export LIBKQUEUE_DIR="$prefix"
failed=0

# The token bookkeeping's unit tests (src/core/bsd/kqueue/tokens.rs).
if out=$(cargo test --quiet --lib --features native-kqueue bsd:: 2>&1); then
  n=$(printf '%s\n' "$out" | sed -n 's/.*test result: ok\. \([0-9]*\) passed.*/\1/p' | head -1)
  echo "ok - cargo test --features native-kqueue (native backend unit tests: ${n:-?} passed)"
else
  echo "not ok - cargo test --features native-kqueue"
  printf '%s\n' "$out" | tail -20 | sed 's/^/#   /'
  failed=1
fi

for lua in lua5.4 luajit; do
  f=$("$lua" -e 'if jit then print("luajit") else print((_VERSION:gsub("Lua (%d)%.(%d)", "lua%1%2"))) end')
  out_dir=build/libkqueue/$f
  if ! scripts/build-so.sh "$lua" "$out_dir" release; then
    echo "not ok - build select.so for $lua on libkqueue"; failed=1; continue
  fi
  if ! ldd "$out_dir/select.so" | grep -q libkqueue; then
    echo "not ok - $out_dir/select.so does not link libkqueue"; failed=1; continue
  fi
  for set in "spec/kevent_spec.lua spec/kqueue_spec.lua spec/kqueue_directions_spec.lua spec/kqueue_data_spec.lua spec/kqueue_proc_spec.lua spec/kqueue_signal_spec.lua spec/kqueue_vnode_spec.lua spec/kqueue_examples_spec.lua" \
             "--filter=KqueueSelector spec/selectors_spec.lua" \
             "--filter=live%skqueue spec/faults_spec.lua"; do
    # shellcheck disable=SC2086
    out=$(SELECT_TEST_LIBKQUEUE=1 LUA_CPATH="$here/$out_dir/?.so;;" \
      "$lua" /usr/bin/busted --cpath="$out_dir/?.so" \
      --lpath="lua/?.lua;lua/?/init.lua;spec/?.lua" -o TAP $set 2>&1)
    printf '%s\n' "$out" | grep -E '^(not )?ok ' | sed "s/^\(not ok\|ok\) [0-9]* - /\1 - $lua libkqueue: /"
    printf '%s\n' "$out" | grep -q '^1\.\.[0-9]' || { echo "not ok - $lua libkqueue: busted did not finish ($set)"; printf '%s\n' "$out" | tail -10 | sed 's/^/#   /'; }
    printf '%s\n' "$out" | grep -q '^not ok' && failed=1
  done
done
exit $failed
