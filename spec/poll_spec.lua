-- select.poll() and the poll object (API.md, "select.poll()").
local sel = require "select"
local socket = require "socket"
local util = require "testutil"

local function wait_readable(s)
  if s:getfd() >= 1024 then
    util.sleep(0.05)
    return
  end
  assert(#socket.select({ s }, nil, 2) == 1, "socket did not become readable")
end

-- The events reported for `fd` in a poll result, or nil.
local function events_of(result, fd)
  local found
  for _, pair in ipairs(result) do
    if pair[1] == fd then
      assert(found == nil, "fd " .. fd .. " reported twice")
      found = pair[2]
    end
  end
  return found
end

local function fds_of(result)
  local fds = {}
  for _, pair in ipairs(result) do
    fds[#fds + 1] = pair[1]
  end
  table.sort(fds)
  return fds
end

local function sorted(t)
  table.sort(t)
  return t
end

describe("select.poll", function()
  it("creates a poll object whose tostring is 'select.poll: 0x...'", function()
    local p = sel.poll()
    assert.are.equal("userdata", type(p))
    assert.truthy(tostring(p):match("^select%.poll: 0x%x+$"), tostring(p))
    assert.are_not.equal(tostring(p), tostring(sel.poll()))
  end)

  it("has no length: #p raises an error", function()
    local p = sel.poll()
    local ok, err = pcall(function() return #p end)
    assert.is_false(ok)
    assert.are.equal("string", type(err))
    assert.truthy(err:find("length", 1, true), err)
  end)

  it("returns an empty table when nothing is ready", function()
    local a, b = util.tcp_pair()
    local p = sel.poll()
    p:register(a, sel.POLLIN)
    local result = p:poll(0)
    assert.are.same({}, result)
    a:close()
    b:close()
  end)

  it("returns an empty table when nothing is registered", function()
    assert.are.same({}, sel.poll():poll(0))
  end)

  it("reports {fd, revents} pairs with integer descriptors", function()
    local a, b = util.tcp_pair()
    local p = sel.poll()
    p:register(a, sel.POLLIN)
    assert(b:send("x"))
    wait_readable(a)
    local result = p:poll(1000)
    assert.are.equal(1, #result)
    assert.are.equal(2, #result[1])
    local fd, revents = result[1][1], result[1][2]
    assert.is_true(util.is_integer(fd))
    assert.is_true(util.is_integer(revents))
    assert.are.equal(a:getfd(), fd)
    assert.are.equal(sel.POLLIN, revents)
    a:close()
    b:close()
  end)

  it("reports several ready descriptors, each once", function()
    local socks, peers = {}, {}
    local p = sel.poll()
    for i = 1, 6 do
      socks[i], peers[i] = util.tcp_pair()
      p:register(socks[i], sel.POLLIN)
    end
    local want = {}
    for _, i in ipairs({ 2, 3, 5 }) do
      assert(peers[i]:send("x"))
      wait_readable(socks[i])
      want[#want + 1] = socks[i]:getfd()
    end
    assert.are.same(sorted(want), fds_of(p:poll(0)))
    for i = 1, 6 do
      socks[i]:close()
      peers[i]:close()
    end
  end)

  describe("register", function()
    it("defaults to POLLIN|POLLPRI|POLLOUT", function()
      local a, b = util.tcp_pair()
      local p = sel.poll()
      assert.is_truthy(p:register(a))
      -- writable only: POLLOUT is asked for by default
      assert.are.equal(sel.POLLOUT, events_of(p:poll(0), a:getfd()))
      assert(b:send("x"))
      wait_readable(a)
      assert.are.equal(sel.POLLIN + sel.POLLOUT, events_of(p:poll(0), a:getfd()))
      a:close()
      b:close()
      local c = util.oob_socket()
      if c then -- POLLPRI too
        p = sel.poll()
        p:register(c, sel.POLLPRI)
        assert.are.equal(1, #p:poll(2000)) -- (waits for the urgent byte to arrive)
        p:register(c)
        local ev = events_of(p:poll(0), c:getfd())
        assert.is_true(util.has_bits(ev, sel.POLLPRI), "revents " .. tostring(ev))
        c:close()
      end
    end)

    it("uses the mask given", function()
      local a, b = util.tcp_pair()
      local p = sel.poll()
      p:register(a, sel.POLLIN)
      assert.are.same({}, p:poll(0)) -- writable, but POLLOUT was not asked for
      p:register(b, sel.POLLOUT)
      assert.are.same({ { math.floor(b:getfd()), sel.POLLOUT } }, p:poll(0))
      a:close()
      b:close()
    end)

    it("replaces the mask when the descriptor is registered again", function()
      local a, b = util.tcp_pair()
      local p = sel.poll()
      p:register(a, sel.POLLOUT)
      assert.are.equal(sel.POLLOUT, events_of(p:poll(0), a:getfd()))
      p:register(a, sel.POLLIN)
      assert.are.same({}, p:poll(0))
      p:register(a) -- back to the default
      assert.are.equal(sel.POLLOUT, events_of(p:poll(0), a:getfd()))
      assert.are.equal(1, #p:poll(0))
      a:close()
      b:close()
    end)

    it("accepts the whole 0..65535 range and nothing outside it", function()
      local a, b = util.tcp_pair()
      local p = sel.poll()
      assert.is_truthy(p:register(a, 0))
      assert.is_truthy(p:register(a, 65535))
      assert.is_truthy(p:modify(a, 65535))
      for _, bad in ipairs({ -1, 65536, 2 ^ 31, 2 ^ 32 + 1 }) do
        local ok, err = pcall(p.register, p, a, bad)
        assert.is_false(ok)
        assert.truthy(err:find("bad argument #2 to 'register'", 1, true), err)
        ok, err = pcall(p.modify, p, a, bad)
        assert.is_false(ok)
        assert.truthy(err:find("bad argument #2 to 'modify'", 1, true), err)
      end
      a:close()
      b:close()
    end)

    it("with mask 0 still reports hang-ups and errors", function()
      local a, b = util.tcp_pair()
      local p = sel.poll()
      p:register(a, 0)
      assert.are.same({}, p:poll(0))
      b:close()
      util.sleep(0.05)
      a:send("x") -- the peer is gone: this makes it reset the connection
      util.sleep(0.05)
      local ev = events_of(p:poll(1000), a:getfd())
      assert.is_truthy(ev)
      assert.is_false(util.has_bits(ev, sel.POLLIN))
      assert.is_true(util.has_bits(ev, sel.POLLHUP) or util.has_bits(ev, sel.POLLERR))
      a:close()
    end)
  end)

  describe("modify", function()
    it("changes the mask of a registered descriptor", function()
      local a, b = util.tcp_pair()
      local p = sel.poll()
      p:register(a, sel.POLLIN)
      assert.are.same({}, p:poll(0))
      assert.is_truthy(p:modify(a, sel.POLLOUT))
      assert.are.equal(sel.POLLOUT, events_of(p:poll(0), a:getfd()))
      assert.is_truthy(p:modify(a, sel.POLLIN))
      assert.are.same({}, p:poll(0))
      a:close()
      b:close()
    end)

    it("returns nil, 'No such file or directory', 2 for an unregistered descriptor", function()
      local a, b = util.tcp_pair()
      local p = sel.poll()
      local r, msg, errno = p:modify(a, sel.POLLIN)
      assert.is_nil(r)
      assert.are.equal("No such file or directory", msg)
      assert.are.equal(2, errno)
      p:register(a)
      p:unregister(a)
      r, msg, errno = p:modify(a, sel.POLLIN)
      assert.is_nil(r)
      assert.are.equal("No such file or directory", msg)
      assert.are.equal(2, errno)
      a:close()
      b:close()
    end)

    it("requires a mask", function()
      local a, b = util.tcp_pair()
      local p = sel.poll()
      p:register(a)
      local ok, err = pcall(p.modify, p, a)
      assert.is_false(ok)
      assert.truthy(err:find("bad argument #2 to 'modify'", 1, true), err)
      a:close()
      b:close()
    end)
  end)

  describe("unregister", function()
    it("removes a descriptor", function()
      local a, b = util.tcp_pair()
      local p = sel.poll()
      p:register(a)
      p:register(b)
      assert.are.equal(2, #p:poll(0))
      assert.is_truthy(p:unregister(a))
      local result = p:poll(0)
      assert.are.equal(1, #result)
      assert.are.equal(b:getfd(), result[1][1])
      a:close()
      b:close()
    end)

    it("raises an error for a descriptor that is not registered", function()
      local a, b = util.tcp_pair()
      local p = sel.poll()
      local ok, err = pcall(p.unregister, p, a)
      assert.is_false(ok)
      assert.are.equal("string", type(err))
      assert.truthy(err:find("^bad argument #1 to 'unregister'"), err)
      p:register(a)
      assert.is_truthy(p:unregister(a))
      ok, err = pcall(p.unregister, p, a)
      assert.is_false(ok)
      assert.truthy(err:find("^bad argument #1 to 'unregister'"), err)
      a:close()
      b:close()
    end)
  end)

  describe("poll timeout (milliseconds)", function()
    it("does not wait with 0", function()
      local a, b = util.tcp_pair()
      local p = sel.poll()
      p:register(a, sel.POLLIN)
      local t0 = util.gettime()
      for _ = 1, 100 do
        assert.are.same({}, p:poll(0))
      end
      assert.is_true(util.gettime() - t0 < 0.5)
      a:close()
      b:close()
    end)

    it("waits the given number of milliseconds, then returns an empty table", function()
      local a, b = util.tcp_pair()
      local p = sel.poll()
      p:register(a, sel.POLLIN)
      local t0 = util.gettime()
      local result = p:poll(200)
      local elapsed = util.gettime() - t0
      assert.are.same({}, result)
      assert.is_true(elapsed >= 0.19 and elapsed < 1.5, "waited " .. elapsed .. " s")
      t0 = util.gettime()
      result = p:poll(20.5) -- fractions of a millisecond are fine
      elapsed = util.gettime() - t0
      assert.are.same({}, result)
      assert.is_true(elapsed >= 0.019 and elapsed < 1, "waited " .. elapsed .. " s")
      a:close()
      b:close()
    end)

    for _, case in ipairs({ { "nil", nil }, { "a negative number", -1 }, { "-math.huge", -math.huge } }) do
      it("waits until something is ready with " .. case[1], function()
        local h = assert(io.popen("sleep 0.2; echo x"))
        local p = sel.poll()
        p:register(h, sel.POLLIN)
        local t0 = util.gettime()
        local result
        if case[2] == nil then
          result = p:poll()
        else
          result = p:poll(case[2])
        end
        local elapsed = util.gettime() - t0
        assert.are.equal(1, #result)
        assert.is_true(util.has_bits(result[1][2], sel.POLLIN))
        assert.is_true(elapsed >= 0.1, "returned after " .. elapsed .. " s")
        h:close()
      end)
    end

    it("rejects a timeout that does not fit (Python's OverflowError)", function()
      local p = sel.poll()
      for _, t in ipairs({ 2 ^ 31, 2 ^ 64, 1e300, math.huge }) do
        local ok, err = pcall(p.poll, p, t)
        assert.is_false(ok)
        assert.truthy(err:find("^bad argument #1 to 'poll'"), err)
      end
    end)

    it("rejects NaN and non-numbers", function()
      local p = sel.poll()
      for _, t in ipairs({ 0 / 0, "10", true, {} }) do
        local ok, err = pcall(p.poll, p, t)
        assert.is_false(ok)
        assert.truthy(err:find("^bad argument #1 to 'poll'"), err)
      end
    end)
  end)

  it("reports a registered descriptor that was closed with POLLNVAL", function()
    local fd = util.dead_fd()
    local a, b = util.tcp_pair()
    local p = sel.poll()
    p:register(fd, sel.POLLIN)
    p:register(a, sel.POLLIN)
    local result = p:poll(1000)
    assert.are.equal(1, #result)
    assert.are.equal(fd, result[1][1])
    assert.are.equal(sel.POLLNVAL, result[1][2])
    a:close()
    b:close()
  end)

  it("reports POLLNVAL for a socket closed after it was registered", function()
    local a, b = util.tcp_pair()
    local fd = math.floor(a:getfd())
    local p = sel.poll()
    p:register(a, sel.POLLIN)
    assert.are.same({}, p:poll(0))
    a:close()
    assert.are.same({ { fd, sel.POLLNVAL } }, p:poll(0))
    b:close()
  end)

  it("reports a peer hang-up as readable", function()
    local a, b = util.tcp_pair()
    local p = sel.poll()
    p:register(a, sel.POLLIN)
    b:close()
    local ev = events_of(p:poll(1000), a:getfd())
    assert.is_truthy(ev)
    assert.is_true(util.has_bits(ev, sel.POLLIN))
    a:close()
  end)

  it("reports POLLHUP for a pipe whose writer is gone", function()
    local h = assert(io.popen("true"))
    local p = sel.poll()
    p:register(h, sel.POLLIN)
    local result = p:poll(5000)
    assert.are.equal(1, #result)
    assert.is_true(util.has_bits(result[1][2], sel.POLLHUP))
    h:close()
  end)

  it("works with descriptors >= 1024", function()
    local a, b = util.high_tcp_pair()
    local p = sel.poll()
    p:register(a, sel.POLLIN)
    p:register(b, sel.POLLOUT)
    assert.are.same({ { math.floor(b:getfd()), sel.POLLOUT } }, p:poll(0))
    assert(b:send("x"))
    wait_readable(a)
    local result = p:poll(1000)
    assert.are.equal(2, #result)
    assert.are.equal(sel.POLLIN, events_of(result, a:getfd()))
    local fd = math.floor(a:getfd())
    a:close()
    assert.are.equal(sel.POLLNVAL, events_of(p:poll(0), fd))
    b:close()
  end)

  describe("keeps its registered set across calls", function()
    it("sees registrations made after a poll", function()
      local a, b = util.tcp_pair()
      local p = sel.poll()
      p:register(a, sel.POLLOUT)
      assert.are.equal(1, #p:poll(0))
      p:register(b, sel.POLLOUT)
      assert.are.same(sorted({ a:getfd(), b:getfd() }), fds_of(p:poll(0)))
      a:close()
      b:close()
    end)

    it("sees unregistrations and modifications made after a poll", function()
      local socks, peers, fds = {}, {}, {}
      local p = sel.poll()
      for i = 1, 5 do
        socks[i], peers[i] = util.tcp_pair()
        fds[i] = socks[i]:getfd()
        p:register(socks[i], sel.POLLOUT)
      end
      assert.are.equal(5, #p:poll(0))
      p:unregister(socks[2])
      assert.are.same(sorted({ fds[1], fds[3], fds[4], fds[5] }), fds_of(p:poll(0)))
      p:modify(socks[4], sel.POLLIN)
      assert.are.same(sorted({ fds[1], fds[3], fds[5] }), fds_of(p:poll(0)))
      p:unregister(socks[1])
      p:register(socks[2], sel.POLLOUT)
      assert.are.same(sorted({ fds[2], fds[3], fds[5] }), fds_of(p:poll(0)))
      p:unregister(socks[5])
      p:unregister(socks[3])
      p:unregister(socks[2])
      assert.are.same({}, p:poll(0))
      p:modify(socks[4], sel.POLLOUT)
      assert.are.same({ fds[4] }, fds_of(p:poll(0)))
      for i = 1, 5 do
        socks[i]:close()
        peers[i]:close()
      end
    end)

    it("gives the same answer to repeated polls of an unchanged set", function()
      local a, b = util.tcp_pair()
      local p = sel.poll()
      p:register(a)
      p:register(b, sel.POLLIN)
      local first = p:poll(0)
      for _ = 1, 50 do
        assert.are.same(first, p:poll(0))
      end
      assert(b:send("x"))
      wait_readable(a)
      assert.are.equal(sel.POLLIN + sel.POLLOUT, events_of(p:poll(0), a:getfd()))
      a:close()
      b:close()
    end)

    it("returns a new table on every call", function()
      local a, b = util.tcp_pair()
      local p = sel.poll()
      p:register(a)
      local r1, r2 = p:poll(0), p:poll(0)
      assert.is_false(rawequal(r1, r2))
      assert.is_false(rawequal(r1[1], r2[1]))
      r1[1][1] = "changed"
      assert.are.equal(a:getfd(), p:poll(0)[1][1])
      a:close()
      b:close()
    end)
  end)

  it("handles a thousand registrations", function()
    local socks = {}
    local p = sel.poll()
    for i = 1, 500 do
      local a, b = util.tcp_pair()
      socks[#socks + 1] = a
      socks[#socks + 1] = b
      p:register(a, sel.POLLOUT)
      p:register(b, i % 2 == 0 and sel.POLLOUT or sel.POLLIN)
    end
    assert.are.equal(750, #p:poll(0))
    for _, s in ipairs(socks) do
      s:close()
    end
    local result = p:poll(0)
    assert.are.equal(1000, #result)
    for _, pair in ipairs(result) do
      assert.are.equal(sel.POLLNVAL, pair[2])
    end
  end)

  it("raises an error when a method is called on something else", function()
    local p = sel.poll()
    for _, name in ipairs({ "register", "modify", "unregister", "poll" }) do
      local ok, err = pcall(p[name], {}, 1, 1)
      assert.is_false(ok)
      assert.are.equal("string", type(err))
      assert.truthy(err:find("'" .. name .. "'", 1, true), err)
    end
  end)
end)
