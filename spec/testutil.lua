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

--- A descriptor number that is certainly closed right now (luasocket 3 only
-- creates the socket of socket.tcp() on first use, so bind one first).
function M.closed_fd()
  local s = assert(socket.bind("127.0.0.1", 0))
  local fd = s:getfd()
  s:close()
  return fd
end

--- The soft RLIMIT_NOFILE of this process (from /proc/self/limits).
function M.fd_limit()
  local f = assert(io.open("/proc/self/limits"))
  local text = f:read("*a")
  f:close()
  return tonumber(text:match("Max open files%s+(%d+)")) or 1024
end

--- How many descriptors below `limit` (default: the soft fd limit, at most
-- 16384) the process has open. Counted in-process with one poll(2) call over
-- every number (a closed one reports POLLNVAL), so no child process or pipe
-- disturbs the count.
function M.open_fds(limit)
  local sel = require "select"
  limit = limit or math.min(M.fd_limit(), 16384)
  local p = sel.poll()
  for fd = 0, limit - 1 do p:register(fd, 0) end
  local events = assert(p:poll(0))
  local closed = 0
  for _, ev in ipairs(events) do
    if ev[2] == sel.POLLNVAL then closed = closed + 1 end
  end
  return limit - closed
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

-- Helpers added for the kqueue signal/proc/vnode/examples specs -----------

--- The SigBlk line of /proc/<pid>/status: this process's blocked-signal mask
--- as a hex string (16 digits; too wide for a 5.1 number, so kept a string).
function M.sigblk()
  local f = assert(io.open("/proc/" .. M.pid() .. "/status"))
  local text = f:read("*a")
  f:close()
  return assert(text:match("SigBlk:%s*(%x+)"), "no SigBlk line")
end

--- Whether signal `signo` (1..64) is set in a /proc hex mask (default: SigBlk).
function M.sig_in_mask(signo, mask)
  mask = mask or M.sigblk()
  local index = #mask - math.floor((signo - 1) / 4) -- hex digit holding the bit
  local digit = tonumber(mask:sub(index, index), 16)
  local bit = 2 ^ ((signo - 1) % 4)
  return digit % (2 * bit) >= bit
end

--- Starts `script` with io.popen as a direct child of this process (popen's
--- own `sh -c`, which prints its pid first). Returns the popen handle (do not
--- close it before the child is seen to exit: closing waits for it) and the
--- pid. A `sh -c '...'` inside `script` would be a grandchild.
function M.spawn(script)
  local p = assert(io.popen("echo $$; " .. script))
  local child = tonumber(p:read("*l"))
  assert(child, "no pid from the child")
  return p, child
end

--- The interpreter this spec runs under, from the lowest index of `arg`
--- (busted is run as `lua5.x /usr/bin/busted ...`), else lua5.4.
function M.lua_command()
  local args = rawget(_G, "arg")
  if type(args) == "table" then
    local i = 0
    while args[i - 1] ~= nil do
      i = i - 1
    end
    if i < 0 and type(args[i]) == "string" then
      return args[i]
    end
  end
  return "lua5.4"
end

--- Runs `code` in a fresh process of the same interpreter (same package
--- paths); returns its output (stdout and stderr) and its exit status as the
--- shell reports it (128 + n when killed by signal n).
function M.run_lua_status(code)
  local name = os.tmpname()
  local f = assert(io.open(name, "w"))
  f:write(string.format("package.path = %q\npackage.cpath = %q\n", package.path, package.cpath))
  f:write(code)
  f:close()
  local p = assert(io.popen(string.format("%s %s 2>&1; echo \"status=$?\"", M.lua_command(), name)))
  local out = p:read("*a")
  p:close()
  os.remove(name)
  local status = tonumber(out:match("status=(%d+)%s*$"))
  return out:gsub("status=%d+%s*$", ""), status
end

--- A fresh empty directory under /tmp; remove it with M.remove_tree.
function M.temp_dir()
  local name = os.tmpname()
  os.remove(name)
  os.execute("mkdir -m 700 " .. name)
  local f = io.open(name .. "/.", "r")
  assert(f, "could not create " .. name)
  f:close()
  return name
end

--- rm -rf of a directory made by M.temp_dir.
function M.remove_tree(dir)
  assert(dir:match("^/tmp/"), "refusing to remove " .. tostring(dir))
  os.execute("rm -rf '" .. dir .. "'")
end

--- Writes `text` to `path` (mode "a" by default) and closes it at once.
function M.write_file(path, text, mode)
  local f = assert(io.open(path, mode or "a"))
  f:write(text)
  f:close()
end

--- Reaps child `child` started as popen handle `p` (util.spawn) and returns
--- how it ended as Lua 5.4's close says it: "exit" or "signal", and the code.
--- Uses luaposix's wait where installed (5.1 and LuaJIT's close give no
--- status), else closes the handle (Lua 5.2+). Errors if the child was
--- already reaped (waitpid found nothing).
function M.reap(p, child)
  local posix = M.posix()
  if posix then
    local got, how, code = require("posix.sys.wait").wait(child)
    p:close() -- already reaped: pclose fails quietly
    if got ~= child then
      error("waitpid(" .. child .. ") found no child: " .. tostring(how), 2)
    end
    return how == "exited" and "exit" or how == "killed" and "signal" or how, code
  end
  if _VERSION < "Lua 5.2" then
    error("no way to read a child's status in " .. _VERSION .. " without luaposix", 2)
  end
  local _, how, code = p:close()
  return how, code
end

--- Whether signal `signo` is ignored (SigIgn) in this process: children
--- inherit that, and a shell cannot undo it for them.
function M.sig_ignored(signo)
  local f = assert(io.open("/proc/" .. M.pid() .. "/status"))
  local text = f:read("*a")
  f:close()
  return M.sig_in_mask(signo, assert(text:match("SigIgn:%s*(%x+)")))
end

--- Waits (up to 2 s) until a luasocket socket is readable; above fd 1023,
-- where luasocket's select cannot look, just gives the data time to arrive.
function M.wait_readable(s)
  if s:getfd() >= 1024 then
    M.sleep(0.05)
    return
  end
  assert(#socket.select({ s }, nil, 2) == 1, "socket did not become readable")
end

--- The events reported for `fd` in a poll/epoll result, or nil (a fd
-- reported twice is an error).
function M.events_of(result, fd)
  local found
  for _, pair in ipairs(result) do
    if pair[1] == fd then
      assert(found == nil, "fd " .. fd .. " reported twice")
      found = pair[2]
    end
  end
  return found
end

--- The fds of a poll/epoll result, sorted.
function M.fds_of(result)
  local fds = {}
  for _, pair in ipairs(result) do
    fds[#fds + 1] = pair[1]
  end
  table.sort(fds)
  return fds
end

--- `t`, sorted in place.
function M.sorted(t)
  table.sort(t)
  return t
end

--- True when the specs run against the native kqueue backend linked with
-- libkqueue on Linux (scripts/test-libkqueue.sh sets SELECT_TEST_LIBKQUEUE).
-- A test that meets a known difference of libkqueue from FreeBSD's kqueue
-- (or where the emulation's behaviour is not the kernels') then calls
-- busted's `pending` with the reason: shown and counted, never dropped.
M.on_libkqueue = os.getenv("SELECT_TEST_LIBKQUEUE") ~= nil

return M
