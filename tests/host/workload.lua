-- The workload of tests/host/allocfail.c: every entry point of the module,
-- with ready descriptors so that result tables are built. It runs under an
-- allocator that fails (or under finalizers that raise) at a chosen point,
-- so it must not catch errors (no pcall) and must not block (timeouts 0).
-- Lua 5.1 syntax (no bitwise operators: distinct flag bits are added).
-- `host` is given by the C host: pipe(), socketpair(), dup(fd), untrack(fd),
-- close(fd), write(fd, s), bomb(), mode.
local host = host -- luacheck: ignore
local S = require "select"

local function check(v, what)
  if not v then error("workload: " .. what .. " failed", 2) end
  return v
end

-- Descriptors: a pipe with data to read, a socketpair (both ends writable,
-- one readable), a Lua file (readable /dev/null), getfd/fileno objects.
local pr, pw = host.pipe()
local sa, sb = host.socketpair()
host.write(pw, "x")
host.write(sb, "y")
local f = check(io.open("/dev/null", "r"), "io.open")
local objg = { getfd = function() return sa end }
local objf = setmetatable({}, { __index = { fileno = function() return pr end } })

-- select.select: integers, Lua files, tables with getfd.
do
  local r, w, x = S.select({ pr, f, objg, sb }, { pw, sa, objf }, { pr }, 0)
  check(#r >= 3 and #w >= 2 and x, "select")
  r, w, x = S.select({}, {}, {}, 0)
  check(#r == 0 and #w == 0 and #x == 0, "select empty")
end

-- select.poll: register/modify/unregister/poll and the reuse form.
do
  local p = S.poll()
  p:register(pr, S.POLLIN)
  p:register(f)
  p:register(objg, S.POLLIN + S.POLLOUT)
  p:register(sb, S.POLLOUT)
  p:modify(sb, S.POLLIN + S.POLLOUT)
  p:modify(f, S.POLLIN)
  local ev = p:poll(0)
  check(#ev >= 3, "poll")
  local results = {}
  p:poll(0, results)
  p:poll(0, results)
  p:unregister(f)
  p:poll(0, results)
  p:unregister(objg)
  p:unregister(sb)
  p:unregister(pr)
  p:poll(0, results)
  local _ = tostring(p)
end

-- select.epoll: constructor, register/modify/unregister, poll forms,
-- fromfd, close, fileno, closed.
do
  local ep = S.epoll()
  local ep2 = S.epoll(8, 0)
  check(not ep.closed, "epoll closed")
  ep:register(pr, S.EPOLLIN)
  ep:register(objg, S.EPOLLIN + S.EPOLLOUT)
  ep:register(sb)
  ep:modify(sb, S.EPOLLIN)
  local ev = ep:poll(0)
  check(#ev >= 2, "epoll poll")
  check(#ep:poll(0, 1) == 1, "epoll maxevents 1")
  local results = {}
  ep:poll(0, -1, results)
  ep:poll(0, 4, results)
  ep:poll(0, -1, results)
  ep:unregister(sb)
  ep:unregister(objg)
  ep:unregister(pr)
  local fd = host.dup(ep2:fileno())
  local ep3 = S.epoll.fromfd(fd)
  host.untrack(fd)
  ep3:register(sa, S.EPOLLOUT)
  ep3:poll(0, -1, results)
  ep3:close()
  ep2:close()
  check(ep2.closed, "epoll closed after close")
  local _ = tostring(ep)
  ep:close()
end

-- select.kqueue and select.kevent: udata of every kind of Lua value, both
-- constructor forms, field reads and writes, ==, <, <=, tostring.
do
  local kq = S.kqueue()
  local k1 = S.kevent(pr, S.KQ_FILTER_READ, S.KQ_EV_ADD, 0, 0, { "a table" })
  local k2 = S.kevent(sa, S.KQ_FILTER_WRITE, S.KQ_EV_ADD + S.KQ_EV_CLEAR, 0, 0, "a string")
  local k3 = S.kevent {
    ident = 7, filter = S.KQ_FILTER_USER, flags = S.KQ_EV_ADD + S.KQ_EV_CLEAR,
    fflags = S.KQ_NOTE_TRIGGER, data = 3, udata = function() end,
  }
  local k4 = S.kevent { ident = 1, filter = S.KQ_FILTER_TIMER, flags = S.KQ_EV_ADD,
                        data = 1000, udata = 42.5 }
  local k5 = S.kevent(objg, S.KQ_FILTER_READ, S.KQ_EV_ADD, 0, 0, true)
  local k6 = S.kevent(f)
  k6.udata = { nested = { "value" } }
  k6.data = 5
  k6.fflags = 0
  local _ = k1.ident + k1.filter + k1.flags + k1.fflags + k1.data
  _ = k1.udata
  _ = (k1 == k2) or (k1 < k2) or (k1 <= k2) or (k2 < k1)
  _ = tostring(k3) .. tostring(k4) .. tostring(k6)
  local ev = kq:control({ k1, k2, k3, k4, k5 }, 8, 0)
  check(#ev >= 3, "kqueue control")
  _ = ev[1].udata
  check(kq:control(nil, 8, 0), "kqueue control")
  local results = {}
  kq:control(nil, 8, 0, results)
  kq:control({ S.kevent(7, S.KQ_FILTER_USER, 0, S.KQ_NOTE_TRIGGER) }, 8, 0, results)
  kq:control(nil, 1, 0, results)
  kq:control(nil, 8, 0, results)
  local kq2 = S.kqueue.fromfd(kq:fileno())
  kq2:control({ S.kevent(sb, S.KQ_FILTER_READ, S.KQ_EV_ADD, 0, 0, "via kq2") }, 4, 0)
  kq2:control({ S.kevent(sb, S.KQ_FILTER_READ, S.KQ_EV_DELETE) }, 0)
  kq2:close()
  -- an error entry: deleting what is not there.
  kq:control({ S.kevent(pw, S.KQ_FILTER_READ, S.KQ_EV_DELETE) }, 2, 0)
  kq:control({ S.kevent(pr, S.KQ_FILTER_READ, S.KQ_EV_DELETE),
               S.kevent(7, S.KQ_FILTER_USER, S.KQ_EV_DELETE) }, 0)
  check(not kq.closed, "kqueue closed")
  _ = tostring(kq)
  kq:close()
  -- a queue collected with registrations and udata still in it
  local kq3 = S.kqueue()
  kq3:control({ S.kevent(sa, S.KQ_FILTER_WRITE, S.KQ_EV_ADD, 0, 0, { "dropped" }) }, 0)
end

-- select.selectors: every class.
do
  local selectors = require "select.selectors"
  local classes = { "DefaultSelector", "EpollSelector", "PollSelector",
                    "SelectSelector", "KqueueSelector" }
  for _, name in ipairs(classes) do
    local sel = selectors[name]()
    sel:register(pr, selectors.EVENT_READ, name)
    sel:register(objg, selectors.EVENT_READ + selectors.EVENT_WRITE, { name })
    sel:register(sb, selectors.EVENT_READ)
    local ready = sel:select(0)
    check(#ready >= 1, name .. " select")
    sel:modify(objg, selectors.EVENT_WRITE, "modified")
    sel:select(0)
    local _ = sel:get_key(pr)
    sel:unregister(sb)
    sel:unregister(pr)
    sel:close()
  end
  local _ = selectors.fileobj_to_fd(objg)
end

-- select.compat
do
  local compat = require "select.compat"
  local r, w = compat.socket_select({ objg, { getfd = function() return pr end } }, { objg }, 0)
  check(r and w, "compat")
  local fake = {}
  compat.install(fake)
  fake.select({ objg }, nil, 0)
end

f:close()
host.close(pr)
host.close(pw)
host.close(sa)
host.close(sb)
