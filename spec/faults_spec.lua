-- Faults: signal storms during blocking waits, descriptor exhaustion
-- (EMFILE), descriptors closed behind an object's back, fork() with a live
-- kqueue, and tens of thousands of registered descriptors.
--
-- luaposix (Lua 5.1-5.3 and LuaJIT here) gives signal handlers, fork and
-- setrlimit; where it is missing (Lua 5.4) the tests that need it are pending
-- and the others use only the standard library and luasocket.
local sel = require "select"
local util = require "testutil"
local socket = require "socket"

local posix = util.posix()
local ok_selectors, selectors = pcall(require, "select.selectors")

local EMFILE = 24

local function resource()
  local ok, r = pcall(require, "posix.sys.resource")
  return ok and r or nil
end

-- Runs f(), then cleanup(), then re-raises f's error if it failed.
local function finally(f, cleanup)
  local ok, err = pcall(f)
  cleanup()
  if not ok then error(err, 0) end
end

--------------------------------------------------------------------------
describe("faults: a signal storm during a blocking wait", function()
  if not posix then
    pending("luaposix (signal handlers) is not installed for " .. _VERSION ..
      "; spec/eintr_spec.lua covers single signals for this version")
    return
  end
  local signal = require "posix.signal"

  -- Sends SIGUSR1 to this process 20 x 50 times over about 0.4 s, then
  -- creates `done`.
  local function storm(done)
    os.remove(done)
    util.background(string.format(
      "sleep 0.05; for j in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20; do " ..
      "for i in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24 25 " ..
      "26 27 28 29 30 31 32 33 34 35 36 37 38 39 40 41 42 43 44 45 46 47 48 49 50; do " ..
      "kill -USR1 %d || exit 0; done; sleep 0.02; done; touch %s", util.pid(), done))
  end

  local function with_storm(wait)
    local got = 0
    local done = os.tmpname()
    signal.signal(signal.SIGUSR1, function() got = got + 1 end)
    storm(done)
    local t0 = util.gettime()
    local ok, a, b = pcall(wait)
    local elapsed = util.gettime() - t0
    -- Keep the handler until the storm is over: a late SIGUSR1 would kill us.
    local t1 = util.gettime()
    while util.gettime() - t1 < 10 do
      local f = io.open(done)
      if f then f:close() break end
      util.sleep(0.02)
    end
    util.sleep(0.05)
    signal.signal(signal.SIGUSR1, signal.SIG_DFL)
    os.remove(done)
    assert(ok, a)
    assert.is_true(got > 0, "no signal arrived during the wait")
    return elapsed, a, b
  end

  local function check(elapsed, want)
    assert.is_true(elapsed >= want - 0.005, string.format("returned after %.3f s, before %.3f s", elapsed, want))
    assert.is_true(elapsed < want + 1.0, string.format("returned after %.3f s, long after %.3f s", elapsed, want))
  end

  local a, b
  before_each(function() a, b = util.tcp_pair() end)
  after_each(function() a:close(); b:close() end)

  it("select.select keeps to its deadline", function()
    local elapsed, r = with_storm(function() return sel.select({ a }, nil, nil, 0.6) end)
    check(elapsed, 0.6)
    assert.are.same({}, r)
  end)

  it("poll.poll keeps to its deadline", function()
    local p = sel.poll()
    p:register(a, sel.POLLIN)
    local elapsed, r = with_storm(function() return p:poll(600) end)
    check(elapsed, 0.6)
    assert.are.same({}, r)
  end)

  it("epoll.poll keeps to its deadline", function()
    local ep = sel.epoll()
    ep:register(a, sel.EPOLLIN)
    local elapsed, r = with_storm(function() return ep:poll(0.6) end)
    ep:close()
    check(elapsed, 0.6)
    assert.are.same({}, r)
  end)

  it("kqueue.control keeps to its deadline", function()
    local kq = sel.kqueue()
    kq:control({ sel.kevent(a, sel.KQ_FILTER_READ, sel.KQ_EV_ADD) }, 0)
    local elapsed, r = with_storm(function() return kq:control(nil, 4, 0.6) end)
    kq:close()
    check(elapsed, 0.6)
    assert.are.same({}, r)
  end)

  it("a selector's select keeps to its deadline", function()
    if not ok_selectors then return pending("select.selectors is not available") end
    local s = selectors.DefaultSelector()
    s:register(a, selectors.EVENT_READ)
    local elapsed, r = with_storm(function() return s:select(0.6) end)
    s:close()
    check(elapsed, 0.6)
    assert.are.same({}, r)
  end)
end)

--------------------------------------------------------------------------
describe("faults: descriptors exhausted (EMFILE)", function()
  local res = resource()

  -- Opens /dev/null until EMFILE (after lowering the soft limit to what is
  -- in use + 64 where setrlimit is available), then closes `free` of them.
  -- Returns a function that closes the rest and restores the limit.
  local function exhaust(free)
    local restore = function() end
    if res then
      local lim = res.getrlimit(res.RLIMIT_NOFILE)
      local old = { rlim_cur = lim.rlim_cur, rlim_max = lim.rlim_max }
      assert(res.setrlimit(res.RLIMIT_NOFILE, { rlim_cur = util.count_fds() + 64, rlim_max = lim.rlim_max }))
      restore = function() assert(res.setrlimit(res.RLIMIT_NOFILE, old)) end
    end
    local files = {}
    while true do
      local f, msg, code = io.open("/dev/null")
      if not f then
        assert(code == EMFILE, "io.open failed with " .. tostring(msg))
        break
      end
      files[#files + 1] = f
    end
    for _ = 1, free do
      table.remove(files):close()
    end
    return function()
      for _, f in ipairs(files) do f:close() end
      restore()
    end
  end

  local a, b, baseline
  before_each(function()
    util.full_gc()
    baseline = util.count_fds()
    a, b = util.tcp_pair()
  end)
  after_each(function()
    a:close(); b:close()
    util.full_gc()
    assert.are.equal(baseline, util.count_fds(), "descriptors leaked")
  end)

  it("poll/epoll/kqueue creation fails with nil, 'Too many open files', 24 and the process recovers", function()
    local kq = sel.kqueue()
    local release = exhaust(0)
    finally(function()
      local ep, msg, code = sel.epoll()
      assert.are.same({ nil, "Too many open files", EMFILE }, { ep, msg, code })
      local k2, msg2, code2 = sel.kqueue()
      assert.are.same({ nil, "Too many open files", EMFILE }, { k2, msg2, code2 })
      local k3, _, code3 = sel.kqueue.fromfd(kq:fileno())
      assert.are.same({ nil, EMFILE }, { k3, code3 })
      -- What needs no new descriptor still works.
      local p = sel.poll()
      p:register(a, sel.POLLOUT)
      assert.are.equal(1, #p:poll(0))
      assert.are.equal(1, #select(2, sel.select(nil, { a }, nil, 0)))
      local evs = kq:control({
        sel.kevent(a, sel.KQ_FILTER_WRITE, sel.KQ_EV_ADD),
        sel.kevent(1, sel.KQ_FILTER_USER, sel.KQ_EV_ADD, sel.KQ_NOTE_TRIGGER),
      }, 4, 0)
      assert.are.equal(2, #evs)
    end, release)
    -- Usable again once descriptors are free.
    local ep = assert(sel.epoll())
    ep:register(a, sel.EPOLLOUT)
    assert.are.equal(1, #ep:poll(0))
    ep:close()
    local k2 = assert(sel.kqueue())
    k2:close()
    kq:close()
  end)

  it("a kqueue needing two descriptors fails cleanly with one free", function()
    local release = exhaust(1)
    finally(function()
      local kq, msg, code = sel.kqueue()
      assert.are.same({ nil, "Too many open files", EMFILE }, { kq, msg, code })
      -- the one free descriptor was given back: an epoll still fits
      local ep = assert(sel.epoll())
      ep:close()
    end, release)
  end)

  it("timers, signals and vnodes added with no descriptor left are EV_ERROR entries with EMFILE", function()
    local kq = sel.kqueue()
    local tmp = io.tmpfile()
    local mask_before = util.sigblk()
    local release = exhaust(0)
    finally(function()
      local evs = kq:control({
        sel.kevent(1, sel.KQ_FILTER_TIMER, sel.KQ_EV_ADD, 0, 10),
        sel.kevent(10, sel.KQ_FILTER_SIGNAL, sel.KQ_EV_ADD), -- SIGUSR1
        sel.kevent(tmp, sel.KQ_FILTER_VNODE, sel.KQ_EV_ADD, sel.KQ_NOTE_WRITE),
      }, 8, 0)
      assert.are.equal(3, #evs)
      for _, ev in ipairs(evs) do
        assert.are.equal(1, math.floor(ev.flags / sel.KQ_EV_ERROR) % 2, "EV_ERROR set")
        assert.are.equal(EMFILE, ev.data)
      end
      -- without room for the error: nil, message, errno
      local r, _, code = kq:control({ sel.kevent(2, sel.KQ_FILTER_TIMER, sel.KQ_EV_ADD, 0, 10) }, 0)
      assert.are.same({ nil, EMFILE }, { r, code })
    end, release)
    assert.are.equal(mask_before, util.sigblk(), "the failed SIGNAL add left a signal blocked")
    -- and now they work
    local evs = kq:control({ sel.kevent(1, sel.KQ_FILTER_TIMER, sel.KQ_EV_ADD + sel.KQ_EV_ONESHOT, 0, 1) }, 1, 1)
    assert.are.equal(1, #evs)
    kq:close()
    tmp:close()
  end)

  it("selectors fail with a string error or nil, message, errno", function()
    if not ok_selectors then return pending("select.selectors is not available") end
    local release = exhaust(0)
    finally(function()
      local names = { "DefaultSelector", "EpollSelector", "KqueueSelector", "PollSelector", "SelectSelector" }
      for _, name in ipairs(names) do
        if selectors[name] then
          local ok, s, msg = pcall(selectors[name])
          if ok and s then
            s:register(a, selectors.EVENT_WRITE)
            assert.are.equal(1, #s:select(0))
            s:close()
          elseif ok then
            assert.are.equal("string", type(msg))
          else
            assert.are.equal("string", type(s))
          end
        end
      end
    end, release)
  end)
end)

--------------------------------------------------------------------------
describe("faults: a descriptor closed behind the object's back", function()
  local a, b
  before_each(function() a, b = util.tcp_pair() end)
  after_each(function() a:close(); b:close() end)

  it("poll reports POLLNVAL; epoll, kqueue and selectors report nothing and do not fail", function()
    local fd = a:getfd()
    local p = sel.poll()
    p:register(fd, sel.POLLIN)
    local ep = sel.epoll()
    ep:register(fd, sel.EPOLLIN)
    local kq = sel.kqueue()
    kq:control({ sel.kevent(fd, sel.KQ_FILTER_READ, sel.KQ_EV_ADD, 0, 0, { "udata" }) }, 0)
    local s = ok_selectors and selectors.DefaultSelector()
    if s then s:register(fd, selectors.EVENT_READ) end
    b:send("x")
    a:close()
    assert.are.same({ { fd, sel.POLLNVAL } }, p:poll(0))
    assert.are.same({}, ep:poll(0))
    assert.are.same({}, kq:control(nil, 8, 0))
    if s then assert.are.same({}, s:select(0)); s:close() end
    -- deleting it now: an error entry, EBADF
    local evs = kq:control({ sel.kevent(fd, sel.KQ_FILTER_READ, sel.KQ_EV_DELETE) }, 1, 0)
    assert.are.equal(9, evs[1].data)
    ep:close(); kq:close()
  end)

  it("a number closed and reused by a new socket does not report the new socket", function()
    local fd = a:getfd()
    local ep = sel.epoll()
    ep:register(fd, sel.EPOLLIN)
    local kq = sel.kqueue()
    kq:control({ sel.kevent(fd, sel.KQ_FILTER_READ, sel.KQ_EV_ADD) }, 0)
    a:close()
    local c, d = util.tcp_pair()
    local same = c:getfd() == fd or d:getfd() == fd
    d:send("y"); c:send("y")
    assert.are.same({}, ep:poll(0))
    assert.are.same({}, kq:control(nil, 8, 0))
    if same then
      -- a READ added now is about the new socket
      local evs = kq:control({ sel.kevent(fd, sel.KQ_FILTER_READ, sel.KQ_EV_ADD) }, 0)
      assert.are.same({}, evs)
      assert.are.equal(1, #kq:control(nil, 8, 0))
    end
    c:close(); d:close(); ep:close(); kq:close()
  end)

  it("an epoll object closed while a kqueue watches its descriptor", function()
    local ep = sel.epoll()
    local kq = sel.kqueue()
    kq:control({ sel.kevent(ep:fileno(), sel.KQ_FILTER_READ, sel.KQ_EV_ADD) }, 0)
    ep:close()
    assert.are.same({}, kq:control(nil, 8, 0))
    kq:close()
  end)
end)

--------------------------------------------------------------------------
describe("faults: fork() with a live kqueue", function()
  if not posix then
    pending("luaposix (fork) is not installed for " .. _VERSION)
    return
  end
  local unistd = require "posix.unistd"
  local wait = require "posix.sys.wait"

  it("the child gets a clear error, never the parent's events, and the parent keeps its queue", function()
    local a, b = util.tcp_pair()
    local kq = sel.kqueue()
    -- The trigger is a change of its own: libkqueue (scripts/test-libkqueue.sh)
    -- does not fire a USER event on the EV_ADD that carries NOTE_TRIGGER.
    kq:control({
      sel.kevent(7, sel.KQ_FILTER_USER, sel.KQ_EV_ADD),
      sel.kevent(7, sel.KQ_FILTER_USER, 0, sel.KQ_NOTE_TRIGGER),
      sel.kevent(a, sel.KQ_FILTER_READ, sel.KQ_EV_ADD),
    }, 0)
    b:send("z")
    io.stdout:flush()
    local pid = assert(unistd.fork())
    if pid == 0 then
      local code = 0
      local ok, err = pcall(kq.control, kq, nil, 8, 0)
      if ok or type(err) ~= "string" or not err:find("fork", 1, true) then code = 1 end
      local ok2 = pcall(kq.fileno, kq)
      if ok2 then code = code + 2 end
      pcall(kq.close, kq) -- must not disturb the parent's queue
      unistd._exit(code)
    end
    local _, how, status = wait.wait(pid)
    assert.are.same({ "exited", 0 }, { how, status })
    local evs = kq:control(nil, 8, 0)
    assert.are.equal(2, #evs, "the parent's queue lost events")
    kq:close()
    a:close(); b:close()
  end)
end)

--------------------------------------------------------------------------
-- As many registered descriptors as the limits allow, up to 65,536: with
-- luaposix the limit is raised when the process may (root with
-- CAP_SYS_RESOURCE); otherwise the soft limit decides. On this machine the
-- hard limit is 20,000 and raising it is not permitted, so about 19,900.
local WANT = 65536
local function raise_limit()
  local res = resource()
  if res then
    local lim = res.getrlimit(res.RLIMIT_NOFILE)
    local need = WANT + 512
    if lim.rlim_cur < need then
      if not res.setrlimit(res.RLIMIT_NOFILE, { rlim_cur = need, rlim_max = math.max(need, lim.rlim_max) }) then
        res.setrlimit(res.RLIMIT_NOFILE, { rlim_cur = lim.rlim_max, rlim_max = lim.rlim_max })
      end
    end
  end
  return math.min(WANT, util.fd_limit() - util.count_fds() - 64)
end
local N = raise_limit()

describe("faults: " .. N .. " registered descriptors (of 65,536 wanted; fd limit " .. util.fd_limit() .. ")",
  function()
    local socks, fds, baseline

    setup(function()
      util.full_gc()
      baseline = util.count_fds()
      socks, fds = {}, {}
      for i = 1, N do
        -- (udp4 makes its descriptor at once; udp() waits until it is used)
        socks[i] = assert((socket.udp4 or socket.udp)())
        fds[i] = socks[i]:getfd()
      end
    end)

    teardown(function()
      for i = 1, #socks do socks[i]:close() end
      socks, fds = nil, nil
      util.full_gc()
      assert.are.equal(baseline, util.count_fds())
    end)

    it("in one poll object", function()
      local p = sel.poll()
      for i = 1, N do p:register(fds[i], sel.POLLOUT) end
      assert.are.equal(N, #p:poll(0))
      for i = 1, N, 2 do p:unregister(fds[i]) end
      assert.are.equal(math.floor(N / 2), #p:poll(0))
    end)

    it("in one epoll object", function()
      local ep = sel.epoll()
      for i = 1, N do assert(ep:register(fds[i], sel.EPOLLOUT)) end
      assert.are.equal(N, #ep:poll(0))
      assert.are.equal(100, #ep:poll(0, 100))
      ep:close()
    end)

    it("in one kqueue", function()
      local kq = sel.kqueue()
      local changes = {}
      for i = 1, N do changes[i] = sel.kevent(fds[i], sel.KQ_FILTER_WRITE, sel.KQ_EV_ADD, 0, 0, i) end
      assert.are.same({}, kq:control(changes, 0))
      local evs = kq:control(nil, N, 0)
      assert.are.equal(N, #evs)
      local seen = {}
      for _, ev in ipairs(evs) do seen[ev.udata] = true end
      for i = 1, N, 997 do assert.is_true(seen[i]) end
      kq:close()
    end)

    it("in select.select (no FD_SETSIZE limit)", function()
      local _, w = sel.select(nil, socks, nil, 0)
      assert.are.equal(N, #w)
    end)

    it("in one selector", function()
      if not ok_selectors then return pending("select.selectors is not available") end
      local s = selectors.DefaultSelector()
      for i = 1, N do s:register(socks[i], selectors.EVENT_WRITE) end
      assert.are.equal(N, #s:select(0))
      s:close()
    end)
  end)
