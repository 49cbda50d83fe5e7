-- Helpers shared by the specs: descriptors made on the spot with luasocket
-- (available for every Lua version), and small measuring tools.
local socket = require "socket"

local M = {}

--- A connected pair of TCP sockets on 127.0.0.1 (luasocket objects).
function M.tcp_pair()
  local server = assert(socket.bind("127.0.0.1", 0))
  local _, port = server:getsockname()
  local a = assert(socket.connect("127.0.0.1", port))
  local b = assert(server:accept())
  server:close()
  a:settimeout(0)
  b:settimeout(0)
  return a, b
end

--- A listening TCP socket on 127.0.0.1 and its port.
function M.listener()
  local server = assert(socket.bind("127.0.0.1", 0))
  local _, port = server:getsockname()
  server:settimeout(0)
  return server, tonumber(port)
end

--- A descriptor number that is certainly closed right now.
function M.closed_fd()
  local s = assert(socket.tcp())
  local fd = s:getfd()
  s:close()
  return fd
end

--- How many descriptors the process has open (Linux /proc).
function M.open_fds()
  local p = assert(io.popen("ls /proc/" .. M.pid() .. "/fd | wc -l"))
  local n = tonumber(p:read("*a"))
  p:close()
  return n - 1 -- the pipe of this very popen
end

local pid
--- This process's pid (read once from /proc/self/stat).
function M.pid()
  if not pid then
    local f = assert(io.open("/proc/self/stat"))
    pid = tonumber(f:read("*a"):match("^(%d+)"))
    f:close()
  end
  return pid
end

M.gettime = socket.gettime
M.sleep = socket.sleep

--- Full garbage collection, twice (finalizers may free more).
function M.full_gc()
  collectgarbage("collect")
  collectgarbage("collect")
end

-- Helpers added for the select/poll/epoll specs ---------------------------

--- luaposix, or nil where it is not installed (Lua 5.4 here).
function M.posix()
  local ok, posix = pcall(require, "posix")
  if ok and type(posix) == "table" then
    return posix
  end
  return nil
end

--- Lua 5.3+ integers: math.type(v) == "integer"; elsewhere any whole number.
function M.is_integer(v)
  if math.type then
    return math.type(v) == "integer"
  end
  return type(v) == "number" and v == math.floor(v)
end

--- A float with the same value as integer n (3 -> 3.0 in 5.3+).
function M.float(n)
  return n + 0.0
end

--- The path of the running interpreter (lua5.x or luajit).
function M.interpreter()
  local p = assert(io.popen("readlink /proc/" .. M.pid() .. "/exe"))
  local path = p:read("*l")
  p:close()
  return path
end

--- What descriptor `fd` of this process points to ("socket:[...]", a path...).
function M.fd_target(fd)
  local p = assert(io.popen("readlink /proc/" .. M.pid() .. "/fd/" .. fd .. " 2>/dev/null"))
  local target = p:read("*l")
  p:close()
  return target
end

--- The `flags:` field (octal, as a number) of /proc/self/fdinfo/<fd>, or nil.
function M.fd_flags(fd)
  local f = io.open("/proc/" .. M.pid() .. "/fdinfo/" .. fd)
  if not f then
    return nil
  end
  local text = f:read("*a")
  f:close()
  local octal = text:match("flags:%s*(%d+)")
  return octal and tonumber(octal, 8)
end

--- Lines `tfd: N events: HEX` of an epoll descriptor's fdinfo: map fd -> events.
function M.epoll_fdinfo(epfd)
  local f = assert(io.open("/proc/" .. M.pid() .. "/fdinfo/" .. epfd))
  local text = f:read("*a")
  f:close()
  local map = {}
  for tfd, ev in text:gmatch("tfd:%s*(%d+)%s+events:%s*(%x+)") do
    map[tonumber(tfd)] = tonumber(ev, 16)
  end
  return map
end

--- Whether `x` has every bit of `mask` set (no bit library needed).
function M.has_bits(x, mask)
  local bit = 1
  while mask > 0 do
    local mbit = mask % (bit * 2) >= bit
    if mbit then
      if x % (bit * 2) < bit then
        return false
      end
      mask = mask - bit
    end
    bit = bit * 2
  end
  return true
end

--- Opens `n` handles on /dev/null (so that later descriptors are numbered
--- above them) and returns a function that closes them again.
function M.fill_fds(n)
  local files = {}
  for i = 1, n do
    files[i] = assert(io.open("/dev/null"))
  end
  return function()
    for i = 1, #files do
      files[i]:close()
    end
  end
end

--- A connected TCP pair whose descriptors are both >= 1024.
function M.high_tcp_pair()
  local release = M.fill_fds(1100)
  local a, b = M.tcp_pair()
  release()
  assert(a:getfd() >= 1024 and b:getfd() >= 1024, "could not get descriptors above 1024")
  return a, b
end

--- Runs a shell command in the background (returns at once).
function M.background(cmd)
  os.execute("(" .. cmd .. ") >/dev/null 2>&1 &")
end

--- Sends signal `sig` (a name: "USR1", "INT") to this process after `delay` s.
function M.signal_me_later(sig, delay)
  M.background(string.format("sleep %.3f; kill -%s %d", delay, sig, M.pid()))
end

--- A connected TCP socket (luasocket, server side) whose peer, a perl process,
--- has sent one byte of out-of-band (urgent) data. The peer stays connected
--- until the socket is closed. Returns nil if perl is missing.
function M.oob_socket()
  local found = os.execute("command -v perl >/dev/null 2>&1")
  if found ~= true and found ~= 0 then
    return nil
  end
  local server, port = M.listener()
  M.background(string.format(
    "perl -MSocket -e 'socket(S, PF_INET, SOCK_STREAM, 0) or die; " ..
    "connect(S, pack_sockaddr_in(%d, inet_aton(\"127.0.0.1\"))) or die; " ..
    "send(S, \"!\", MSG_OOB); sysread(S, $b, 1)'", port))
  server:settimeout(5)
  local conn = server:accept()
  server:close()
  if not conn then
    return nil
  end
  conn:settimeout(0)
  return conn
end

--- Resident set size of this process in kB.
function M.rss_kb()
  local f = assert(io.open("/proc/" .. M.pid() .. "/status"))
  local text = f:read("*a")
  f:close()
  return tonumber(text:match("VmRSS:%s*(%d+)"))
end

--- Runs `code` in a fresh process of the same interpreter, with the same
--- package paths; returns its stdout (stderr is appended).
function M.run_lua(code)
  local name = os.tmpname()
  local f = assert(io.open(name, "w"))
  f:write(string.format("package.path = %q\npackage.cpath = %q\n", package.path, package.cpath))
  f:write(code)
  f:close()
  local p = assert(io.popen(M.interpreter() .. " " .. name .. " 2>&1"))
  local out = p:read("*a")
  p:close()
  os.remove(name)
  return out
end

--- A descriptor number that is certainly closed right now (made by a socket
--- that really had a descriptor: luasocket's tcp() has none until used).
function M.dead_fd()
  local s = assert(socket.bind("127.0.0.1", 0))
  local fd = s:getfd()
  assert(fd >= 0)
  s:close()
  return math.floor(fd)
end

--- How many descriptors the process has open, not counting the pipe of the
--- popen that asks (open_fds can count that pipe twice: the parent holds
--- both of its ends for a moment after the child starts).
function M.count_fds()
  local p = assert(io.popen(string.format(
    [[sh -c 'me=$(readlink /proc/$$/fd/1); ls -l /proc/%d/fd | grep -F -v -e "$me" | grep -c -e " -> "']],
    M.pid())))
  local n = tonumber(p:read("*a"))
  p:close()
  return n
end

-- Helpers added for the selectors/compat/examples specs -------------------

--- `n` connected TCP pairs on 127.0.0.1 through one listener: an array of
--- `{a, b}` (luasocket objects, non-blocking), and a function closing them all.
function M.tcp_pairs(n)
  local server = assert(socket.bind("127.0.0.1", 0, 64))
  local _, port = server:getsockname()
  local pairs_ = {}
  for i = 1, n do
    local a = assert(socket.connect("127.0.0.1", port))
    local b = assert(server:accept())
    a:settimeout(0)
    b:settimeout(0)
    pairs_[i] = { a, b }
  end
  server:close()
  return pairs_, function()
    for i = 1, #pairs_ do
      pairs_[i][1]:close()
      pairs_[i][2]:close()
    end
  end
end

return M
