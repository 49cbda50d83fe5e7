-- The floor rows: bench/c/luafloor.c (a bare C binding of poll(2) and
-- epoll_wait(2) in the usual luaL_checkudata idiom, no other checks) driven by
-- the W1 and W2 loops of ours.lua. What any Lua C function doing this job
-- costs at least: the method call, one system call and the result tables.
--
--   lua5.4 bench/lua/floor.lua     (run.sh sets LUA_CPATH to the built luafloor.so)

local B = require "bench_common"
local floor = require "luafloor"

local measure, emit = B.measure, B.emit
local tag = jit and "luajit" or (_VERSION:gsub("Lua (%d)%.(%d)", "lua%1%2"))

local ROWS = {
  { "floor_poll", function(s)
    local p = floor.poll()
    for _, fd in ipairs(s.ends) do p:register(fd) end
    return function(it)
      for _ = 1, it do p:poll(0) end
      return it
    end
  end },
  { "floor_epoll", function(s)
    local ep = floor.epoll()
    for _, fd in ipairs(s.ends) do ep:register(fd) end
    return function(it)
      for _ = 1, it do ep:poll(0) end
      return it
    end
  end },
}

for _, n in ipairs(B.W1_N) do
  local s = B.open_set(n)
  for _, kind in ipairs({ "idle", "one" }) do
    if kind == "one" then B.make_one_ready(s) end
    for _, row in ipairs(ROWS) do
      emit("W1", tag .. "." .. row[1], n .. ":" .. kind, measure(row[2](s)))
      collectgarbage()
    end
  end
  B.close_set(s)
  collectgarbage()
end
for _, n in ipairs(B.W2_N) do
  local s = B.open_set(n)
  B.fill(s)
  for _, row in ipairs(ROWS) do
    emit("W2", tag .. "." .. row[1], n, measure(row[2](s)))
    collectgarbage()
  end
  B.close_set(s)
  collectgarbage()
end
B.shutdown()
