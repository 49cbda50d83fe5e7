-- require "select.compat": socket_select must answer exactly as luasocket's own
-- socket.select does (below 1024 descriptors, where luasocket works), and keep
-- working above, where luasocket's fails.
local socket = require "socket"
local compat = require "select.compat"
local tu = require "testutil"

local shim = compat.socket_select

-- A getfd object on a pipe that becomes readable (EOF) after `delay` seconds: a
-- select that should return at once but waits instead sees it, and fails the
-- comparison instead of hanging. Also returns the pipe, to close.
local function late_reader(delay)
  local f = assert(io.popen(("sleep %.2f"):format(delay))) -- EOF when it ends
  local fd = require("select").fileno(f)
  return { getfd = function() return fd end }, f
end

local function pack(...)
  return { n = select("#", ...), ... }
end

-- luasocket names itself differently per Lua version ('?', 'socket.select'...).
local function normalize(msg)
  return (tostring(msg):gsub("to '[^']*'", "to 'select'"))
end

local function num_kind(v)
  if math.type then return math.type(v) end
  return type(v)
end

-- nil if tables a and b have the same keys with the same values (numbers also
-- of the same subtype), else a description of the first difference.
local function table_diff(a, b)
  for k, v in pairs(a) do
    local w = b[k]
    if not rawequal(v, w) and v ~= w then
      return ("[%s] = %s vs %s"):format(tostring(k), tostring(v), tostring(w))
    end
    if type(v) == "number" and num_kind(v) ~= num_kind(w) then
      return ("[%s] = %s (%s) vs %s (%s)"):format(tostring(k), tostring(v), num_kind(v), tostring(w), num_kind(w))
    end
  end
  for k in pairs(b) do
    if a[k] == nil then return ("[%s] only in the second"):format(tostring(k)) end
  end
  return nil
end

-- nil if the two packed pcall results are identical, else what differs.
local function diff(r1, r2)
  if r1[1] ~= r2[1] then
    return ("one raised, not the other: %s / %s"):format(tostring(r1[2]), tostring(r2[2]))
  end
  if not r1[1] then
    local m1, m2 = normalize(r1[2]), normalize(r2[2])
    if m1 ~= m2 then return ("errors differ: %q vs %q"):format(m1, m2) end
    return nil
  end
  if r1.n ~= r2.n then return ("%d vs %d results"):format(r1.n - 1, r2.n - 1) end
  for i = 2, r1.n do
    local a, b = r1[i], r2[i]
    if type(a) ~= type(b) then return ("result %d: %s vs %s"):format(i - 1, type(a), type(b)) end
    if type(a) == "table" then
      local d = table_diff(a, b)
      if d then return ("result %d: %s"):format(i - 1, d) end
    elseif a ~= b then
      return ("result %d: %s vs %s"):format(i - 1, tostring(a), tostring(b))
    end
  end
  return nil
end

-- Runs luasocket's select and the shim on the same arguments; both results.
local function both(recvt, sendt, timeout)
  local theirs = pack(pcall(socket.select, recvt, sendt, timeout))
  local ours = pack(pcall(shim, recvt, sendt, timeout))
  return theirs, ours
end

local function assert_same(recvt, sendt, timeout)
  local theirs, ours = both(recvt, sendt, timeout)
  local d = diff(theirs, ours)
  assert(d == nil, d)
  return theirs, ours
end

describe("select.compat.socket_select", function()
  local open
  local function pair()
    local a, b = tu.tcp_pair()
    open[#open + 1] = a
    open[#open + 1] = b
    return a, b
  end

  before_each(function() open = {} end)
  after_each(function()
    for _, o in ipairs(open) do o:close() end
  end)

  it("is told apart from a different answer by the comparison", function()
    local a, b = pair()
    b:send("x")
    tu.sleep(0.05)
    local r1 = pack(pcall(shim, { a }, nil, 0))
    local r2 = pack(pcall(shim, { b }, nil, 0))
    assert.is_not_nil(diff(r1, r2))
    local r3 = pack(pcall(shim, { a }, nil, 0))
    assert.is_nil(diff(r1, r3))
    -- an index of another subtype (5.3+) or a missing map entry is noticed too
    local t = { a, [a] = 1.0 }
    assert.is_not_nil(table_diff(t, { a }))
    if math.type then assert.is_not_nil(table_diff(t, { a, [a] = 1 })) end
    assert.is_not_nil(diff({ n = 2, false, "to 'x' (a)" }, { n = 2, false, "to 'y' (b)" }))
  end)

  describe("answers as luasocket's socket.select", function()
    it("when nothing is ready: two empty tables and 'timeout'", function()
      local a, b = pair()
      local theirs, ours = assert_same({ a, b }, {}, 0)
      assert.are.equal(4, ours.n)
      assert.are.equal("timeout", ours[4])
      assert.are.same({}, ours[2])
      assert.are.same({}, theirs[3])
    end)

    it("with nil lists", function()
      local _, ours = assert_same(nil, nil, 0)
      assert.are.equal("timeout", ours[4])
      assert_same({}, nil, 0)
    end)

    it("for writable sockets: ascending descriptor order, each mapped to its index", function()
      local a, b = pair()
      local c, d = pair()
      local _, ours = assert_same(nil, { d, a, c, b }, 0)
      assert.are.equal(3, ours.n) -- no third value when something is ready
      local w = ours[3]
      assert.are.equal(4, #w)
      for i = 1, 4 do
        assert.are.equal(i, w[w[i]])
        if i > 1 then assert.is_true(w[i - 1]:getfd() < w[i]:getfd()) end
      end
    end)

    it("for readable and writable sockets together, duplicates once", function()
      local a, b = pair()
      local _, d = pair()
      b:send("x")
      tu.sleep(0.05)
      local _, ours = assert_same({ b, a, a }, { d, d, a }, 0)
      assert.are.same({ a, [a] = 1 }, ours[2])
      assert.are.equal(2, #ours[3])
    end)

    it("for a socket in both lists", function()
      local a, b = pair()
      b:send("x")
      tu.sleep(0.05)
      local _, ours = assert_same({ a }, { a }, 0)
      assert.are.equal(a, ours[2][1])
      assert.are.equal(a, ours[3][1])
    end)

    it("skipping closed sockets", function()
      local a, b = pair()
      local c = pair()
      b:send("x")
      c:close()
      tu.sleep(0.05)
      local _, ours = assert_same({ c, a }, { c }, 0)
      assert.are.same({ a, [a] = 1 }, ours[2])
      assert.are.same({}, ours[3])
    end)

    it("reading the lists up to the first nil", function()
      local a, b = pair()
      local c, d = pair()
      b:send("x")
      d:send("x")
      tu.sleep(0.05)
      local _, ours = assert_same({ [1] = a, [3] = c }, nil, 0)
      assert.are.same({ a, [a] = 1 }, ours[2])
    end)

    it("with any object that has getfd, skipping those that have none", function()
      local a, b = pair()
      b:send("x")
      tu.sleep(0.05)
      local via_index = setmetatable({}, { __index = { getfd = function() return a:getfd() end } })
      local plain = { getfd = function() return a:getfd() end }
      assert_same({ via_index }, nil, 0)
      assert_same({ plain }, nil, 0)
      assert_same({ io.stdout, "a string", {} }, nil, 0)
      assert_same({ { getfd = function() return -1 end } }, nil, 0)
      assert_same({ { getfd = function() return 0 / 0 end } }, nil, 0)
      assert_same({ { getfd = function() return "nope" end } }, nil, 0)
    end)

    it("taking numeric strings and fractions from getfd as luasocket does", function()
      local a, b = pair()
      b:send("x")
      tu.sleep(0.05)
      local fd = math.floor(a:getfd())
      local _, ours = assert_same({ { getfd = function() return tostring(fd) end } }, nil, 0)
      assert.are.equal(1, #ours[2])
      _, ours = assert_same({ { getfd = function() return fd + 0.7 end } }, nil, 0)
      assert.are.equal(1, #ours[2])
    end)

    it("when the same descriptor comes through two objects: the last one seen", function()
      local a, b = pair()
      b:send("x")
      tu.sleep(0.05)
      local wrapper = { getfd = function() return a:getfd() end }
      local _, ours = assert_same({ a, wrapper }, { b }, 0)
      assert.are.equal(wrapper, ours[2][1])
      _, ours = assert_same({ wrapper }, { a }, 0)
      assert.are.equal(a, ours[2][1]) -- sendt's object wins for the read result too
    end)

    it("for dirty objects: reported first, at once", function()
      local a, b = pair()
      local c, d = pair()
      d:send("x")
      tu.sleep(0.05)
      local dirty = { getfd = function() return a:getfd() end, dirty = function() return true end }
      local clean = { getfd = function() return b:getfd() end, dirty = function() return false end }
      local t0 = tu.gettime()
      local _, ours = assert_same({ c, clean, dirty }, { a }, 5)
      assert.is_true(tu.gettime() - t0 < 2)
      assert.are.equal(dirty, ours[2][1])
      assert.are.equal(c, ours[2][2])
      assert.are.equal(2, #ours[2])
      assert.are.equal(a, ours[3][1])
    end)

    it("for a luasocket socket with data in its own buffer", function()
      local a, b = pair()
      b:send("one\ntwo\n")
      tu.sleep(0.05)
      assert.are.equal("one", a:receive("*l"))
      -- "two" now sits in luasocket's buffer; the kernel has nothing more
      assert.is_true(a:dirty())
      local _, ours = assert_same({ a }, nil, 5)
      assert.are.same({ a, [a] = 1 }, ours[2])
      assert.are.equal("two", a:receive("*l"))
      local _, ours2 = assert_same({ a }, nil, 0)
      assert.are.equal("timeout", ours2[4])
    end)

    it("with timeouts as numeric strings, NaN, negative and nil", function()
      local a, b = pair()
      assert_same({ a }, nil, "0.05")
      local late, f = late_reader(1)
      local _, ours = assert_same({ a, late }, nil, 0 / 0) -- NaN polls
      assert.are.equal("timeout", ours[4])
      f:close()
      b:send("x")
      tu.sleep(0.05)
      assert_same({ a }, nil, -1)
      assert_same({ a }, nil, nil)
      assert_same({ a }, { b }, "1e-3")
    end)

    it("waiting about as long", function()
      local a = pair()
      local t0 = tu.gettime()
      local theirs, ours = both({ a }, nil, 0.2)
      local dt = tu.gettime() - t0
      assert.is_nil(diff(theirs, ours))
      assert.is_true(dt >= 0.38 and dt < 2, "both took " .. dt)
    end)

    it("raising the same errors for bad arguments", function()
      local a = pair()
      local cases = {
        { 5, {}, 0 }, { "x", nil, 0 }, { true, nil, 0 },
        { {}, 5, 0 }, { nil, "x", 0 },
        { { a }, {}, "x" }, { { a }, {}, true }, { { a }, {}, {} },
        { { 5 }, nil, 0 }, { { true }, nil, 0 }, { { a, print }, nil, 0 },
        { { { getfd = 5 } }, nil, 0 },
        { { { getfd = function() error("boom", 0) end } }, nil, 0 },
        { { { getfd = function() return a:getfd() end, dirty = function() error("dirty boom", 0) end } }, nil, 0 },
        { 5, 5, "x" }, -- the timeout is checked first
      }
      if newproxy then -- luacheck: ignore 113
        cases[#cases + 1] = { { newproxy(false) }, nil, 0 } -- luacheck: ignore 113
      end
      for i, c in ipairs(cases) do
        local theirs, ours = both(c[1], c[2], c[3])
        assert.is_false(theirs[1], "case " .. i .. ": luasocket did not raise")
        local d = diff(theirs, ours)
        assert(d == nil, "case " .. i .. ": " .. tostring(d))
      end
    end)

    it("failing the same way for a descriptor closed behind its back", function()
      local dead = { getfd = function() return tu.dead_fd() end }
      local theirs, ours = assert_same({ dead }, nil, 0)
      assert.is_false(ours[1])
      assert.are.equal("select failed", ours[2])
      assert.is_false(theirs[1])
    end)

    it("failing the same way for a timeout of 2^31 s or more", function()
      local late, f = late_reader(1)
      for _, t in ipairs({ 2 ^ 32, 1e300, math.huge }) do -- (2^31 itself: luasocket varies)
        local _, ours = assert_same({ late }, nil, t)
        assert.are.equal("select failed", ours[2])
      end
      f:close()
    end)

    it("for hundreds of sockets in random states", function()
      local pairs_, close = tu.tcp_pairs(300) -- 600 descriptors, all below 1024
      math.randomseed(5)
      local recvt, sendt = {}, {}
      for _, p in ipairs(pairs_) do
        local a, b = p[1], p[2]
        if math.random() < 0.3 then b:send("x") end
        if math.random() < 0.1 then b:close() end
        recvt[#recvt + 1] = a
        if math.random() < 0.5 then sendt[#sendt + 1] = b end
        if math.random() < 0.5 then sendt[#sendt + 1] = a end
      end
      tu.sleep(0.1)
      local ok, err = pcall(function()
        local _, ours = assert_same(recvt, sendt, 0)
        assert.is_true(#ours[2] > 50)
        assert.is_true(#ours[3] > 100)
      end)
      close()
      assert(ok, err)
    end)
  end)

  describe("answers as luasocket's socket.select on the native paths", function()
    it("with sockets of several classes interleaved (per-metatable method lookups)", function()
      local a, b = pair()
      local c, d = pair()
      local server = tu.listener()
      open[#open + 1] = server
      local udp = assert(socket.udp())
      open[#open + 1] = udp
      assert(udp:setsockname("127.0.0.1", 0))
      b:send("x")
      tu.sleep(0.05)
      assert_same({ a, server, b, udp, c, server, d }, { udp, a, server, d }, 0)
      assert_same({ udp, a, udp, b }, { c, udp }, 0)
    end)

    it("with objects whose __index is a function, or a table of its own", function()
      local a, b = pair()
      b:send("x")
      tu.sleep(0.05)
      local fd = a:getfd()
      local calls = 0
      local byfn = setmetatable({}, { __index = function(_, k)
        calls = calls + 1
        if k == "getfd" then return function() return fd end end
      end })
      local class = { getfd = function(self) return self.fd end, dirty = function() return false end }
      local bytable = setmetatable({ fd = b:getfd() }, { __index = class })
      assert_same({ byfn, bytable, a }, { bytable, byfn }, 0)
      assert.is_true(calls > 0)
    end)

    it("with lists whose entries come from __index (no array part)", function()
      local socks = {}
      for i = 1, 40 do
        local x, y = pair()
        socks[i] = (i % 2 == 0) and x or y
        if i % 3 == 0 then y:send("x") end
      end
      tu.sleep(0.05)
      local proxy = setmetatable({}, { __index = socks })
      assert_same(proxy, proxy, 0)
      assert_same(proxy, nil, 0)
    end)

    it("with a dirty object and a descriptor closed behind its back", function()
      local a = pair()
      local dirty = { getfd = function() return a:getfd() end, dirty = function() return true end }
      local dead = { getfd = function() return tu.dead_fd() end }
      assert_same({ dirty, dead }, { a }, 0)
      assert_same({ dead, dirty, dirty }, nil, 5)
    end)

    it("when a getfd method calls it again (re-entry) or raises", function()
      local a, b = pair()
      b:send("x")
      tu.sleep(0.05)
      local inner
      local nested = { getfd = function()
        inner = pack(shim({ a }, { b }, 0))
        return b:getfd()
      end }
      local r, w = shim({ a, nested }, { nested }, 0)
      assert(rawequal(r[1], a) and r[a] == 1 and rawequal(w[1], nested))
      assert(rawequal(inner[1][1], a) and rawequal(inner[2][1], b))
      local ok, err = pcall(shim, { a, { getfd = function() error("no fd", 0) end } }, nil, 0)
      assert.is_false(ok)
      assert.are.equal("no fd", err)
      -- and the next calls work as before
      assert_same({ a, b }, { a, b }, 0)
      assert_same({ a }, nil, 0)
    end)

    it("for thousands of entries in one call (growing the per-call buffer)", function()
      local a, b = pair()
      b:send("x")
      tu.sleep(0.05)
      local recvt, sendt = {}, {}
      for i = 1, 3000 do
        recvt[i] = (i % 2 == 0) and a or b
        sendt[i] = { getfd = function() return (i % 2 == 0) and a:getfd() or b:getfd() end }
      end
      local proxy = setmetatable({}, { __index = recvt })
      assert_same(proxy, sendt, 0)
      assert_same(recvt, proxy, 0)
    end)
  end)

  describe("beyond luasocket's limit", function()
    local many, close_many
    setup(function()
      many, close_many = tu.tcp_pairs(1000) -- 2000 connected sockets
    end)
    teardown(function()
      close_many()
    end)

    it("serves 2000 connected sockets where luasocket's select fails", function()
      local all = {}
      for _, p in ipairs(many) do
        all[#all + 1] = p[1]
        all[#all + 1] = p[2]
      end
      assert.are.equal(2000, #all)
      assert.is_true(all[2000]:getfd() >= 2000)
      local ok, err = pcall(socket.select, all, nil, 0)
      assert.is_false(ok)
      assert.are.equal("bad argument #1 to 'select' (descriptor too large for set size)", normalize(err))

      -- every socket is writable
      local r, w, e = shim(all, all, 0)
      assert.is_nil(e)
      assert.are.same({}, r)
      assert.are.equal(2000, #w)
      for i = 1, 2000 do
        assert.are.equal(i, w[w[i]])
        if i > 1 then assert.is_true(w[i - 1]:getfd() < w[i]:getfd()) end
      end

      -- a conversation with the highest ones
      local chosen = { many[1000], many[999], many[700] }
      for i, p in ipairs(chosen) do p[2]:send("hello " .. i .. "\n") end
      local got = {}
      local deadline = tu.gettime() + 5
      while #got < #chosen and tu.gettime() < deadline do
        r = shim(all, nil, 1)
        for _, s in ipairs(r) do
          got[#got + 1] = s:receive("*l")
        end
      end
      table.sort(got)
      assert.are.same({ "hello 1", "hello 2", "hello 3" }, got)
      local _, _, timeout = shim(all, nil, 0)
      assert.are.equal("timeout", timeout)
    end)
  end)

  it("installs itself into a luasocket-like module table", function()
    local fake = { select = socket.select }
    local old = compat.install(fake)
    assert.are.equal(socket.select, old)
    assert.are.equal(shim, fake.select)
  end)
end)
