-- Soak: N mixed operations on poll, epoll, kqueue and selectors objects
-- (register / modify / unregister / poll / close, kqueue adds and deletes
-- with table udata, USER triggers and timers, sockets written and drained),
-- sampling the process's open descriptors (/proc/self/fd), its resident size
-- (/proc/self/statm) and the Lua heap (collectgarbage "count") after a warm-up
-- and at the end. They must stay flat: same descriptors, RSS within
-- SOAK_RSS_SLACK_KB (default 4096), Lua heap within 512 kB.
--
--   SOAK_OPS=1000000 LUA_CPATH='build/lua54/?.so;;' LUA_PATH='lua/?.lua;;' lua5.4 scripts/soak.lua
--
-- spec/soak_spec.lua runs it with 20,000 operations. As a script it prints
-- one line of figures and exits 0 (flat) or 1.
local sel = require "select"
local socket = require "socket"
local ok_selectors, selectors = pcall(require, "select.selectors")

local M = {}

local function read_file(path)
  local f = io.open(path)
  if not f then return nil end
  local s = f:read("*a")
  f:close()
  return s
end

--- Open descriptors of this process (an in-process count: one poll(2) over
-- every number below the soft limit, closed ones answer POLLNVAL).
function M.open_fds()
  local limits = read_file("/proc/self/limits") or ""
  local limit = math.min(tonumber(limits:match("Max open files%s+(%d+)")) or 1024, 65536)
  local p = sel.poll()
  for fd = 0, limit - 1 do p:register(fd, 0) end
  local closed = 0
  for _, ev in ipairs(assert(p:poll(0))) do
    if ev[2] == sel.POLLNVAL then closed = closed + 1 end
  end
  return limit - closed
end

--- Resident set size in kB.
function M.rss_kb()
  local statm = read_file("/proc/self/statm") or "0 0"
  local pages = tonumber(statm:match("^%d+%s+(%d+)")) or 0
  return pages * 4
end

local function gc()
  collectgarbage("collect")
  collectgarbage("collect")
end

function M.sample()
  gc()
  return { fds = M.open_fds(), rss = M.rss_kb(), lua = collectgarbage("count") }
end

local function tcp_pair()
  local server = assert(socket.bind("127.0.0.1", 0))
  local _, port = server:getsockname()
  local a = assert(socket.connect("127.0.0.1", port))
  local b = assert(server:accept())
  server:close()
  a:settimeout(0)
  b:settimeout(0)
  return a, b
end

--- Runs `n` operations; returns the samples after warm-up and at the end.
function M.run(n, seed)
  local state = (seed or 7) % 2147483646 + 1
  local function rand(k)
    state = (state * 16807) % 2147483647
    return state % k + 1
  end

  local pairs_ = {}
  for i = 1, 8 do
    local a, b = tcp_pair()
    pairs_[i] = { a = a, b = b }
  end
  local function sock()
    local p = pairs_[rand(#pairs_)]
    return rand(2) == 1 and p.a or p.b
  end

  local p = sel.poll()
  local ep = sel.epoll()
  local kq = sel.kqueue()
  local s = ok_selectors and selectors.DefaultSelector() or nil
  local s_reg = {}
  local ep_reg, kq_reg = {}, {}

  local ops = {
    -- poll
    function() p:register(sock(), rand(2) == 1 and sel.POLLIN or sel.POLLIN + sel.POLLOUT) end,
    function() p:modify(sock(), sel.POLLIN) end,
    function() pcall(p.unregister, p, sock()) end,
    function() p:poll(0) end,
    function()
      if rand(50) == 1 then p = sel.poll() end
    end,
    -- epoll
    function()
      local x = sock()
      if ep_reg[x] then ep:modify(x, sel.EPOLLIN) else ep:register(x, sel.EPOLLIN); ep_reg[x] = true end
    end,
    function()
      local x = sock()
      if ep_reg[x] then ep:unregister(x); ep_reg[x] = nil end
    end,
    function() ep:poll(0) end,
    function()
      if rand(50) == 1 then
        ep:close()
        ep, ep_reg = sel.epoll(), {}
      end
    end,
    -- kqueue: fd registrations with table udata, USER triggers, timers
    function()
      local x = sock()
      local fd = x:getfd()
      local flags = kq_reg[fd] and sel.KQ_EV_DELETE or sel.KQ_EV_ADD
      kq_reg[fd] = not kq_reg[fd] or nil
      kq:control({ sel.kevent(fd, sel.KQ_FILTER_READ, flags, 0, 0, { fd = fd, pad = { 1, 2, 3 } }) }, 0, 0)
    end,
    function()
      local id = rand(4)
      kq:control({
        sel.kevent(id, sel.KQ_FILTER_USER, sel.KQ_EV_ADD + sel.KQ_EV_CLEAR, sel.KQ_NOTE_TRIGGER, 0, { id }),
      }, 4, 0)
    end,
    function()
      local id = rand(3)
      local change = rand(2) == 1
        and sel.kevent(id, sel.KQ_FILTER_TIMER, sel.KQ_EV_ADD + sel.KQ_EV_ONESHOT, 0, 1, { "timer" })
        or sel.kevent(id, sel.KQ_FILTER_TIMER, sel.KQ_EV_DELETE)
      kq:control({ change }, 1, 0)
    end,
    function() kq:control(nil, 16, 0) end,
    function()
      if rand(50) == 1 then
        kq:close()
        kq, kq_reg = sel.kqueue(), {}
      end
    end,
    -- selectors
    function()
      if not s then return end
      local x = sock()
      if s_reg[x] then
        if rand(2) == 1 then s:modify(x, 3, { "data" }) else s:unregister(x); s_reg[x] = nil end
      else
        s:register(x, 1, { "data" }); s_reg[x] = true
      end
    end,
    function()
      if s then s:select(0) end
    end,
    function()
      if s and rand(50) == 1 then
        s:close()
        s, s_reg = (rand(2) == 1 and selectors.PollSelector or selectors.DefaultSelector)(), {}
      end
    end,
    -- traffic
    function() sock():send("x") end,
    function() sock():receive(64) end,
  }

  local warm = math.max(math.floor(n / 10), 1000)
  local first
  for i = 1, n + warm do
    if i == warm + 1 then first = M.sample() end
    ops[rand(#ops)]()
  end
  -- Drop what the loop holds so that only leaks remain.
  p = nil
  ep:close()
  kq:close()
  if s then s:close() end
  for _, pr in ipairs(pairs_) do pr.a:close(); pr.b:close() end
  ep, kq, s = nil, nil, nil
  return first, M.sample()
end

function M.report(n, first, last)
  return string.format(
    "soak: %d ops; fds %d -> %d; rss %d -> %d kB (%+d); lua heap %.0f -> %.0f kB (%+.0f)",
    n, first.fds, last.fds, first.rss, last.rss, last.rss - first.rss, first.lua, last.lua, last.lua - first.lua)
end

--- Checks flatness; returns ok, message.
-- `before`: descriptors open before the run (the end must be back there).
function M.check(n, before, first, last)
  local slack = tonumber(os.getenv("SOAK_RSS_SLACK_KB") or "") or 4096
  local msg = M.report(n, first, last)
  if last.fds ~= before then
    return false, msg .. ": descriptors leaked"
  end
  if last.rss - first.rss > slack then
    return false, msg .. ": RSS grew"
  end
  if last.lua - first.lua > 512 then
    return false, msg .. ": Lua heap grew"
  end
  return true, msg
end

-- As a script: SOAK_OPS operations (default 200,000).
if arg and arg[0] and arg[0]:match("soak%.lua$") then
  local n = tonumber(os.getenv("SOAK_OPS") or "") or 200000
  local before = M.open_fds()
  local first, last = M.run(n)
  local ok, msg = M.check(n, before, first, last)
  print(msg)
  print(string.format("descriptors: %d before the run, %d after", before, last.fds))
  os.exit(ok and 0 or 1)
end

return M
