-- select.select(rlist, wlist, xlist [, timeout]) (doc/select.luadoc, "select").
local sel = require "select"
local socket = require "socket"
local util = require "testutil"

-- Waits (with luasocket, not with the module under test) until `s` is readable.
-- (luasocket's select has the FD_SETSIZE limit: above it, just give loopback
-- a moment.)
local function wait_readable(s)
  if s:getfd() >= 1024 then
    util.sleep(0.05)
    return
  end
  local r = socket.select({ s }, nil, 2)
  assert(#r == 1, "socket did not become readable")
end

-- A TCP pair whose first socket has `data` waiting to be read.
local function readable_pair(data)
  local a, b = util.tcp_pair()
  assert(b:send(data or "x"))
  wait_readable(a)
  return a, b
end

local function close_all(...)
  for i = 1, select("#", ...) do
    local s = select(i, ...)
    if s then
      s:close()
    end
  end
end

-- Asserts that `got` holds exactly the values of `want`, raw-equal, in order.
local function same_objects(want, got)
  assert.are.equal(#want, #got)
  for i = 1, #want do
    assert(rawequal(want[i], got[i]), "entry " .. i .. " is not the object passed in")
  end
end

describe("select.select", function()
  it("returns three new, distinct tables when nothing is ready", function()
    local a, b = util.tcp_pair()
    local rlist, xlist = { a }, { a }
    local r, w, x = sel.select(rlist, {}, xlist, 0)
    assert.are.same({}, r)
    assert.are.same({}, w)
    assert.are.same({}, x)
    assert.is_false(rawequal(r, w) or rawequal(w, x) or rawequal(r, x))
    assert.is_false(rawequal(r, rlist) or rawequal(x, xlist))
    close_all(a, b)
  end)

  it("reports a readable socket, returning the very object passed in", function()
    local a, b = readable_pair()
    local r, w, x = sel.select({ a }, nil, nil, 1)
    same_objects({ a }, r)
    assert.are.same({}, w)
    assert.are.same({}, x)
    close_all(a, b)
  end)

  it("keeps the input order and leaves out what is not ready", function()
    local pairs_ = {}
    for i = 1, 4 do
      pairs_[i] = { util.tcp_pair() }
    end
    for _, i in ipairs({ 1, 3, 4 }) do
      assert(pairs_[i][2]:send("x"))
      wait_readable(pairs_[i][1])
    end
    local a = function(i) return pairs_[i][1] end
    local r = sel.select({ a(4), a(2), a(1), a(3) }, {}, {}, 0)
    same_objects({ a(4), a(1), a(3) }, r)
    r = sel.select({ a(3), a(1), a(2), a(4) }, {}, {}, 0)
    same_objects({ a(3), a(1), a(4) }, r)
    for i = 1, 4 do
      close_all(pairs_[i][1], pairs_[i][2])
    end
  end)

  it("reports an object listed twice twice", function()
    local a, b = readable_pair()
    local r, w = sel.select({ a, a }, { b, b, b }, {}, 0)
    same_objects({ a, a }, r)
    same_objects({ b, b, b }, w)
    close_all(a, b)
  end)

  it("returns each kind of descriptor-like value as itself in wlist", function()
    local a, b = util.tcp_pair()
    local fd = b:getfd()
    local obj = { fileno = function() return a:getfd() end }
    local f = assert(io.open("/dev/null", "w"))
    local wlist = { a, fd, obj, f, b }
    local _, w = sel.select({}, wlist, {}, 0)
    same_objects(wlist, w)
    assert.are.equal("number", type(w[2]))
    f:close()
    close_all(a, b)
  end)

  it("does not change the lists it is given", function()
    local a, b = readable_pair()
    local rlist, wlist = { a, b }, { b }
    sel.select(rlist, wlist, nil, 0)
    same_objects({ a, b }, rlist)
    same_objects({ b }, wlist)
    close_all(a, b)
  end)

  it("reports out-of-band data as an exceptional condition (POLLPRI)", function()
    local c = util.oob_socket()
    if not c then
      pending("needs perl to send TCP urgent data")
      return
    end
    local r, w, x = sel.select({}, {}, { c }, 2)
    same_objects({ c }, x)
    assert.are.same({}, r)
    assert.are.same({}, w)
    c:close()
  end)

  it("does not report an idle socket as exceptional", function()
    local a, b = util.tcp_pair()
    local _, _, x = sel.select({}, {}, { a, b }, 0)
    assert.are.same({}, x)
    close_all(a, b)
  end)

  it("counts a socket whose peer hung up as readable", function()
    local a, b = util.tcp_pair()
    b:close()
    local r, _, x = sel.select({ a }, {}, { a }, 2)
    same_objects({ a }, r)
    assert.are.same({}, x)
    a:close()
  end)

  it("counts a socket in error (connection reset) as readable", function()
    local a, b = util.tcp_pair()
    b:setoption("linger", { on = true, timeout = 0 }) -- close with a reset
    b:close()
    util.sleep(0.05)
    local r, _, x = sel.select({ a }, {}, { a }, 2)
    same_objects({ a }, r)
    assert.are.same({}, x)
    local _, err = a:receive(1)
    assert.are.equal("closed", err) -- it was the reset (luasocket's word)
    a:close()
  end)

  it("counts a pipe whose writer is gone as readable", function()
    local h = assert(io.popen("true"))
    local r = sel.select({ h }, {}, {}, 5)
    same_objects({ h }, r)
    assert.are.equal(nil, h:read("*l")) -- end of file: it was the hang-up
    h:close()
  end)

  it("treats nil lists as empty", function()
    local a, b = util.tcp_pair()
    local r, w, x = sel.select(nil, { a }, nil, 0)
    assert.are.same({}, r)
    same_objects({ a }, w)
    assert.are.same({}, x)
    r, w, x = sel.select(nil, nil, nil, 0)
    assert.are.same({}, r)
    assert.are.same({}, w)
    assert.are.same({}, x)
    close_all(a, b)
  end)

  it("waits forever when the timeout is nil, until something is ready", function()
    local h = assert(io.popen("sleep 0.3; echo ready"))
    local t0 = util.gettime()
    local r = sel.select({ h }, {}, {})
    local elapsed = util.gettime() - t0
    same_objects({ h }, r)
    assert.is_true(elapsed >= 0.2, "returned after " .. elapsed .. " s")
    assert.are.equal("ready", h:read("*l"))
    h:close()
  end)

  it("polls without waiting when the timeout is 0", function()
    local a, b = util.tcp_pair()
    local t0 = util.gettime()
    for _ = 1, 100 do
      local r = sel.select({ a }, {}, {}, 0)
      assert.are.same({}, r)
    end
    assert.is_true(util.gettime() - t0 < 0.5)
    close_all(a, b)
  end)

  it("waits for a fractional timeout, then returns three empty tables", function()
    local a, b = util.tcp_pair()
    local t0 = util.gettime()
    local r, w, x = sel.select({ a }, {}, { a }, 0.25)
    local elapsed = util.gettime() - t0
    assert.are.same({}, r)
    assert.are.same({}, w)
    assert.are.same({}, x)
    assert.is_true(elapsed >= 0.24, "returned after " .. elapsed .. " s")
    assert.is_true(elapsed < 1.5, "returned after " .. elapsed .. " s")
    close_all(a, b)
  end)

  it("returns as soon as a descriptor is ready, before the timeout", function()
    local h = assert(io.popen("sleep 0.1; echo x"))
    local t0 = util.gettime()
    local r = sel.select({ h }, nil, nil, 5)
    local elapsed = util.gettime() - t0
    same_objects({ h }, r)
    assert.is_true(elapsed < 3, "returned after " .. elapsed .. " s")
    h:close()
  end)

  it("sleeps for the timeout when all three lists are empty", function()
    local t0 = util.gettime()
    local r, w, x = sel.select({}, {}, {}, 0.2)
    local elapsed = util.gettime() - t0
    assert.are.same({}, r)
    assert.are.same({}, w)
    assert.are.same({}, x)
    assert.is_true(elapsed >= 0.19 and elapsed < 1.5, "slept " .. elapsed .. " s")
    t0 = util.gettime()
    r = sel.select(nil, nil, nil, 0.1)
    elapsed = util.gettime() - t0
    assert.are.same({}, r)
    assert.is_true(elapsed >= 0.09 and elapsed < 1.5, "slept " .. elapsed .. " s")
  end)

  it("accepts a timeout below one millisecond", function()
    local a, b = util.tcp_pair()
    local r = sel.select({ a }, nil, nil, 0.0001)
    assert.are.same({}, r)
    close_all(a, b)
  end)

  describe("with a closed descriptor", function()
    local function check(r, msg, errno)
      assert.is_nil(r)
      assert.are.equal("Bad file descriptor", msg)
      assert.are.equal(9, errno)
      assert(util.is_integer(errno))
    end

    it("returns nil, 'Bad file descriptor', 9 in rlist", function()
      check(sel.select({ util.dead_fd() }, {}, {}, 0))
    end)

    it("returns nil, 'Bad file descriptor', 9 in wlist", function()
      check(sel.select({}, { util.dead_fd() }, {}, 0))
    end)

    it("returns nil, 'Bad file descriptor', 9 in xlist", function()
      check(sel.select(nil, nil, { util.dead_fd() }, 0))
    end)

    it("fails the whole call even when other descriptors are ready", function()
      local a, b = readable_pair()
      check(sel.select({ a, util.dead_fd() }, { b }, {}, 1))
      close_all(a, b)
    end)

    it("fails at once rather than waiting for the timeout", function()
      local t0 = util.gettime()
      check(sel.select({ util.dead_fd() }, {}, {}, 2))
      assert.is_true(util.gettime() - t0 < 1)
    end)
  end)

  describe("with descriptors >= 1024 (no FD_SETSIZE limit)", function()
    it("reports readable and writable sockets", function()
      local a, b = util.high_tcp_pair()
      assert.is_true(a:getfd() >= 1024)
      local r, w = sel.select({ a, b }, { a }, {}, 0)
      assert.are.same({}, r)
      same_objects({ a }, w)
      assert(b:send("x"))
      wait_readable(a)
      r, w = sel.select({ b, a }, { b }, {}, 0)
      same_objects({ a }, r)
      same_objects({ b }, w)
      close_all(a, b)
    end)

    it("reports a closed high descriptor as EBADF", function()
      local a, b = util.high_tcp_pair()
      local fd = a:getfd()
      a:close()
      local r, msg, errno = sel.select({ fd }, {}, {}, 0)
      assert.is_nil(r)
      assert.are.equal("Bad file descriptor", msg)
      assert.are.equal(9, errno)
      b:close()
    end)

    it("works with a descriptor number far above 1024", function()
      local posix = util.posix()
      if posix then -- a pipe moved to descriptor 5000 with dup2
        local unistd = require "posix.unistd"
        local rfd, wfd = unistd.pipe()
        assert(unistd.dup2(rfd, 5000) == 5000)
        local r = sel.select({ 5000 }, {}, {}, 0)
        assert.are.same({}, r)
        unistd.write(wfd, "x")
        r = sel.select({ 5000 }, {}, {}, 1)
        same_objects({ 5000 }, r)
        unistd.close(5000)
        unistd.close(rfd)
        unistd.close(wfd)
      else -- (no luaposix) sockets made after 5000 other descriptors
        local release = util.fill_fds(5000)
        local a, b = util.tcp_pair()
        release()
        assert.is_true(a:getfd() >= 5000 and b:getfd() >= 5000)
        assert.are.same({}, (sel.select({ a }, {}, {}, 0)))
        assert(b:send("x"))
        wait_readable(a)
        local r, w = sel.select({ a }, { b }, {}, 1)
        same_objects({ a }, r)
        same_objects({ b }, w)
        close_all(a, b)
      end
    end)
  end)

  it("handles hundreds of descriptors in one call", function()
    local socks, peers = {}, {}
    for i = 1, 150 do
      socks[i], peers[i] = util.tcp_pair()
    end
    for i = 1, 150, 3 do
      assert(peers[i]:send("x"))
      wait_readable(socks[i])
    end
    local r, w = sel.select(socks, socks, {}, 0)
    same_objects(socks, w)
    local want = {}
    for i = 1, 150, 3 do
      want[#want + 1] = socks[i]
    end
    same_objects(want, r)
    for i = 1, 150 do
      close_all(socks[i], peers[i])
    end
  end)

  describe("raises errors for misuse", function()
    it("rejects a negative timeout", function()
      local ok, err = pcall(sel.select, {}, {}, {}, -1)
      assert.is_false(ok)
      assert.are.equal("string", type(err))
      assert.are.equal("bad argument #4 to 'select' (timeout must be non-negative)", err)
    end)

    it("rejects NaN, infinite and too large timeouts", function()
      for _, t in ipairs({ 0 / 0, math.huge, 1e300, 2 ^ 63 }) do
        local ok, err = pcall(sel.select, {}, {}, {}, t)
        assert.is_false(ok)
        assert.are.equal("string", type(err))
        assert.truthy(err:find("bad argument #4 to 'select'", 1, true), err)
      end
    end)

    it("rejects a timeout that is not a number", function()
      local ok, err = pcall(sel.select, {}, {}, {}, "1")
      assert.is_false(ok)
      assert.truthy(err:find("bad argument #4 to 'select'", 1, true), err)
    end)

    it("rejects lists that are not tables", function()
      for n = 1, 3 do
        local args = { {}, {}, {} }
        args[n] = 1
        local ok, err = pcall(sel.select, args[1], args[2], args[3], 0)
        assert.is_false(ok)
        assert.truthy(err:find("bad argument #" .. n .. " to 'select'", 1, true), err)
      end
    end)

    it("names the list and the index of a bad entry", function()
      local a, b = util.tcp_pair()
      local ok, err = pcall(sel.select, {}, { a, b, "x" }, {}, 0)
      assert.is_false(ok)
      assert.truthy(err:find("bad argument #2 to 'select'", 1, true), err)
      assert.truthy(err:find("3", 1, true), err)
      close_all(a, b)
    end)
  end)

  it("reads a list that a fileno method shortens only up to its current end", function()
    -- Python's test_select_mutated: each fileno() call drops the last entry,
    -- so five of the ten entries are read (and reported: fd 1 is writable).
    local list = {}
    local obj = {
      fileno = function()
        list[#list] = nil
        return 1
      end,
    }
    for i = 1, 10 do
      list[i] = obj
    end
    local r, w, x = sel.select({}, list, {}, 0)
    assert.are.same({}, r)
    assert.are.same({}, x)
    same_objects({ obj, obj, obj, obj, obj }, w)
    assert.are.equal(5, #list)
  end)
end)
