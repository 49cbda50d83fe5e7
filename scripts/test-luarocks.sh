#!/bin/sh
# Checks that the rockspec installs lua-select with luarocks, offline, for
# Lua 5.1, 5.3 and 5.4, each into a fresh --tree:
#   - `luarocks make` of rockspec/lua-select-scm-1.rockspec, then `require "select"`,
#     a poll call, and `require "select.selectors"` / `"select.compat"` from that tree;
#   - `luarocks pack` of the rockspec (a source rock) and `luarocks install` of it;
#   - `luarocks pack` of the installed rock (a binary rock) and `luarocks install` of it.
# Works on a snapshot of the working tree (files git tracks or would track), so the
# checkout is never written to. Cargo builds go to target/luarocks/ (incremental).
# Prints one line per check, "ok N - ..." or "not ok N - ...", and exits non-zero
# if any check failed.
# Usage: scripts/test-luarocks.sh [LUA_VERSION...]   (default: 5.1 5.3 5.4)
set -u
repo=$(cd "$(dirname "$0")/.." && pwd)
versions=${*:-5.1 5.3 5.4}
pack_version=5.4
rockspec=lua-select-scm-1.rockspec

export CARGO_TARGET_DIR="${LUA_SELECT_LUAROCKS_TARGET:-$repo/target/luarocks}"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/lua-select-luarocks.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT
trap 'exit 130' INT TERM
log=$tmp/log

n=0
failures=0
# check DESCRIPTION COMMAND...: runs COMMAND, output to the log; shows it on failure.
check() {
  desc=$1; shift
  n=$((n + 1))
  if ("$@") >"$log" 2>&1; then
    echo "ok $n - $desc"
    return 0
  fi
  echo "not ok $n - $desc"
  sed 's/^/#   /' "$log" | grep -v '^#   *$' | tail -25
  failures=$((failures + 1))
  return 1
}

# A copy of the working tree (what a clone would hold, uncommitted edits included),
# committed to a throwaway git repository so that `luarocks pack` can fetch it
# through a git+file:// source.url, as it would fetch a published repository.
snap=$tmp/lua-select
snapshot() {
  mkdir -p "$snap" || return 1
  if git -C "$repo" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    (cd "$repo" && git ls-files -co --exclude-standard |
      while IFS= read -r f; do [ -e "$f" ] && printf '%s\n' "$f"; done |
      tar -cf - -T -) | tar -xf - -C "$snap" || return 1
  else
    (cd "$repo" && tar -cf - --exclude=./.git --exclude=./target --exclude=./build .) |
      tar -xf - -C "$snap" || return 1
  fi
  cd "$snap" &&
    git -c init.defaultBranch=main init -q &&
    git add -A &&
    git -c user.name=lua-select -c user.email=lua-select@localhost -c commit.gpgsign=false \
      -c core.hooksPath=/dev/null commit -q -m snapshot
}

# in_tree VERSION TREE LUA_CODE: runs LUA_CODE under lua<VERSION> with only the paths
# `luarocks path` gives for TREE (plus the system ones), from a directory holding
# nothing, so nothing but the tree can provide the module.
in_tree() {
  v=$1; tree=$2; code=$3
  (
    unset LUA_PATH LUA_CPATH LUA_PATH_5_2 LUA_CPATH_5_2 LUA_PATH_5_3 LUA_CPATH_5_3 \
      LUA_PATH_5_4 LUA_CPATH_5_4 LUA_INIT LUA_INIT_5_2 LUA_INIT_5_3 LUA_INIT_5_4
    eval "$(luarocks --lua-version "$v" --tree "$tree" path)" || exit 1
    mkdir -p "$tmp/empty" && cd "$tmp/empty" || exit 1
    "lua$v" -e "TREE = [[$tree]]" -e "$code"
  )
}

# Lua: `select` must come from TREE (not from anywhere else on the path), and work.
REQUIRE_AND_POLL='
local function find(name, path)
  for template in path:gmatch("[^;]+") do
    local file = template:gsub("%?", (name:gsub("%.", "/")))
    local f = io.open(file)
    if f then f:close() return file end
  end
end
local so = assert(find("select", package.cpath), "select.so not on package.cpath")
assert(so:sub(1, #TREE) == TREE, "select found outside the tree: " .. so)
local sel = require "select"
assert(sel ~= select and type(select) == "function", "the global select was replaced")
local f = assert(io.open("/dev/null"))
local p = sel.poll()
p:register(f, sel.POLLIN)
local events = assert(p:poll(0))
assert(#events == 1 and type(events[1][1]) == "number", "poll: one event expected")
assert(events[1][2] % 2 == 1, "poll: POLLIN expected on /dev/null")
f:close()
print(_VERSION, so)'

REQUIRE_LUA_FILES='
for _, name in ipairs({"select.selectors", "select.compat"}) do
  local file
  for template in package.path:gmatch("[^;]+") do
    local candidate = template:gsub("%?", (name:gsub("%.", "/")))
    local f = io.open(candidate)
    if f then f:close() file = candidate break end
  end
  assert(file, name .. " not on package.path")
  assert(file:sub(1, #TREE) == TREE, name .. " found outside the tree: " .. file)
  require(name)
end'

# Rewrites source.url to the snapshot repository.
rewrite_url() {
  sed "s|^\([[:space:]]*url[[:space:]]*=[[:space:]]*\)\"[^\"]*\"|\1\"git+file://$snap\"|" \
    "$snap/rockspec/$rockspec" >"$tmp/pack/$rockspec" &&
    grep -q "git+file://$snap\"" "$tmp/pack/$rockspec"
}

make_in() { # VERSION TREE
  cd "$snap" && luarocks --lua-version "$1" --tree "$2" make "rockspec/$rockspec"
}

check "snapshot of the working tree" snapshot || { echo "1..$n"; exit 1; }
check "luarocks lint $rockspec" luarocks lint "$snap/rockspec/$rockspec"

for v in $versions; do
  tree=$tmp/tree-$v
  if check "luarocks --lua-version $v make rockspec/$rockspec (into a fresh --tree)" \
    make_in "$v" "$tree"; then
    check "lua$v: require 'select' from the tree, poll() works" in_tree "$v" "$tree" "$REQUIRE_AND_POLL"
    check "lua$v: require 'select.selectors' and 'select.compat' from the tree" \
      in_tree "$v" "$tree" "$REQUIRE_LUA_FILES"
  fi
done

v=$pack_version
mkdir -p "$tmp/pack"
pack_source() {
  rewrite_url && cd "$tmp/pack" && luarocks --lua-version "$v" pack "$rockspec" &&
    test -f lua-select-scm-1.src.rock
}
install_rock() { # ROCK TREE
  cd "$tmp/pack" && luarocks --lua-version "$v" --tree "$2" install "$1"
}
pack_binary() {
  cd "$tmp/pack" && luarocks --lua-version "$v" --tree "$tmp/tree-src-rock" pack lua-select scm-1 &&
    ls lua-select-scm-1.*.rock | grep -v '\.src\.rock$' >"$tmp/binary-rock"
}
if check "luarocks pack $rockspec (source rock; source.url rewritten to git+file:// of the snapshot)" \
  pack_source; then
  if check "luarocks --lua-version $v install lua-select-scm-1.src.rock (builds it)" \
    install_rock lua-select-scm-1.src.rock "$tmp/tree-src-rock"; then
    check "lua$v: require 'select' from the source-rock tree, poll() works" \
      in_tree "$v" "$tmp/tree-src-rock" "$REQUIRE_AND_POLL"
    check "lua$v: 'select.selectors' and 'select.compat' from the source-rock tree" \
      in_tree "$v" "$tmp/tree-src-rock" "$REQUIRE_LUA_FILES"
    if check "luarocks pack lua-select scm-1 (binary rock of the installed module)" pack_binary; then
      if check "luarocks --lua-version $v install $(cat "$tmp/binary-rock")" \
        install_rock "$(cat "$tmp/binary-rock")" "$tmp/tree-bin-rock"; then
        check "lua$v: require 'select' from the binary-rock tree, poll() works" \
          in_tree "$v" "$tmp/tree-bin-rock" "$REQUIRE_AND_POLL"
      fi
    fi
  fi
fi

echo "1..$n"
if [ "$failures" -gt 0 ]; then
  echo "# $failures of $n luarocks checks failed"
  exit 1
fi
