-- copas (Debian's lua-copas, for Lua 5.1 and 5.2) with C connections to a copas
-- echo server in the same process, each client coroutine bouncing a line off the
-- server: round trips per second with luasocket's socket.select, and with
-- select.compat.socket_select installed in its place, alternating in one run.
-- Not run by run.sh (copas is not among its packages):
--   LUA_PATH="lua/?.lua;;" LUA_CPATH="build/lua51/?.so;;" lua5.1 bench/lua/copas.lua [C] [SECONDS] [ROUNDS]
local socket = require "socket"
local copas = require "copas"
local compat = require "select.compat"

local C = tonumber(arg[1]) or 200
local SECONDS = tonumber(arg[2]) or 2
local ROUNDS = tonumber(arg[3]) or 3

local server = assert(socket.bind("127.0.0.1", 0))
local _, port = server:getsockname()
copas.addserver(server, function(skt)
  skt = copas.wrap(skt)
  while true do
    local line = skt:receive("*l")
    if not line then return end
    skt:send(line .. "\n")
  end
end)

local count = 0
for _ = 1, C do
  copas.addthread(function()
    local skt = socket.tcp()
    assert(copas.connect(skt, "127.0.0.1", port))
    skt = copas.wrap(skt)
    while true do
      skt:send("ping\n")
      if not skt:receive("*l") then return end
      count = count + 1
    end
  end)
end

local function run(seconds)
  local t0 = socket.gettime()
  local c0 = count
  while socket.gettime() - t0 < seconds do copas.step(1) end
  return (count - c0) / (socket.gettime() - t0)
end

run(0.5) -- connect everyone, warm up
local stock = socket.select
local results = { stock = {}, compat = {} }
for _ = 1, ROUNDS do
  socket.select = stock
  results.stock[#results.stock + 1] = run(SECONDS)
  compat.install(socket)
  results.compat[#results.compat + 1] = run(SECONDS)
end
socket.select = stock
for _, k in ipairs({ "stock", "compat" }) do
  local parts = {}
  for i, v in ipairs(results[k]) do parts[i] = string.format("%.0f", v) end
  print(string.format("%s, %d connections: %s round trips/s (%s)", _VERSION, C,
    k == "stock" and "socket.select" or "compat.socket_select", table.concat(parts, ", ")))
end
os.exit(0)
