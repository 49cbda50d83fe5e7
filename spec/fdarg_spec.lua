-- File-descriptor arguments (doc/select.luadoc, "Descriptor arguments"): integers,
-- exact floats, Lua file handles, luasocket objects, and anything with a
-- getfd() or fileno() method, wherever a descriptor is taken.
local sel = require "select"
local socket = require "socket"
local util = require "testutil"

-- Every place that takes a descriptor, as a function of the value, with the
-- name its errors use. Each returns (ok, result-or-error).
local function entry_points()
  return {
    { name = "select", call = function(v) return pcall(sel.select, { v }, {}, {}, 0) end },
    { name = "select", call = function(v) return pcall(sel.select, {}, { v }, {}, 0) end },
    { name = "select", call = function(v) return pcall(sel.select, nil, nil, { v }, 0) end },
    { name = "register", call = function(v) return pcall(sel.poll().register, sel.poll(), v) end },
    { name = "modify", call = function(v) return pcall(sel.poll().modify, sel.poll(), v, 1) end },
    { name = "unregister", call = function(v) return pcall(sel.poll().unregister, sel.poll(), v) end },
    {
      name = "register",
      call = function(v)
        local ep = sel.epoll()
        local r = { pcall(ep.register, ep, v) }
        ep:close()
        return r[1], r[2]
      end,
    },
    {
      name = "modify",
      call = function(v)
        local ep = sel.epoll()
        local r = { pcall(ep.modify, ep, v, 1) }
        ep:close()
        return r[1], r[2]
      end,
    },
    {
      name = "unregister",
      call = function(v)
        local ep = sel.epoll()
        local r = { pcall(ep.unregister, ep, v) }
        ep:close()
        return r[1], r[2]
      end,
    },
    { name = "fromfd", call = function(v) return pcall(sel.epoll.fromfd, v) end },
    { name = "fileno", call = function(v) return pcall(sel.fileno, v) end },
  }
end

-- Asserts that every entry point rejects `v` with a bad-argument error whose
-- text contains `needle`.
local function rejected_everywhere(v, needle)
  for _, ep in ipairs(entry_points()) do
    local ok, err = ep.call(v)
    assert.is_false(ok, ep.name .. " accepted " .. tostring(v))
    assert.are.equal("string", type(err))
    assert.truthy(err:find("^bad argument #%d to '" .. ep.name .. "'"), err)
    if needle then
      assert.truthy(err:find(needle, 1, true), err)
    end
  end
end

-- The descriptor a poll object reports for `v` (which must be writable).
local function resolved_fd(v)
  local p = sel.poll()
  assert.is_truthy(p:register(v, sel.POLLOUT))
  local result = p:poll(0)
  assert.are.equal(1, #result)
  return result[1][1]
end

-- Asserts that `v` means descriptor `fd` to select, poll and epoll alike.
local function means_fd(v, fd)
  assert(util.is_integer(fd))
  -- select.fileno: the conversion itself
  local n = sel.fileno(v)
  assert.are.equal(fd, n)
  assert.is_true(util.is_integer(n))
  -- poll: registering v registers fd
  local p = sel.poll()
  assert.is_truthy(p:register(v))
  assert.is_truthy(p:modify(fd, sel.POLLIN)) -- known under its number
  assert.is_truthy(p:unregister(fd))
  local r = { p:modify(v, 1) }
  assert.are.equal(2, r[3]) -- gone again
  -- epoll
  local ep = sel.epoll()
  local ok = ep:register(v)
  if ok then
    local r2 = { ep:register(fd) }
    assert.are.equal(17, r2[3]) -- the same descriptor
    assert.is_truthy(ep:unregister(v))
  end
  ep:close()
  -- select: hands back the object itself
  local rl, wl = sel.select({ v }, { v }, {}, 0)
  assert.is_truthy(rl)
  assert(#wl == 0 or rawequal(wl[1], v))
end

describe("file descriptor arguments", function()
  describe("integers", function()
    it("are taken as they are", function()
      local a, b = util.tcp_pair()
      local fd = math.floor(a:getfd())
      means_fd(fd, fd)
      local _, w = sel.select({}, { fd }, {}, 0)
      assert(rawequal(w[1], fd))
      a:close()
      b:close()
    end)

    it("may be floats with an exact integer value", function()
      local a, b = util.tcp_pair()
      local fd = math.floor(a:getfd())
      local f = util.float(fd)
      means_fd(f, fd)
      local p = sel.poll()
      p:register(f, sel.POLLOUT)
      local result = p:poll(0)
      assert.are.equal(fd, result[1][1])
      assert.is_true(util.is_integer(result[1][1]))
      local _, w = sel.select({}, { f }, {}, 0)
      assert(rawequal(w[1], f))
      a:close()
      b:close()
    end)

    it("are rejected with a fractional part", function()
      rejected_everywhere(3.5)
      rejected_everywhere(0.5)
    end)

    it("are rejected when negative, with a message naming the number", function()
      rejected_everywhere(-1, "file descriptor cannot be a negative integer (-1)")
      rejected_everywhere(-5, "negative")
    end)

    it("are rejected when NaN, infinite or beyond a C int", function()
      rejected_everywhere(0 / 0)
      rejected_everywhere(math.huge)
      rejected_everywhere(-math.huge)
      rejected_everywhere(2 ^ 31)
      rejected_everywhere(2 ^ 53)
      rejected_everywhere(-(2 ^ 31))
    end)

    it("are rejected as strings, even numeric ones", function()
      rejected_everywhere("3")
      rejected_everywhere("abc")
    end)
  end)

  describe("Lua file handles", function()
    it("give their descriptor (io.open)", function()
      local name = os.tmpname()
      local f = assert(io.open(name, "w"))
      local p = sel.poll()
      p:register(f, sel.POLLOUT)
      local result = p:poll(0)
      assert.are.equal(1, #result)
      local fd = result[1][1]
      assert.are.equal(name, util.fd_target(fd))
      means_fd(f, fd)
      local r, w = sel.select({ f }, { f }, {}, 0)
      assert(rawequal(r[1], f)) -- a regular file is always ready
      assert(rawequal(w[1], f))
      f:close()
      os.remove(name)
    end)

    it("include io.stdin, io.stdout and io.stderr (0, 1, 2)", function()
      means_fd(io.stdin, 0)
      means_fd(io.stdout, 1)
      means_fd(io.stderr, 2)
    end)

    it("include io.popen handles, read and write", function()
      local h = assert(io.popen("echo hello"))
      local r = sel.select({ h }, {}, {}, 5)
      assert(rawequal(r[1], h))
      local p = sel.poll()
      p:register(h, sel.POLLIN)
      local result = p:poll(1000)
      assert.truthy(util.fd_target(result[1][1]):match("^pipe:"))
      assert.are.equal("hello", h:read("*l"))
      h:close()

      local w = assert(io.popen("cat >/dev/null", "w"))
      local _, wl = sel.select({}, { w }, {}, 5)
      assert(rawequal(wl[1], w))
      w:close()
    end)

    it("are rejected once closed", function()
      local f = assert(io.open("/dev/null"))
      f:close()
      rejected_everywhere(f, "closed")
      local h = assert(io.popen("true"))
      h:close()
      rejected_everywhere(h, "closed")
    end)
  end)

  describe("luasocket objects", function()
    it("give their getfd()", function()
      local a, b = util.tcp_pair()
      means_fd(a, math.floor(a:getfd()))
      means_fd(b, math.floor(b:getfd()))
      local server = util.listener()
      means_fd(server, math.floor(server:getfd()))
      local udp = assert(socket.udp())
      assert(udp:setsockname("127.0.0.1", 0))
      means_fd(udp, math.floor(udp:getfd()))
      a:close()
      b:close()
      server:close()
      udp:close()
    end)

    it("are rejected once closed (getfd() is -1), naming the negative value", function()
      local a, b = util.tcp_pair()
      a:close()
      assert.are.equal(-1, a:getfd())
      rejected_everywhere(a, "negative")
      b:close()
    end)
  end)

  describe("objects with a getfd or fileno method", function()
    it("give what fileno() returns", function()
      local a, b = util.tcp_pair()
      local fd = math.floor(a:getfd())
      means_fd({ fileno = function() return fd end }, fd)
      means_fd({ getfd = function() return fd end }, fd)
      means_fd({ fileno = function() return util.float(fd) end }, fd)
      a:close()
      b:close()
    end)

    it("call the method with the object itself", function()
      local a, b = util.tcp_pair()
      local obj = { fd = math.floor(a:getfd()) }
      local seen
      function obj:fileno()
        seen = self
        return self.fd
      end
      means_fd(obj, obj.fd)
      assert(rawequal(seen, obj))
      a:close()
      b:close()
    end)

    it("find the method through a metatable (__index)", function()
      local a, b = util.tcp_pair()
      local fd = math.floor(a:getfd())
      local class = { fileno = function(self) return self.n end }
      local obj = setmetatable({ n = fd }, { __index = class })
      means_fd(obj, fd)
      a:close()
      b:close()
    end)

    it("include the module's own epoll objects", function()
      local ep = sel.epoll()
      local inner = sel.epoll()
      assert.is_truthy(ep:register(inner, sel.EPOLLIN))
      local r = { ep:register(inner:fileno()) }
      assert.are.equal(17, r[3])
      local p = sel.poll()
      p:register(inner)
      assert.is_truthy(p:unregister(inner:fileno()))
      ep:close()
      inner:close()
    end)

    it("are rejected when the method returns something else than a descriptor", function()
      rejected_everywhere({ fileno = function() return -1 end }, "negative")
      rejected_everywhere({ getfd = function() return -7 end }, "negative")
      rejected_everywhere({ fileno = function() return 4.5 end })
      rejected_everywhere({ fileno = function() return "4" end })
      rejected_everywhere({ fileno = function() return nil end })
      rejected_everywhere({ fileno = function() return {} end })
      rejected_everywhere({ fileno = function() return 0 / 0 end })
    end)

    it("are rejected without such a method", function()
      rejected_everywhere({})
      rejected_everywhere({ fileno = 3 })
      rejected_everywhere({ getfd = "x" })
      rejected_everywhere(setmetatable({}, { __index = function() return nil end }))
    end)

    it("let an error raised by the method through unchanged", function()
      local message = "getfd failed on purpose"
      local value = { "an error object" }
      for _, ep in ipairs(entry_points()) do
        local ok, err = ep.call({ getfd = function() error(message, 0) end })
        assert.is_false(ok)
        assert.are.equal(message, err)
        ok, err = ep.call({ fileno = function() error(value) end })
        assert.is_false(ok)
        assert(rawequal(value, err), ep.name .. " changed the error value")
      end
      -- and the module still works afterwards
      local a, b = util.tcp_pair()
      local _, w = sel.select({}, { a }, {}, 0)
      assert(rawequal(w[1], a))
      a:close()
      b:close()
    end)

    it("may call the module themselves", function()
      local a, b = util.tcp_pair()
      local fd = math.floor(a:getfd())
      local obj = {
        fileno = function()
          local _, w = sel.select({}, { fd }, {}, 0)
          assert(rawequal(w[1], fd))
          return fd
        end,
      }
      local _, w = sel.select({}, { obj, b }, {}, 0)
      assert(rawequal(w[1], obj))
      assert(rawequal(w[2], b))
      a:close()
      b:close()
    end)
  end)

  it("rejects other types everywhere", function()
    for _, v in ipairs({ true, false, print, coroutine.create(function() end) }) do
      rejected_everywhere(v)
    end
    local ok, err = pcall(sel.poll().register, sel.poll(), nil)
    assert.is_false(ok)
    assert.truthy(err:find("^bad argument #1 to 'register'"), err)
  end)

  it("accepts descriptors of any size (no FD_SETSIZE limit)", function()
    local a, b = util.high_tcp_pair()
    means_fd(a, math.floor(a:getfd()))
    means_fd(math.floor(b:getfd()), math.floor(b:getfd()))
    a:close()
    b:close()
  end)

  it("resolves the same descriptor for an object and its number", function()
    local a, b = util.tcp_pair()
    assert.are.equal(resolved_fd(a), resolved_fd(math.floor(a:getfd())))
    a:close()
    b:close()
  end)
end)
