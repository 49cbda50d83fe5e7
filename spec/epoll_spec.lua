-- select.epoll([sizehint [, flags]]) and the epoll object (doc/select.luadoc, "epoll").
local sel = require "select"
local util = require "testutil"

local O_CLOEXEC = 524288 -- 0o2000000

local wait_readable, events_of, fds_of, sorted = util.wait_readable, util.events_of, util.fds_of, util.sorted

local function is_os_error(errno, msg, r, m, e)
  assert.is_nil(r)
  assert.are.equal(msg, m)
  assert.are.equal(errno, e)
  assert.is_true(util.is_integer(e))
end

-- `n` connected TCP pairs; returns the two arrays of sockets and a closer.
local function tcp_pairs(n)
  local a, b = {}, {}
  for i = 1, n do
    a[i], b[i] = util.tcp_pair()
  end
  return a, b, function()
    for i = 1, n do
      a[i]:close()
      b[i]:close()
    end
  end
end

-- (Not through /proc: opening anything to look could reuse the number.)
local function fd_is_open(fd)
  local r, _, errno = sel.select({ fd }, {}, {}, 0)
  assert(r ~= nil or errno == 9)
  return r ~= nil
end

describe("select.epoll", function()
  it("is a callable table with a fromfd function", function()
    assert.are.equal("table", type(sel.epoll))
    assert.are.equal("function", type(sel.epoll.fromfd))
    local ep = sel.epoll()
    assert.are.equal("userdata", type(ep))
    ep:close()
  end)

  it("has tostring 'select.epoll: 0x...'", function()
    local ep = sel.epoll()
    assert.truthy(tostring(ep):match("^select%.epoll: 0x%x+$"), tostring(ep))
    ep:close()
    assert.truthy(tostring(ep):match("^select%.epoll"), tostring(ep))
  end)

  it("owns an epoll descriptor that is close-on-exec", function()
    local ep = sel.epoll()
    local fd = ep:fileno()
    assert.is_true(util.is_integer(fd))
    assert.are.equal("anon_inode:[eventpoll]", util.fd_target(fd))
    local flags = util.fd_flags(fd)
    assert.is_true(util.has_bits(flags, O_CLOEXEC), "flags " .. tostring(flags))
    ep:close()
  end)

  it("accepts Python's sizehint and flags", function()
    for _, args in ipairs({ {}, { -1 }, { 1 }, { 1000 }, { sel.EPOLL_CLOEXEC }, { -1, 0 },
      { -1, sel.EPOLL_CLOEXEC }, { 10.0 } }) do
      local ep = assert(sel.epoll(args[1], args[2]))
      assert.is_true(util.has_bits(util.fd_flags(ep:fileno()), O_CLOEXEC))
      ep:close()
    end
  end)

  it("rejects a sizehint of 0 or below -1", function()
    for _, bad in ipairs({ 0, -2, -100 }) do
      local ok, err = pcall(sel.epoll, bad)
      assert.is_false(ok)
      assert.truthy(err:find("^bad argument #1 to 'epoll'"), err)
    end
  end)

  it("returns nil, 'Invalid argument', 22 for unknown flags (Python's OSError)", function()
    is_os_error(22, "Invalid argument", sel.epoll(-1, 12356))
  end)

  describe("register", function()
    it("defaults to EPOLLIN|EPOLLPRI|EPOLLOUT", function()
      local a, b = util.tcp_pair()
      local ep = sel.epoll()
      assert.is_truthy(ep:register(a))
      local info = util.epoll_fdinfo(ep:fileno())
      -- the kernel always adds EPOLLERR|EPOLLHUP
      assert.are.equal(sel.EPOLLIN + sel.EPOLLPRI + sel.EPOLLOUT + sel.EPOLLERR + sel.EPOLLHUP,
        info[math.floor(a:getfd())])
      assert.are.same({ { math.floor(a:getfd()), sel.EPOLLOUT } }, ep:poll(0))
      ep:close()
      a:close()
      b:close()
    end)

    it("uses the mask given", function()
      local a, b = util.tcp_pair()
      local ep = sel.epoll()
      ep:register(a, sel.EPOLLIN)
      ep:register(b, sel.EPOLLOUT + sel.EPOLLRDHUP)
      local info = util.epoll_fdinfo(ep:fileno())
      assert.are.equal(sel.EPOLLIN + sel.EPOLLERR + sel.EPOLLHUP, info[math.floor(a:getfd())])
      assert.are.equal(sel.EPOLLOUT + sel.EPOLLRDHUP + sel.EPOLLERR + sel.EPOLLHUP, info[math.floor(b:getfd())])
      assert.are.same({ { math.floor(b:getfd()), sel.EPOLLOUT } }, ep:poll(0))
      ep:close()
      a:close()
      b:close()
    end)

    it("returns nil, 'File exists', 17 for a descriptor already registered", function()
      local a, b = util.tcp_pair()
      local ep = sel.epoll()
      assert.is_truthy(ep:register(a, sel.EPOLLIN))
      is_os_error(17, "File exists", ep:register(a, sel.EPOLLOUT))
      is_os_error(17, "File exists", ep:register(a:getfd()))
      -- and the first registration is untouched
      assert.are.equal(sel.EPOLLIN + sel.EPOLLERR + sel.EPOLLHUP,
        util.epoll_fdinfo(ep:fileno())[math.floor(a:getfd())])
      ep:close()
      a:close()
      b:close()
    end)

    it("returns nil, 'Bad file descriptor', 9 for a closed descriptor", function()
      local ep = sel.epoll()
      is_os_error(9, "Bad file descriptor", ep:register(util.dead_fd()))
      ep:close()
    end)

    it("returns nil, 'Operation not permitted', 1 for a regular file", function()
      local f = assert(io.open("/etc/hostname") or io.open("/etc/passwd"))
      local ep = sel.epoll()
      is_os_error(1, "Operation not permitted", ep:register(f))
      ep:close()
      f:close()
    end)

    it("accepts any 32-bit mask and nothing outside", function()
      local a, b = util.tcp_pair()
      local ep = sel.epoll()
      assert.is_truthy(ep:register(a, 0))
      assert.is_truthy(ep:modify(a, sel.EPOLLIN + sel.EPOLLET))
      for _, bad in ipairs({ -1, 2 ^ 32, 2 ^ 53 }) do
        local ok, err = pcall(ep.modify, ep, a, bad)
        assert.is_false(ok)
        assert.truthy(err:find("^bad argument #2 to 'modify'"), err)
        ok, err = pcall(ep.register, ep, b, bad)
        assert.is_false(ok)
        assert.truthy(err:find("^bad argument #2 to 'register'"), err)
      end
      ep:close()
      a:close()
      b:close()
    end)
  end)

  describe("modify", function()
    it("changes the mask", function()
      local a, b = util.tcp_pair()
      local ep = sel.epoll()
      ep:register(a, sel.EPOLLIN)
      assert.are.same({}, ep:poll(0))
      assert.is_truthy(ep:modify(a, sel.EPOLLOUT))
      assert.are.same({ { math.floor(a:getfd()), sel.EPOLLOUT } }, ep:poll(0))
      ep:close()
      a:close()
      b:close()
    end)

    it("returns nil, 'No such file or directory', 2 for an unregistered descriptor", function()
      local a, b = util.tcp_pair()
      local ep = sel.epoll()
      is_os_error(2, "No such file or directory", ep:modify(a, sel.EPOLLIN))
      ep:close()
      a:close()
      b:close()
    end)

    it("requires a mask", function()
      local a, b = util.tcp_pair()
      local ep = sel.epoll()
      ep:register(a)
      local ok, err = pcall(ep.modify, ep, a)
      assert.is_false(ok)
      assert.truthy(err:find("^bad argument #2 to 'modify'"), err)
      ep:close()
      a:close()
      b:close()
    end)
  end)

  describe("unregister", function()
    it("removes a descriptor", function()
      local a, b = util.tcp_pair()
      local ep = sel.epoll()
      ep:register(a)
      ep:register(b)
      assert.are.equal(2, #ep:poll(0))
      assert.is_truthy(ep:unregister(a))
      assert.are.same({ { math.floor(b:getfd()), sel.EPOLLOUT } }, ep:poll(0))
      ep:close()
      a:close()
      b:close()
    end)

    it("returns nil, 'No such file or directory', 2 for an unregistered descriptor", function()
      local a, b = util.tcp_pair()
      local ep = sel.epoll()
      is_os_error(2, "No such file or directory", ep:unregister(a))
      ep:register(a)
      ep:unregister(a)
      is_os_error(2, "No such file or directory", ep:unregister(a))
      ep:close()
      a:close()
      b:close()
    end)

    it("returns nil, 'Bad file descriptor', 9 for a descriptor closed since", function()
      local a, b = util.tcp_pair()
      local fd = math.floor(a:getfd())
      local ep = sel.epoll()
      ep:register(a)
      a:close()
      is_os_error(9, "Bad file descriptor", ep:unregister(fd))
      ep:close()
      b:close()
    end)
  end)

  describe("poll", function()
    it("returns {fd, events} pairs with integer descriptors", function()
      local a, b = util.tcp_pair()
      local ep = sel.epoll()
      ep:register(a, sel.EPOLLIN)
      assert(b:send("x"))
      wait_readable(a)
      local result = ep:poll(1)
      assert.are.equal(1, #result)
      assert.is_true(util.is_integer(result[1][1]))
      assert.is_true(util.is_integer(result[1][2]))
      assert.are.equal(a:getfd(), result[1][1])
      assert.are.equal(sel.EPOLLIN, result[1][2])
      ep:close()
      a:close()
      b:close()
    end)

    it("returns an empty table on timeout and waits the given seconds", function()
      local a, b = util.tcp_pair()
      local ep = sel.epoll()
      ep:register(a, sel.EPOLLIN)
      local t0 = util.gettime()
      assert.are.same({}, ep:poll(0))
      assert.is_true(util.gettime() - t0 < 0.1)
      t0 = util.gettime()
      local result = ep:poll(0.2)
      local elapsed = util.gettime() - t0
      assert.are.same({}, result)
      assert.is_true(elapsed >= 0.19 and elapsed < 1.5, "waited " .. elapsed .. " s")
      t0 = util.gettime()
      assert.are.same({}, ep:poll(0.0001)) -- rounded up to a millisecond
      assert.is_true(util.gettime() - t0 < 0.5)
      ep:close()
      a:close()
      b:close()
    end)

    for _, case in ipairs({ { "nil", nil }, { "a negative number", -1 }, { "-0.5", -0.5 } }) do
      it("waits until something is ready with a timeout of " .. case[1], function()
        local h = assert(io.popen("sleep 0.2; echo x"))
        local ep = sel.epoll()
        ep:register(h, sel.EPOLLIN)
        local t0 = util.gettime()
        local result
        if case[2] == nil then
          result = ep:poll()
        else
          result = ep:poll(case[2])
        end
        local elapsed = util.gettime() - t0
        assert.are.equal(1, #result)
        assert.is_true(util.has_bits(result[1][2], sel.EPOLLIN))
        assert.is_true(elapsed >= 0.1, "returned after " .. elapsed .. " s")
        ep:close()
        h:close()
      end)
    end

    it("rejects too large, NaN and non-number timeouts", function()
      local ep = sel.epoll()
      for _, t in ipairs({ 1e10, 2 ^ 31, math.huge, 0 / 0, "1", true }) do
        local ok, err = pcall(ep.poll, ep, t)
        assert.is_false(ok)
        assert.truthy(err:find("^bad argument #1 to 'poll'"), err)
      end
      ep:close()
    end)

    it("returns at most maxevents events", function()
      local a, b, close = tcp_pairs(10)
      local ep = sel.epoll()
      for i = 1, 10 do
        ep:register(a[i], sel.EPOLLOUT)
        ep:register(b[i], sel.EPOLLOUT)
      end
      assert.are.equal(5, #ep:poll(0, 5))
      assert.are.equal(1, #ep:poll(0, 1))
      assert.are.equal(20, #ep:poll(0, 20))
      assert.are.equal(20, #ep:poll(0, 1000))
      assert.are.equal(20, #ep:poll(0, -1))
      assert.are.equal(20, #ep:poll(0))
      assert.are.equal(20, #ep:poll(nil, -1))
      ep:close()
      close()
    end)

    it("rejects maxevents 0 and below -1", function()
      local ep = sel.epoll()
      for _, bad in ipairs({ 0, -2, -1000 }) do
        local ok, err = pcall(ep.poll, ep, 0, bad)
        assert.is_false(ok)
        assert.truthy(err:find("^bad argument #2 to 'poll'"), err)
      end
      ep:close()
    end)

    it("returns every ready event when there are many", function()
      local a, b, close = tcp_pairs(60)
      local ep = sel.epoll()
      local want = {}
      for i = 1, 60 do
        ep:register(a[i], sel.EPOLLOUT)
        ep:register(b[i], sel.EPOLLOUT)
        want[#want + 1] = a[i]:getfd()
        want[#want + 1] = b[i]:getfd()
      end
      assert.are.same(sorted(want), fds_of(ep:poll(0)))
      assert.are.same(sorted(want), fds_of(ep:poll(0, -1)))
      ep:close()
      close()
    end)

    it("returns every ready event of a queue registered through another object", function()
      local a, b, close = tcp_pairs(30)
      local ep = sel.epoll()
      local want = {}
      for i = 1, 30 do
        ep:register(a[i], sel.EPOLLOUT)
        ep:register(b[i], sel.EPOLLOUT)
        want[#want + 1] = a[i]:getfd()
        want[#want + 1] = b[i]:getfd()
      end
      -- ep2 shares ep's descriptor (as in CPython's test_fromfd): it made no
      -- registration itself, yet "maxevents -1: no limit" holds.
      local ep2 = sel.epoll.fromfd(ep:fileno())
      finally(function()
        ep:close()
        ep2:close() -- closes the number again: nothing was opened in between
        close()
      end)
      assert.are.same(sorted(want), fds_of(ep2:poll(0)))
      assert.are.same(sorted(want), fds_of(ep2:poll(0, -1)))
      assert.are.same(sorted(want), fds_of(ep2:poll(0)))
      ep:close()
      local r = { ep2:poll(0) }
      ep2:close() -- at once: nothing may reuse the number before this second close
      is_os_error(9, "Bad file descriptor", r[1], r[2], r[3])
    end)

    it("reports a peer hang-up with EPOLLRDHUP and EPOLLIN", function()
      local a, b = util.tcp_pair()
      local ep = sel.epoll()
      ep:register(a, sel.EPOLLIN + sel.EPOLLRDHUP)
      assert.are.same({}, ep:poll(0))
      b:close()
      local ev = events_of(ep:poll(1), a:getfd())
      assert.is_truthy(ev)
      assert.is_true(util.has_bits(ev, sel.EPOLLIN + sel.EPOLLRDHUP))
      ep:close()
      a:close()
    end)

    it("reports out-of-band data with EPOLLPRI", function()
      local c = util.oob_socket()
      if not c then
        pending("needs perl to send TCP urgent data")
        return
      end
      local ep = sel.epoll()
      ep:register(c, sel.EPOLLPRI)
      assert.are.same({ { math.floor(c:getfd()), sel.EPOLLPRI } }, ep:poll(2))
      ep:close()
      c:close()
    end)

    it("reports edge-triggered registrations once per change (EPOLLET)", function()
      local a, b = util.tcp_pair()
      local ep = sel.epoll()
      ep:register(a, sel.EPOLLIN + sel.EPOLLET)
      assert(b:send("x"))
      wait_readable(a)
      assert.are.same({ { math.floor(a:getfd()), sel.EPOLLIN } }, ep:poll(1))
      assert.are.same({}, ep:poll(0)) -- still readable, but no new edge
      assert(b:send("y"))
      wait_readable(a)
      assert.are.same({ { math.floor(a:getfd()), sel.EPOLLIN } }, ep:poll(1))
      ep:close()
      a:close()
      b:close()
    end)

    it("reports a one-shot registration once, until modified (EPOLLONESHOT)", function()
      local a, b = util.tcp_pair()
      local ep = sel.epoll()
      ep:register(a, sel.EPOLLOUT + sel.EPOLLONESHOT)
      assert.are.same({ { math.floor(a:getfd()), sel.EPOLLOUT } }, ep:poll(0))
      assert.are.same({}, ep:poll(0))
      ep:modify(a, sel.EPOLLOUT + sel.EPOLLONESHOT)
      assert.are.same({ { math.floor(a:getfd()), sel.EPOLLOUT } }, ep:poll(0))
      ep:close()
      a:close()
      b:close()
    end)

    it("can watch another epoll object (it has fileno)", function()
      local a, b = util.tcp_pair()
      local inner = sel.epoll()
      inner:register(a, sel.EPOLLIN)
      local outer = sel.epoll()
      outer:register(inner, sel.EPOLLIN)
      assert.are.same({}, outer:poll(0))
      assert(b:send("x"))
      wait_readable(a)
      assert.are.same({ { inner:fileno(), sel.EPOLLIN } }, outer:poll(1))
      local r = sel.select({ inner }, {}, {}, 0)
      assert(rawequal(r[1], inner))
      outer:close()
      inner:close()
      a:close()
      b:close()
    end)
  end)

  describe("close", function()
    it("closes the descriptor, sets closed, and is idempotent", function()
      local ep = sel.epoll()
      local fd = ep:fileno()
      assert.is_false(ep.closed)
      assert.is_true(fd_is_open(fd))
      ep:close()
      assert.is_true(ep.closed)
      assert.is_false(fd_is_open(fd))
      ep:close()
      ep.close(ep)
      assert.is_true(ep.closed)
    end)

    it("makes every other method raise 'I/O operation on closed epoll object'", function()
      local a, b = util.tcp_pair()
      local ep = sel.epoll()
      ep:close()
      local calls = {
        fileno = function() return ep:fileno() end,
        register = function() return ep:register(a) end,
        modify = function() return ep:modify(a, sel.EPOLLIN) end,
        unregister = function() return ep:unregister(a) end,
        poll = function() return ep:poll(0) end,
      }
      for name, f in pairs(calls) do
        local ok, err = pcall(f)
        assert.is_false(ok, name)
        assert.are.equal("string", type(err))
        assert.are.equal("I/O operation on closed epoll object", err)
      end
      a:close()
      b:close()
    end)

    it("happens on garbage collection", function()
      util.full_gc()
      local before = util.count_fds()
      local fds = {}
      do
        local eps = {}
        for i = 1, 30 do
          eps[i] = sel.epoll()
          fds[i] = eps[i]:fileno()
        end
        assert.are.equal(before + 30, util.count_fds())
        eps = nil -- luacheck: ignore 311
      end
      util.full_gc()
      assert.are.equal(before, util.count_fds())
      assert.is_false(fd_is_open(fds[1]))
    end)

    it("happens at the end of a <close> scope (Lua 5.4)", function()
      if not _VERSION:match("5%.4") then
        pending("<close> variables exist in Lua 5.4 only")
        return
      end
      local chunk = assert(load([[
        local sel = ...
        local ep_seen, fd
        do
          local ep <close> = sel.epoll()
          ep_seen, fd = ep, ep:fileno()
          assert(not ep.closed)
        end
        return ep_seen, fd
      ]]))
      local ep, fd = chunk(sel)
      assert.is_true(ep.closed)
      assert.is_false(fd_is_open(fd))
      -- also when the scope is left by an error
      local chunk2 = assert(load([[
        local sel, out = ...
        local ep <close> = sel.epoll()
        out.ep, out.fd = ep, ep:fileno()
        error("leaving")
      ]]))
      local out = {}
      local ok, err = pcall(chunk2, sel, out)
      assert.is_false(ok)
      assert.truthy(tostring(err):find("leaving"))
      assert.is_true(out.ep.closed)
      assert.is_false(fd_is_open(out.fd))
    end)
  end)

  describe("fromfd", function()
    it("wraps a descriptor of the same queue (luaposix dup)", function()
      local posix = util.posix()
      if not posix then
        pending("luaposix (dup) is not installed for " .. _VERSION)
        return
      end
      local unistd = require "posix.unistd"
      local a, b = util.tcp_pair()
      local ep = sel.epoll()
      local ep2 = sel.epoll.fromfd(unistd.dup(ep:fileno()))
      assert.are_not.equal(ep:fileno(), ep2:fileno())
      ep:register(a, sel.EPOLLOUT)
      assert.are.same({ { math.floor(a:getfd()), sel.EPOLLOUT } }, ep2:poll(0))
      ep:close()
      assert.are.same({ { math.floor(a:getfd()), sel.EPOLLOUT } }, ep2:poll(0))
      local fd2 = ep2:fileno()
      ep2:close()
      assert.is_false(fd_is_open(fd2))
      a:close()
      b:close()
    end)

    it("takes the descriptor over, as Python does (CPython's test_fromfd)", function()
      local a, b = util.tcp_pair()
      local ep = sel.epoll(2)
      local ep2 = sel.epoll.fromfd(ep:fileno())
      finally(function()
        ep:close()
        ep2:close()
        a:close()
        b:close()
      end)
      assert.are.equal(ep:fileno(), ep2:fileno())
      assert.is_truthy(ep2:register(a, sel.EPOLLIN + sel.EPOLLOUT))
      assert.is_truthy(ep2:register(b, sel.EPOLLIN + sel.EPOLLOUT))
      assert.are.equal(2, #ep:poll(1, 4))
      assert.are.equal(2, #ep2:poll(0.9, 4))
      ep:close()
      local r = { ep2:poll(1, 4) }
      ep2:close() -- at once: nothing may reuse the number before this second close
      is_os_error(9, "Bad file descriptor", r[1], r[2], r[3])
    end)

    it("returns nil, 'Bad file descriptor', 9 for a closed descriptor", function()
      is_os_error(9, "Bad file descriptor", sel.epoll.fromfd(util.dead_fd()))
    end)

    it("rejects a negative descriptor", function()
      local ok, err = pcall(sel.epoll.fromfd, -1)
      assert.is_false(ok)
      assert.truthy(err:find("^bad argument #1 to 'fromfd'"), err)
      assert.truthy(err:find("negative", 1, true), err)
    end)
  end)

  it("raises an error when a method is called on something else", function()
    local ep = sel.epoll()
    local p = sel.poll()
    for _, name in ipairs({ "register", "modify", "unregister", "poll", "fileno", "close" }) do
      for _, bad in ipairs({ {}, p, 1 }) do
        local ok, err = pcall(ep[name], bad, 1, 1)
        assert.is_false(ok)
        assert.are.equal("string", type(err))
        assert.truthy(err:find("'" .. name .. "'", 1, true), err)
      end
    end
    ep:close()
  end)
end)
