-- Lua peers on the same workloads as ours.lua:
--   lua5.4 bench/lua/peers.lua luasocket   socket.select
--   lua5.3 bench/lua/peers.lua luaposix    posix.poll (no Lua 5.4 build exists)
--   lua5.4 bench/lua/peers.lua luv         uv.new_poll handles, uv.run("nowait") / uv.run()
--   lua5.4 bench/lua/peers.lua cqueues     one coroutine per descriptor in cqueues.poll, cq:step()
--   lua5.4 bench/lua/peers.lua compat      C1: select.compat.socket_select vs socket.select
-- None of them keeps a registration that can be added and removed by itself
-- (luv and cqueues defer epoll_ctl to their next loop turn), so W4 is not run.

local B = require "bench_common"

local measure, emit = B.measure, B.emit
local which = arg[1]
local FD_SETSIZE = B.FD_SETSIZE

-- Each peer: setup(s) -> op, teardown for W1/W2 (timeout 0 calls), and
-- ping(s) -> op, teardown for W3 (natural loop; op counts token hops).
local peers = {}

peers.luasocket = {
  impl = "luasocket.select",
  fd_limit = true,
  wait = function(s)
    local select_, socks = require("socket").select, s.objs
    return function(it)
      for _ = 1, it do select_(socks, nil, 0) end
      return it
    end
  end,
  ping = function(s)
    local select_ = require("socket").select
    local socks, partner = {}, {}
    for i, fd in ipairs(s.ends) do
      socks[i] = s.sock[fd]
      partner[socks[i]] = s.partner[fd]
    end
    return function(it)
      local done = 0
      while done < it do
        local r = select_(socks, nil)
        for i = 1, #r do
          local sk = r[i]
          sk:receive(1)
          partner[sk]:send("x")
        end
        done = done + #r
      end
      return done
    end
  end,
}

peers.luaposix = {
  impl = "luaposix.poll",
  wait = function(s)
    local poll = require("posix.poll").poll
    local fds = {}
    for _, fd in ipairs(s.ends) do fds[fd] = { events = { IN = true } } end
    return function(it)
      for _ = 1, it do poll(fds, 0) end
      return it
    end
  end,
  ping = function(s)
    local poll = require("posix.poll").poll
    local fds = {}
    for _, fd in ipairs(s.ends) do fds[fd] = { events = { IN = true } } end
    local sock, partner = s.sock, s.partner
    return function(it)
      local done = 0
      while done < it do
        poll(fds, -1)
        for fd, t in pairs(fds) do
          if t.revents.IN then
            sock[fd]:receive(1)
            partner[fd]:send("x")
            done = done + 1
          end
        end
      end
      return done
    end
  end,
}

peers.luv = {
  impl = "luv.poll",
  wait = function(s)
    local uv = require "luv"
    local handles = {}
    local function cb() end
    for i, fd in ipairs(s.ends) do
      handles[i] = uv.new_poll(fd)
      handles[i]:start("r", cb)
    end
    return function(it)
      for _ = 1, it do uv.run("nowait") end
      return it
    end, function()
      for _, h in ipairs(handles) do h:stop(); h:close() end
      uv.run("nowait")
    end
  end,
  ping = function(s)
    local uv = require "luv"
    local handles = {}
    local done, target = 0, 0
    for i, fd in ipairs(s.ends) do
      local sk, pt = s.sock[fd], s.partner[fd]
      handles[i] = uv.new_poll(fd)
      handles[i]:start("r", function()
        sk:receive(1)
        pt:send("x")
        done = done + 1
        if done >= target then uv.stop() end
      end)
    end
    return function(it)
      local start = done
      target = done + it
      uv.run()
      return done - start
    end, function()
      for _, h in ipairs(handles) do h:stop(); h:close() end
      uv.run("nowait")
    end
  end,
}

local function cq_pollable(fd)
  return { pollfd = fd, events = "r" }
end

peers.cqueues = {
  impl = "cqueues.poll",
  -- cq:step() hands out at most a few dozen events per call, so with ready
  -- descriptors a unit is one delivery to each of them (several steps).
  wait = function(s, ready)
    local cqueues = require "cqueues"
    local cq = cqueues.new()
    local wakes = 0
    for _, fd in ipairs(s.ends) do
      local obj = cq_pollable(fd)
      cq:wrap(function()
        while true do
          cqueues.poll(obj)
          wakes = wakes + 1
        end
      end)
    end
    return function(it)
      if ready == 0 then
        for _ = 1, it do assert(cq:step(0)) end
        return it
      end
      local target = wakes + it * ready
      local start = wakes
      while wakes < target do assert(cq:step(0)) end
      return (wakes - start) / ready
    end, function()
      for _, fd in ipairs(s.ends) do cqueues.cancel(fd) end
      cq:close()
    end
  end,
  ping = function(s)
    local cqueues = require "cqueues"
    local cq = cqueues.new()
    local done = 0
    for _, fd in ipairs(s.ends) do
      local obj, sk, pt = cq_pollable(fd), s.sock[fd], s.partner[fd]
      cq:wrap(function()
        while true do
          cqueues.poll(obj)
          sk:receive(1)
          pt:send("x")
          done = done + 1
        end
      end)
    end
    return function(it)
      local start = done
      local target = done + it
      while done < target do assert(cq:step()) end
      return done - start
    end, function()
      for _, fd in ipairs(s.ends) do cqueues.cancel(fd) end
      cq:close()
    end
  end,
}

-- C1: select.compat.socket_select against the function it replaces, luasocket's
-- socket.select, on the same idle sockets in the same process, alternating
-- (one after the other for each N and each kind of socket), timeout 0. Needs the
-- module (select.so) and lua/select/compat.lua on the paths.
--   lua5.1 bench/lua/peers.lua compat   (also lua5.4, luajit)
local function compat_rows()
  local socket = require "socket"
  local compat = require "select.compat"
  local tag = jit and "luajit" or _VERSION:gsub("Lua (%d)%.(%d)", "lua%1%2")
  local rows = {
    { "luasocket.select", socket.select },
    { "compat.socket_select", compat.socket_select },
  }
  -- `n` idle connected TCP sockets: ends of n/2 loopback connections.
  local function tcp_set(n)
    local srv = assert(socket.bind("127.0.0.1", 0))
    local _, port = srv:getsockname()
    local objs, all = {}, {}
    for _ = 1, math.floor((n + 1) / 2) do
      local c = assert(socket.connect("127.0.0.1", port))
      local a = assert(srv:accept())
      all[#all + 1] = a
      all[#all + 1] = c
    end
    srv:close()
    for i = 1, n do objs[i] = all[i] end
    return objs, function() for _, o in ipairs(all) do o:close() end end
  end
  local function unix_set(n)
    local s = B.open_set(n)
    return s.objs, function() B.close_set(s) end
  end
  for _, n in ipairs({ 10, 100, 1000 }) do
    for _, kind in ipairs({ "tcp", "unix" }) do
      local objs, close = (kind == "tcp" and tcp_set or unix_set)(n)
      for _, row in ipairs(rows) do
        local f = row[2]
        emit("C1", row[1] .. "@" .. tag, n .. ":" .. kind, measure(function(it)
          for _ = 1, it do f(objs, nil, 0) end
          return it
        end))
      end
      close()
      collectgarbage()
    end
  end
  B.shutdown()
end

if which == "compat" then
  compat_rows()
  return
end

local peer = assert(peers[which], "usage: peers.lua luasocket|luaposix|luv|cqueues|compat")
local impl = peer.impl

local function too_big(s)
  return peer.fd_limit and s.maxfd >= FD_SETSIZE
end

for _, n in ipairs(B.W1_N) do
  local s = B.open_set(n)
  for _, kind in ipairs({ "idle", "one" }) do
    local param = n .. ":" .. kind
    if too_big(s) then
      emit("W1", impl, param, "n/a (FD_SETSIZE)")
    else
      if kind == "one" then B.make_one_ready(s) end
      local op, done = peer.wait(s, kind == "one" and 1 or 0)
      emit("W1", impl, param, measure(op))
      if done then done() end
    end
  end
  B.close_set(s)
  collectgarbage()
end

for _, n in ipairs(B.W2_N) do
  local s = B.open_set(n)
  if too_big(s) then
    emit("W2", impl, n, "n/a (FD_SETSIZE)")
  else
    B.fill(s)
    local op, done = peer.wait(s, n)
    emit("W2", impl, n, measure(op))
    if done then done() end
  end
  B.close_set(s)
  collectgarbage()
end

for _, k in ipairs(B.W3_K) do
  local s = B.open_set(2 * k)
  if too_big(s) then
    emit("W3", impl, k, "n/a (FD_SETSIZE)")
  else
    B.tokens(s)
    local op, done = peer.ping(s)
    emit("W3", impl, k, 1e9 / (2 * measure(op)))
    if done then done() end
  end
  B.close_set(s)
  collectgarbage()
end
B.shutdown()
