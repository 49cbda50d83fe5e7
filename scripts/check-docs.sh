#!/bin/sh
# Builds the reference documentation (config.ld) with LDoc into a temporary
# directory and checks it:
#   - ldoc exits with status 0 and prints nothing but its two progress lines
#     ("reading configuration from ...", "output written to ..."): any other
#     line is a warning or an error (an unparsable comment, an unresolved
#     @{reference}, a missing markdown processor, an internal LDoc error, ...);
#   - every page expected is there, and every link between the pages points
#     to a file and an anchor that exist.
# Prints "ok docs" or "not ok docs" (last line) and exits 0 or 1.
#   scripts/check-docs.sh             check only (doc/html is left alone)
#   scripts/check-docs.sh --keep      also leave the pages in doc/html
#   scripts/check-docs.sh --examples  also run every @usage example of
#       doc/select.luadoc with lua5.4 and build/lua54/select.so (./make.sh
#       build first; needs luasocket), checking the "--> output" comments
# Needs: ldoc (Debian lua-ldoc), lua-discount (markdown), and any lua5.x.
set -u
cd "$(dirname "$0")/.."

keep=false
examples=false
for a in "$@"; do
  case $a in
    --keep) keep=true ;;
    --examples) examples=true ;;
    *) echo "usage: $0 [--keep] [--examples]" >&2; exit 2 ;;
  esac
done

fail() {
  printf '%s\n' "$@" >&2
  echo "not ok docs"
  exit 1
}

command -v ldoc >/dev/null 2>&1 || fail "ldoc not found: apt-get install lua-ldoc lua-discount"
LUA=""
for l in lua5.4 lua5.3 lua5.2 lua5.1 luajit lua; do
  if command -v "$l" >/dev/null 2>&1; then LUA=$l; break; fi
done
[ -n "$LUA" ] || fail "no Lua interpreter found"

out=$(mktemp -d "${TMPDIR:-/tmp}/lua-select-docs.XXXXXX") || fail "mktemp failed"
trap 'rm -rf "$out"' EXIT
trap 'exit 130' INT TERM

# ldoc prints warnings on stdout and errors on stderr: keep both.
log=$(ldoc --dir "$out/html" . 2>&1)
rc=$?
bad=$(printf '%s\n' "$log" | grep -v -e '^reading configuration from ' -e '^output written to ' -e '^$')
if [ "$rc" != 0 ] || [ -n "$bad" ]; then
  printf '%s\n' "$log" >&2
  case $log in
    *"not found, falling back"*|*"using built-in markdown"*)
      echo "(markdown is rendered with lua-discount: apt-get install lua-discount)" >&2 ;;
  esac
  fail "ldoc exited with status $rc, or printed warnings (above)"
fi

for page in index.html modules/select.html modules/select.selectors.html modules/select.compat.html; do
  [ -s "$out/html/$page" ] || fail "ldoc wrote no $page"
done

# Links: every href="file#anchor" inside the output must resolve.
cat > "$out/links.lua" <<'EOF'
local root = arg[1]
local files, anchors = {}, {}
for path in io.lines() do
  local rel = path:sub(#root + 2)
  local f = assert(io.open(path))
  local html = f:read("*a")
  f:close()
  files[#files + 1] = { rel = rel, html = html }
  local set = {}
  for name in html:gmatch('name%s*=%s*"([^"]*)"') do set[name] = true end
  for name in html:gmatch('id%s*=%s*"([^"]*)"') do set[name] = true end
  anchors[rel] = set
end
-- "a/b/../c.html" -> "a/c.html", relative to the page's directory.
local function resolve(from, target)
  local parts = {}
  for p in (from:match("^(.*)/") or ""):gmatch("[^/]+") do parts[#parts + 1] = p end
  for p in target:gmatch("[^/]+") do
    if p == ".." then parts[#parts] = nil elseif p ~= "." then parts[#parts + 1] = p end
  end
  return table.concat(parts, "/")
end
local broken = 0
for _, page in ipairs(files) do
  for href in page.html:gmatch('href%s*=%s*"([^"]*)"') do
    if not href:match("^%a[%w+.-]*:") then -- http:, mailto:, ... are not checked
      local file, frag = href:match("^([^#]*)#?(.*)$")
      local target = file == "" and page.rel or resolve(page.rel, file)
      local set = anchors[target]
      if not set and not target:match("%.html$") then
        local f = io.open(root .. "/" .. target)
        if f then f:close() set = {} end
      end
      if not set then
        broken = broken + 1
        io.stderr:write(page.rel, ": link to a missing file: ", href, "\n")
      elseif frag ~= "" and not set[frag] then
        broken = broken + 1
        io.stderr:write(page.rel, ": link to a missing anchor: ", href, "\n")
      end
    end
  end
end
os.exit(broken == 0 and 0 or 1)
EOF
find "$out/html" -name '*.html' | "$LUA" "$out/links.lua" "$out/html" || fail "broken links (above)"

if $examples; then
  [ -f build/lua54/select.so ] || fail "--examples: no build/lua54/select.so (run ./make.sh build)"
  command -v lua5.4 >/dev/null 2>&1 || fail "--examples: lua5.4 not found"
  cat > "$out/usage.lua" <<'EOF'
-- Runs each @usage block of an LDoc file in a fresh interpreter after a
-- preamble that defines the names the examples use; a block fails if it
-- raises, or if its "--> expected" comments are not printed, in order.
local src, lua, dir = arg[1], arg[2], arg[3]
local PRE = [==[
local select_ = require "select"
local socket = require "socket"
local server = assert(socket.bind("127.0.0.1", 0))
local _, port = server:getsockname()
local client = assert(socket.connect("127.0.0.1", port))
local conn = assert(server:accept())
assert(client:send("ping\n"))
local p, ep, kq = select_.poll(), select_.epoll(), select_.kqueue()
local ev = select_.kevent(conn)
local revents, events, fd = 0, 0, conn:getfd()
local child = io.popen("echo $$")
local pid = child:read("*n")
child:close()
local message = "x"
]==]
local function norm(s) return (s:gsub("%s+", " "):gsub("^ ", ""):gsub(" $", "")) end
local lines = {}
for l in io.lines(src) do lines[#lines + 1] = l end
local blocks, i = {}, 1
while i <= #lines do
  local first = lines[i]:match("^%-%-+ ?@usage ?(.*)$")
  if first then
    local b = { line = i, code = {} }
    if first:match("%S") then b.code[1] = first end
    i = i + 1
    while i <= #lines and lines[i]:match("^%-%-") and not lines[i]:match("^%-%-+ ?@") do
      b.code[#b.code + 1] = (lines[i]:gsub("^%-%- ?", ""))
      i = i + 1
    end
    blocks[#blocks + 1] = b
  else
    i = i + 1
  end
end
local failed = 0
for n, b in ipairs(blocks) do
  local file = dir .. "/usage" .. n .. ".lua"
  local f = assert(io.open(file, "w"))
  f:write(PRE, table.concat(b.code, "\n"), "\n")
  f:close()
  local pipe = assert(io.popen(lua .. " " .. file .. " 2>&1"))
  local output = pipe:read("*a")
  local ok = pipe:close()
  local got = {}
  for l in output:gmatch("[^\n]+") do got[#got + 1] = norm(l) end
  local why = ok and "" or "it failed"
  local pos = 1
  for _, l in ipairs(b.code) do
    local want = l:match("%-%-> (.*)$")
    if want and ok then
      want = norm((want:gsub("%s%s+%(.*%)%s*$", "")))
      while pos <= #got and got[pos] ~= want do pos = pos + 1 end
      if pos > #got then
        ok, why = false, "expected output not printed: " .. want
      end
      pos = pos + 1
    end
  end
  if not ok then
    failed = failed + 1
    io.stderr:write(("%s:%d: @usage example: %s\n%s\n-- output:\n%s\n"):format(
      src, b.line, why, table.concat(b.code, "\n"), output))
  end
end
print(("%d @usage examples run, %d failed"):format(#blocks, failed))
os.exit(failed == 0 and 0 or 1)
EOF
  LUA_CPATH="build/lua54/?.so;;" LUA_PATH="lua/?.lua;;" \
    lua5.4 "$out/usage.lua" doc/select.luadoc lua5.4 "$out" || fail "@usage examples failed (above)"
fi

if $keep; then
  rm -rf doc/html
  mkdir -p doc
  cp -R "$out/html" doc/html || fail "could not copy the pages to doc/html"
fi
echo "ok docs"
