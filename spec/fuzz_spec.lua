-- Random calls with random arguments to every function and method of the
-- module and of select.selectors: each call either succeeds or raises a Lua
-- error whose value is a string (never a crash, a hang, or a Rust panic that
-- reached Lua as "internal error (Rust panic)").
--
-- Deterministic: a fixed seed (FUZZ_SEED=n to change it, FUZZ_ROUNDS=n for the
-- number of calls per group). A failure names the seed, the round and the call.
-- Waits always use a timeout that cannot block (0, a tenth of a millisecond,
-- or an invalid value); `nil` (wait forever) is never passed to a wait.
local sel = require "select"
local util = require "testutil"
local socket = require "socket"

local SEED = tonumber(os.getenv("FUZZ_SEED") or "") or 20240611
local ROUNDS = tonumber(os.getenv("FUZZ_ROUNDS") or "") or 20000

local ok_selectors, selectors = pcall(require, "select.selectors")

-- Park-Miller minimal standard generator: exact in doubles and integers, so
-- every Lua version draws the same sequence from the same seed.
local state
local function seed(s) state = s % 2147483646 + 1 end
local function rand(n) -- 1..n
  state = (state * 16807) % 2147483647
  return state % n + 1
end
local function pick(t) return t[rand(#t)] end

local function describe_value(v)
  local t = type(v)
  if t == "string" then return string.format("%q", v) end
  if t == "number" or t == "boolean" or t == "nil" then return tostring(v) end
  return t
end

-- Objects made once per group, some of them closed on purpose.
local fixtures

local function make_fixtures()
  local a, b = util.tcp_pair()
  local closed_sock = assert(socket.tcp())
  closed_sock:close()
  local closed_file = io.tmpfile()
  closed_file:close()
  local closed_ep = sel.epoll()
  closed_ep:close()
  local closed_kq = sel.kqueue()
  closed_kq:close()
  local f = {
    a = a, b = b,
    poll = sel.poll(), epoll = sel.epoll(), kqueue = sel.kqueue(),
    closed_ep = closed_ep, closed_kq = closed_kq,
    closed_sock = closed_sock, closed_file = closed_file,
    closed_fd = util.closed_fd(),
    tmp = io.tmpfile(),
  }
  f.kevent = sel.kevent(a, sel.KQ_FILTER_READ, sel.KQ_EV_ADD)
  return f
end

local function close_fixtures()
  if not fixtures then return end
  for _, k in ipairs { "a", "b", "epoll", "kqueue" } do
    pcall(function() fixtures[k]:close() end)
  end
  pcall(function() fixtures.tmp:close() end)
  fixtures = nil
end

-- Any value at all.
local function any_value()
  local f = fixtures
  local choices = {
    function() return nil end,
    function() return true end,
    function() return false end,
    function() return 0 end,
    function() return 1 end,
    function() return -1 end,
    function() return rand(40) - 1 end,
    function() return 3.5 end,
    function() return -0.0 end,
    function() return 1 / 0 end,
    function() return -1 / 0 end,
    function() return 0 / 0 end,
    function() return 2 ^ 31 end,
    function() return 2 ^ 53 end,
    function() return -(2 ^ 63) end,
    function() return 2 ^ 64 end,
    function() return 1e308 end,
    function() return 65535 end,
    function() return 65536 end,
    function() return 0x7fffffff end,
    function() return "" end,
    function() return "abc" end,
    function() return "1" end,
    function() return "0x10" end,
    function() return {} end,
    function() return { 1, 2, 3 } end,
    function() return { ident = rand(10) - 1 } end,
    function() return function() end end,
    function() return coroutine.create(function() end) end,
    function() return io.stdout end,
    function() return io.stdin end,
    function() return f.closed_file end,
    function() return f.tmp end,
    function() return f.a end,
    function() return f.b end,
    function() return f.closed_sock end,
    function() return f.closed_fd end,
    function() return f.poll end,
    function() return f.epoll end,
    function() return f.kqueue end,
    function() return f.closed_ep end,
    function() return f.closed_kq end,
    function() return f.kevent end,
    function() return { getfd = function() return -1 end } end,
    function() return { fileno = function() return "x" end } end,
    function() return { fileno = function() return 2.5 end } end,
    function() return { fileno = function() error("no fileno here") end } end,
    function() return { getfd = function() return f.a:getfd() end } end,
    function() return setmetatable({}, { __index = function() error("no index") end }) end,
  }
  return pick(choices)()
end

-- A value for a file-descriptor argument: mostly plausible ones.
local function fd_value()
  if rand(3) == 1 then return any_value() end
  local f = fixtures
  return pick { f.a, f.b, f.tmp, io.stdout, f.a:getfd(), f.b:getfd(), f.closed_fd, f.closed_sock, 0, 1 }
end

-- A list argument for select.select.
local function list_value()
  local r = rand(4)
  if r == 1 then return any_value() end
  local t = {}
  for i = 1, rand(4) - 1 do t[i] = fd_value() end
  return t
end

-- Timeouts in seconds that never block (for select and kqueue.control: the
-- negative ones are errors).
local function timeout_s(allow_negative)
  local t = { 0, -0.0, 1e-4, 0 / 0, 1 / 0, 1e300, "0", "abc", {}, true, false, print }
  if allow_negative then
    t[#t + 1] = -1
    t[#t + 1] = -1 / 0
  end
  return pick(t)
end

local function mask_value()
  if rand(3) == 1 then return any_value() end
  return pick { 0, 1, 4, 5, sel.POLLIN, sel.POLLOUT, sel.EPOLLET, 65535, 0xffffffff, -5, 2 ^ 40 }
end

local function kevent_value()
  if rand(6) == 1 then return any_value() end
  local filters = { sel.KQ_FILTER_READ, sel.KQ_FILTER_WRITE, sel.KQ_FILTER_TIMER, sel.KQ_FILTER_USER,
    sel.KQ_FILTER_AIO, sel.KQ_FILTER_VNODE, sel.KQ_FILTER_PROC, -99, 0 }
  local flags = { sel.KQ_EV_ADD, sel.KQ_EV_DELETE, sel.KQ_EV_ADD + sel.KQ_EV_ONESHOT,
    sel.KQ_EV_ADD + sel.KQ_EV_CLEAR, sel.KQ_EV_ENABLE, sel.KQ_EV_DISABLE, sel.KQ_EV_ADD + sel.KQ_EV_RECEIPT,
    sel.KQ_EV_ADD + sel.KQ_EV_DISPATCH, 0, 0xffff }
  local ident = rand(4) == 1 and (rand(8) - 1) or fd_value()
  local args = { ident, pick(filters), pick(flags), pick { 0, sel.KQ_NOTE_TRIGGER, 1, 0xffffffff },
    pick { 0, 1, 5, 1000, -1 }, any_value() }
  for i = 2, 6 do
    if rand(8) == 1 then args[i] = any_value() end
  end
  local ok, ev = pcall(sel.kevent, args[1], args[2], args[3], args[4], args[5], args[6])
  if ok then return ev end
  return any_value()
end

local function changelist_value()
  if rand(5) == 1 then return any_value() end
  local t = {}
  for i = 1, rand(4) - 1 do t[i] = kevent_value() end
  return t
end

-- Calls fn(...) under pcall; fails the test on anything but success or a
-- string error. `what` names the call for the failure message.
local function try(round, what, fn, ...)
  local n = select("#", ...)
  local args = { ... }
  local ok, err = pcall(fn, ...)
  if ok then return true end
  local shown = {}
  for i = 1, n do shown[i] = describe_value(args[i]) end
  local where = string.format("seed %d, round %d: %s(%s)", SEED, round, what, table.concat(shown, ", "))
  assert(type(err) == "string", where .. " raised a " .. type(err) .. " error")
  assert(not err:find("panic", 1, true), where .. " panicked: " .. err)
  assert(not err:find("internal error", 1, true), where .. ": " .. err)
  return false
end

-- Runs `ROUNDS` random calls drawn from `calls` (name -> function(round)).
local function fuzz(calls, salt)
  seed(SEED + salt)
  local names = {}
  for name in pairs(calls) do names[#names + 1] = name end
  table.sort(names)
  for round = 1, ROUNDS do
    local name = pick(names)
    calls[name](round, name)
    if round % 500 == 0 then
      collectgarbage()
    end
  end
end

describe("fuzz: random arguments never crash, hang or panic", function()
  before_each(function() fixtures = make_fixtures() end)
  after_each(close_fixtures)

  it("select.select (seed " .. SEED .. ")", function()
    fuzz({
      select = function(r, what)
        try(r, what, sel.select, list_value(), list_value(), list_value(), timeout_s(true))
      end,
      select_any = function(r, what)
        try(r, what, sel.select, any_value(), any_value(), any_value(), timeout_s(true))
      end,
    }, 1)
  end)

  it("select.fileno and select.compat.socket_select (seed " .. SEED .. ")", function()
    local compat = require "select.compat"
    fuzz({
      fileno = function(r, what) try(r, what, sel.fileno, fd_value()) end,
      fileno_named = function(r, what) try(r, what, sel.fileno, fd_value(), any_value(), any_value()) end,
      -- timeouts that never block (nil and negative ones wait forever here)
      socket_select = function(r, what)
        try(r, what, compat.socket_select, list_value(), list_value(), timeout_s(false))
      end,
      socket_select_any = function(r, what)
        try(r, what, compat.socket_select, any_value(), any_value(), timeout_s(false))
      end,
    }, 7)
  end)

  it("poll objects (seed " .. SEED .. ")", function()
    local p = sel.poll()
    fuzz({
      register = function(r, what) try(r, what, p.register, p, fd_value(), mask_value()) end,
      modify = function(r, what) try(r, what, p.modify, p, fd_value(), mask_value()) end,
      unregister = function(r, what) try(r, what, p.unregister, p, fd_value()) end,
      poll = function(r, what)
        try(r, what, p.poll, p, pick { 0, -0.0, 0.1, 0 / 0, 1 / 0, 1e300, "x", {}, true })
      end,
      bad_self = function(r, what)
        local m = pick { "register", "modify", "unregister", "poll" }
        try(r, what .. "." .. m, p[m], any_value(), fd_value(), 0)
      end,
      tostring = function(r, what) try(r, what, tostring, p) end,
      new = function(r, what) try(r, what, sel.poll, any_value()) end,
    }, 2)
  end)

  it("epoll objects (seed " .. SEED .. ")", function()
    local ep = sel.epoll()
    fuzz({
      register = function(r, what) try(r, what, ep.register, ep, fd_value(), mask_value()) end,
      modify = function(r, what) try(r, what, ep.modify, ep, fd_value(), mask_value()) end,
      unregister = function(r, what) try(r, what, ep.unregister, ep, fd_value()) end,
      poll = function(r, what)
        try(r, what, ep.poll, ep, pick { 0, -0.0, 1e-4, 0 / 0, 1 / 0, 1e300, "x", {}, true },
          pick { -1, 0, 1, 2, 100, -5, 2 ^ 40, 0 / 0, "x", nil })
      end,
      fileno = function(r, what) try(r, what, ep.fileno, ep) end,
      closed = function(r, what) try(r, what, function() return ep.closed end) end,
      bad_self = function(r, what)
        local m = pick { "register", "modify", "unregister", "poll", "fileno", "close" }
        try(r, what .. "." .. m, ep[m], any_value(), fd_value(), 0)
      end,
      new = function(r, what)
        local ok, e = pcall(sel.epoll, any_value(), any_value())
        if ok and e then e:close() end
        try(r, what, sel.epoll, pick { -1, 0, 1, 2 ^ 40, "x", {}, 0 / 0 }, any_value())
      end,
      -- fromfd takes ownership: only numbers that can never be open.
      fromfd = function(r, what)
        try(r, what, sel.epoll.fromfd, pick { -1, 1000000, 2 ^ 31, 2 ^ 53, 0 / 0, 1.5, "x", {}, true })
      end,
      reopen = function(r, what)
        if rand(20) == 1 then
          try(r, what, ep.close, ep)
          try(r, what, ep.register, ep, fixtures.a)
          ep = sel.epoll()
        end
      end,
    }, 3)
    ep:close()
  end)

  it("kqueue objects (seed " .. SEED .. ")", function()
    local kq = sel.kqueue()
    fuzz({
      control = function(r, what)
        try(r, what, kq.control, kq, changelist_value(), pick { 0, 1, 2, 8, -1, 2 ^ 40, 0 / 0, "x" },
          timeout_s(true))
      end,
      control_any = function(r, what)
        try(r, what, kq.control, kq, any_value(), any_value(), timeout_s(true))
      end,
      fileno = function(r, what) try(r, what, kq.fileno, kq) end,
      closed = function(r, what) try(r, what, function() return kq.closed end) end,
      bad_self = function(r, what)
        local m = pick { "control", "fileno", "close" }
        try(r, what .. "." .. m, kq[m], any_value(), nil, 0, 0)
      end,
      fromfd = function(r, what)
        local v = rand(3) == 1 and kq:fileno() or fd_value()
        local ok, other = pcall(sel.kqueue.fromfd, v)
        if ok and other then other:close() end
        try(r, what, sel.kqueue.fromfd, any_value())
      end,
      new = function(r, what)
        local ok, k = pcall(sel.kqueue, any_value())
        if ok and k then k:close() end
        try(r, what, sel.kqueue)
      end,
      reopen = function(r, what)
        if rand(20) == 1 then
          try(r, what, kq.close, kq)
          try(r, what, kq.control, kq, nil, 1, 0)
          kq = sel.kqueue()
        end
      end,
    }, 4)
    kq:close()
  end)

  it("kevent constructor, fields, comparisons (seed " .. SEED .. ")", function()
    local fields = { "ident", "filter", "flags", "fflags", "data", "udata", "nope", 1, true }
    fuzz({
      new = function(r, what)
        try(r, what, sel.kevent, any_value(), any_value(), any_value(), any_value(), any_value(), any_value())
      end,
      new_table = function(r, what)
        try(r, what, sel.kevent, { ident = fd_value(), filter = any_value(), flags = any_value(),
          fflags = any_value(), data = any_value(), udata = any_value() })
      end,
      get = function(r, what)
        local ev = kevent_value()
        try(r, what, function(e, k) return e[k] end, ev, pick(fields))
      end,
      set = function(r, what)
        local ev = kevent_value()
        try(r, what, function(e, k, v) e[k] = v end, ev, pick(fields), any_value())
      end,
      compare = function(r, what)
        local x, y = kevent_value(), kevent_value()
        try(r, what, function(p, q) return p == q end, x, y)
        try(r, what, function(p, q) return p < q end, x, y)
        try(r, what, function(p, q) return p <= q end, x, y)
      end,
      tostring = function(r, what) try(r, what, tostring, kevent_value()) end,
    }, 5)
  end)

  if not ok_selectors then
    pending("select.selectors is not available: " .. tostring(selectors))
    return
  end

  it("select.selectors (seed " .. SEED .. ")", function()
    local classes = {}
    for _, name in ipairs { "SelectSelector", "PollSelector", "EpollSelector", "KqueueSelector",
      "DefaultSelector" } do
      if selectors[name] then classes[#classes + 1] = selectors[name] end
    end
    local s = classes[1]()
    local function events() return pick { 1, 2, 3, 0, 4, -1, 1.5, 0 / 0, "1", {}, nil } end
    fuzz({
      register = function(r, what) try(r, what, s.register, s, fd_value(), events(), any_value()) end,
      modify = function(r, what) try(r, what, s.modify, s, fd_value(), events(), any_value()) end,
      unregister = function(r, what) try(r, what, s.unregister, s, fd_value()) end,
      select = function(r, what)
        try(r, what, s.select, s, pick { 0, -0.0, 1e-4, -1, -1 / 0, 0 / 0, 1 / 0, 1e300, "x", {}, true })
      end,
      get_key = function(r, what) try(r, what, s.get_key, s, fd_value()) end,
      get_map = function(r, what)
        try(r, what, function()
          local m = s:get_map()
          local n = 0
          for _ in pairs(m) do n = n + 1 end
          return #m, m[fd_value()], tostring(m), n
        end)
      end,
      -- (select's first argument after self is a timeout: 0, because a bad
      -- self is not rejected there and a number would be waited for.)
      bad_self = function(r, what)
        local m = pick { "register", "modify", "unregister", "select", "get_key", "get_map", "close" }
        try(r, what .. "." .. m, s[m], any_value(), m == "select" and 0 or fd_value(), 1)
      end,
      fileobj_to_fd = function(r, what) try(r, what, selectors.fileobj_to_fd, any_value()) end,
      reopen = function(r, what)
        if rand(25) == 1 then
          try(r, what, s.close, s)
          try(r, what, s.register, s, fixtures.a, 1)
          s = pick(classes)()
        end
      end,
    }, 6)
    s:close()
  end)
end)
