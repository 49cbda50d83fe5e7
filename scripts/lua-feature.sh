#!/bin/sh
# Prints the cargo feature (lua51, lua52, lua53, lua54 or luajit) of a Lua
# interpreter, found by asking it which Lua it is.
# Usage: scripts/lua-feature.sh LUA_INTERPRETER
# Also sourced by make.sh and scripts/build-so.sh for its function feature_of.
feature_of() {
  "$1" -e 'if jit then print("luajit") else print((_VERSION:gsub("Lua (%d)%.(%d)", "lua%1%2"))) end'
}
case $0 in
  */lua-feature.sh|lua-feature.sh) set -eu; feature_of "$1" ;;
esac
