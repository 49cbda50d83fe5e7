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

return M
