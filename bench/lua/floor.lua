-- The floor rows: bench/c/luafloor.c (a bare C binding of poll(2) and
-- epoll_wait(2) in the usual luaL_checkudata idiom, no other checks) driven by
-- the W1 and W2 loops ours.lua uses (bench_common.w1_w2). What any Lua C function doing this job
-- costs at least: the method call, one system call and the result tables.
--
--   lua5.4 bench/lua/floor.lua     (run.sh sets LUA_CPATH to the built luafloor.so)

local B = require "bench_common"
local floor = require "luafloor"

local tag = jit and "luajit" or (_VERSION:gsub("Lua (%d)%.(%d)", "lua%1%2"))

-- A row: the object made by `new`, every end registered, poll(0) in a loop.
local function row(name, new)
  return { name, function(s)
    local obj = new()
    for _, fd in ipairs(s.ends) do obj:register(fd) end
    return function(it)
      for _ = 1, it do obj:poll(0) end
      return it
    end
  end }
end

-- select.select over every end, like ours.lua's select row.
local function select_row(s)
  local select_, rl = floor.select, s.ends
  return function(it)
    for _ = 1, it do select_(rl, nil, nil, 0) end
    return it
  end
end

B.w1_w2({ { "floor_select", select_row }, row("floor_poll", floor.poll), row("floor_epoll", floor.epoll) },
  function(name) return tag .. "." .. name end)
B.shutdown()
