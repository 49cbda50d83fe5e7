#!/bin/sh
# Builds select.so for one Lua interpreter and copies it to OUTDIR/select.so.
# Usage: scripts/build-so.sh LUA_INTERPRETER OUTDIR [cargo profile: release|dev]
# The mlua feature is picked by asking the interpreter which Lua it is, so the
# same command serves luarocks (which passes $(LUA)) and the test scripts.
# On macOS cargo names the library libselect.dylib; it is installed as
# select.so all the same (Lua's cpath looks for .so there too).
# With LIBKQUEUE_DIR=PREFIX (Linux, for testing), select.kqueue is the native
# backend linked against PREFIX/lib/libkqueue instead of the emulation
# (cargo feature native-kqueue; scripts/test-libkqueue.sh).
set -eu
lua=$1
out=$2
profile=${3:-release}
here=$(cd "$(dirname "$0")/.." && pwd)
. "$here/scripts/lua-feature.sh"
feature=$(feature_of "$lua")
case $feature in
  lua51|lua52|lua53|lua54|luajit) ;;
  *) echo "build-so.sh: unsupported interpreter $lua ($feature)" >&2; exit 1 ;;
esac
target=${CARGO_TARGET_DIR:-$here/target}/$feature
features=$feature
if [ -n "${LIBKQUEUE_DIR:-}" ]; then
  features="$feature,native-kqueue"
  target="$target-libkqueue"
  LIBKQUEUE_DIR=$(cd "$LIBKQUEUE_DIR" && pwd); export LIBKQUEUE_DIR
fi
if [ "$profile" = release ]; then flag=--release; else flag=; fi
cargo build --quiet --manifest-path "$here/Cargo.toml" --lib $flag \
  --no-default-features --features "$features" --target-dir "$target"
mkdir -p "$out"
# Copy then rename: a process that has the old select.so mapped keeps it intact
# (overwriting a loaded shared object in place can crash that process).
dir="$target/$( [ "$profile" = release ] && echo release || echo debug )"
case $(uname -s) in
  Darwin) src="$dir/libselect.dylib" ;;
  *) src="$dir/libselect.so" ;;
esac
cp "$src" "$out/.select.so.$$"
mv -f "$out/.select.so.$$" "$out/select.so"
