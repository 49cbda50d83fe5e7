-- Bad input through every argument of every function and method: always a
-- Lua error that is a plain string naming the argument, never a crash
-- (doc/select.luadoc, "Errors: one rule").
local sel = require "select"
local socket = require "socket"
local util = require "testutil"

local closed_file = assert(io.open("/dev/null"))
closed_file:close()
local closed_socket = assert(socket.tcp())
closed_socket:close()

-- The values walked through every argument, by name.
local VALUES = {
  ["nil"] = nil, -- (absent from pairs(): handled through NAMES)
  ["true"] = true,
  ["false"] = false,
  ['"3"'] = "3",
  ['"x"'] = "x",
  ["{}"] = {},
  ["function"] = print,
  ["coroutine"] = coroutine.create(function() end),
  ["-1"] = -1,
  ["-2"] = -2,
  ["0"] = 0,
  ["-2^31"] = -2 ^ 31,
  ["3.5"] = 3.5,
  ["0.5"] = 0.5,
  ["NaN"] = 0 / 0,
  ["2^31"] = 2 ^ 31,
  ["2^32"] = 2 ^ 32,
  ["2^53"] = 2 ^ 53,
  ["2^63"] = 2 ^ 63,
  ["-2^63"] = -2 ^ 63,
  ["1e308"] = 1e308,
  ["math.huge"] = math.huge,
  ["-math.huge"] = -math.huge,
  ["closed file"] = closed_file,
  ["closed socket"] = closed_socket,
  ["table without fileno"] = { getfd = false },
  ["fileno returning a string"] = { fileno = function() return "1" end },
  ["65536"] = 65536, -- (not in ALL: a valid descriptor number)
}

local function set(list)
  local s = {}
  for _, name in ipairs(list) do
    s[name] = true
  end
  return s
end

local function minus(list, removed)
  local r, drop = {}, set(removed)
  for _, name in ipairs(list) do
    if not drop[name] then
      r[#r + 1] = name
    end
  end
  return r
end

local ALL = {
  "nil", "true", "false", '"3"', '"x"', "{}", "function", "coroutine", "-1", "-2", "0", "-2^31",
  "3.5", "0.5", "NaN", "2^31", "2^32", "2^53", "2^63", "-2^63", "1e308", "math.huge", "-math.huge",
  "closed file", "closed socket", "table without fileno", "fileno returning a string",
}
local NON_NUMBERS = {
  "true", "false", '"3"', '"x"', "{}", "function", "coroutine", "closed file", "closed socket",
  "table without fileno", "fileno returning a string",
}
-- Any descriptor argument: nothing in ALL but 0 is a descriptor (0 is left
-- out: it is valid).
local FD_BAD = minus(ALL, { "0" })
-- A poll event mask: 0..65535, nil for the default.
local POLL_MASK_BAD = minus(ALL, { "0", "nil" })
-- An epoll event mask: 0..2^32-1 (2^31 is EPOLLET: valid).
local EPOLL_MASK_BAD = minus(ALL, { "0", "nil", "2^31" })
-- select's timeout: nil, 0 and positive values up to ~292 years are valid
-- (and would block), so only the invalid ones are walked.
local SELECT_TIMEOUT_BAD = {
  "true", "false", '"3"', '"x"', "{}", "function", "coroutine", "-1", "-2", "-2^31", "NaN",
  "2^53", "2^63", "-2^63", "1e308", "math.huge", "-math.huge", "closed file", "closed socket",
  "table without fileno", "fileno returning a string",
}
-- poll's timeout in ms: negative means forever (valid), up to INT_MAX.
local POLL_TIMEOUT_BAD = {
  "true", "false", '"3"', '"x"', "{}", "function", "coroutine", "NaN", "2^31", "2^32", "2^53",
  "2^63", "1e308", "math.huge", "closed file", "closed socket", "table without fileno",
  "fileno returning a string",
}
-- epoll's timeout in seconds, as milliseconds up to INT_MAX.
local EPOLL_TIMEOUT_BAD = POLL_TIMEOUT_BAD
-- epoll's maxevents: -1 or >= 1.
local MAXEVENTS_BAD = minus(ALL, { "nil", "-1" })
-- epoll's sizehint: -1 or >= 1.
local SIZEHINT_BAD = minus(ALL, { "nil", "-1" })
-- epoll's flags: any int is "valid" (bad ones give EINVAL, a returned OS
-- error); only non-integers and values outside int raise.
local FLAGS_BAD = minus(ALL, { "nil", "-1", "-2", "0", "-2^31" })

-- Checks `f(v)` raises a string error starting with `prefix`.
local function check_raises(what, prefix, f, v)
  local ok, err = pcall(f, v)
  if ok then
    error(what .. ": no error", 2)
  end
  if type(err) ~= "string" then
    error(what .. ": error is a " .. type(err) .. ", not a string", 2)
  end
  if err:sub(1, #prefix) ~= prefix then
    error(what .. ": error does not name the argument: " .. err, 2)
  end
  if #err > 200 or not err:match("%(.+%)$") then
    error(what .. ": badly worded error: " .. err, 2)
  end
end

-- Walks `names` through the argument: `call(v)` must raise
-- "bad argument #n to 'func' (...)".
local function walk(func, n, names, call)
  local prefix = "bad argument #" .. n .. " to '" .. func .. "' ("
  for _, name in ipairs(names) do
    check_raises(func .. " #" .. n .. " = " .. name, prefix, call, VALUES[name])
  end
end

local function with_socket(f)
  local a, b = util.tcp_pair()
  local ok, err = pcall(f, a)
  a:close()
  b:close()
  if not ok then
    error(err, 0)
  end
end

describe("bad input", function()
  describe("select.select", function()
    it("argument #1..#3 must be a table or nil", function()
      local not_tables = minus(NON_NUMBERS, { "{}", "table without fileno", "fileno returning a string" })
      for _, num in ipairs({ "-1", "0", "3.5", "NaN", "math.huge" }) do
        not_tables[#not_tables + 1] = num
      end
      walk("select", 1, not_tables, function(v) return sel.select(v, {}, {}, 0) end)
      walk("select", 2, not_tables, function(v) return sel.select({}, v, {}, 0) end)
      walk("select", 3, not_tables, function(v) return sel.select({}, {}, v, 0) end)
    end)

    it("entries of argument #1..#3 must be descriptors", function()
      local names = minus(FD_BAD, { "nil" }) -- {nil} is just an empty list
      walk("select", 1, names, function(v) return sel.select({ v }, {}, {}, 0) end)
      walk("select", 2, names, function(v) return sel.select({}, { v }, {}, 0) end)
      walk("select", 3, names, function(v) return sel.select({}, {}, { v }, 0) end)
      with_socket(function(a)
        walk("select", 2, names, function(v) return sel.select({ a }, { a, a, v }, { a }, 0) end)
      end)
    end)

    it("argument #4 must be a valid timeout", function()
      walk("select", 4, SELECT_TIMEOUT_BAD, function(v) return sel.select({}, {}, {}, v) end)
    end)
  end)

  describe("poll object", function()
    it("register #1 (fd) and #2 (eventmask)", function()
      local p = sel.poll()
      walk("register", 1, FD_BAD, function(v) return p:register(v) end)
      walk("register", 1, FD_BAD, function(v) return p:register(v, sel.POLLIN) end)
      with_socket(function(a)
        walk("register", 2, POLL_MASK_BAD, function(v) return p:register(a, v) end)
        walk("register", 2, { "65536" }, function(v) return p:register(a, v) end)
        walk("modify", 2, { "65536" }, function(v) return p:modify(a, v) end)
      end)
      assert.are.same({}, p:poll(0)) -- nothing was registered by a failed call
    end)

    it("modify #1 (fd) and #2 (eventmask)", function()
      local p = sel.poll()
      with_socket(function(a)
        p:register(a)
        walk("modify", 1, FD_BAD, function(v) return p:modify(v, sel.POLLIN) end)
        walk("modify", 2, minus(ALL, { "0" }), function(v) return p:modify(a, v) end)
      end)
    end)

    it("unregister #1 (fd)", function()
      local p = sel.poll()
      walk("unregister", 1, FD_BAD, function(v) return p:unregister(v) end)
    end)

    it("poll #1 (timeout)", function()
      local p = sel.poll()
      walk("poll", 1, POLL_TIMEOUT_BAD, function(v) return p:poll(v) end)
    end)
  end)

  describe("select.epoll", function()
    it("epoll #1 (sizehint) and #2 (flags)", function()
      walk("epoll", 1, SIZEHINT_BAD, function(v) return sel.epoll(v) end)
      walk("epoll", 2, FLAGS_BAD, function(v) return sel.epoll(-1, v) end)
    end)

    it("fromfd #1 (fd)", function()
      walk("fromfd", 1, FD_BAD, function(v) return sel.epoll.fromfd(v) end)
    end)
  end)

  describe("epoll object", function()
    it("register #1 (fd) and #2 (eventmask)", function()
      local ep = sel.epoll()
      walk("register", 1, FD_BAD, function(v) return ep:register(v) end)
      with_socket(function(a)
        walk("register", 2, EPOLL_MASK_BAD, function(v) return ep:register(a, v) end)
      end)
      assert.are.same({}, util.epoll_fdinfo(ep:fileno()))
      ep:close()
    end)

    it("modify #1 (fd) and #2 (eventmask)", function()
      local ep = sel.epoll()
      with_socket(function(a)
        ep:register(a)
        walk("modify", 1, FD_BAD, function(v) return ep:modify(v, sel.EPOLLIN) end)
        walk("modify", 2, minus(ALL, { "0", "2^31" }), function(v) return ep:modify(a, v) end)
      end)
      ep:close()
    end)

    it("unregister #1 (fd)", function()
      local ep = sel.epoll()
      walk("unregister", 1, FD_BAD, function(v) return ep:unregister(v) end)
      ep:close()
    end)

    it("poll #1 (timeout) and #2 (maxevents)", function()
      local ep = sel.epoll()
      walk("poll", 1, EPOLL_TIMEOUT_BAD, function(v) return ep:poll(v) end)
      walk("poll", 2, MAXEVENTS_BAD, function(v) return ep:poll(0, v) end)
      ep:close()
    end)

    it("argument errors win over the closed-object error, as in Python", function()
      local ep = sel.epoll()
      ep:close()
      walk("register", 1, FD_BAD, function(v) return ep:register(v) end)
      walk("poll", 2, MAXEVENTS_BAD, function(v) return ep:poll(0, v) end)
    end)
  end)

  describe("self", function()
    local BAD_SELF = {
      { "nil", nil }, { "a number", 1 }, { "a string", "x" }, { "a table", {} },
      { "io.stdout", io.stdout }, { "a coroutine", coroutine.create(function() end) },
    }

    local function walk_self(methods, other, name_of)
      for _, m in ipairs(methods) do
        local f = m[2]
        local cases = { (table.unpack or unpack)(BAD_SELF) }
        cases[#cases + 1] = { "an object of another type", other }
        for _, case in ipairs(cases) do
          local ok, err = pcall(f, case[2], 1, 1)
          assert(not ok, m[1] .. " accepted " .. case[1] .. " as self")
          assert(type(err) == "string", m[1] .. ": error is a " .. type(err))
          assert(err:find("calling '" .. m[1] .. "' on bad self", 1, true), err)
          assert(err:find(name_of, 1, true), err)
        end
      end
    end

    it("of every poll method must be a poll object", function()
      local p = sel.poll()
      local ep = sel.epoll()
      walk_self({
        { "register", p.register }, { "modify", p.modify }, { "unregister", p.unregister },
        { "poll", p.poll },
      }, ep, "select.poll")
      ep:close()
    end)

    it("of every epoll method must be an epoll object", function()
      local ep = sel.epoll()
      walk_self({
        { "register", ep.register }, { "modify", ep.modify }, { "unregister", ep.unregister },
        { "poll", ep.poll }, { "fileno", ep.fileno }, { "close", ep.close },
      }, sel.poll(), "select.epoll")
      ep:close()
    end)

    it("is known by what it holds, not by its metatable", function()
      -- debug.setmetatable can give any userdata an object's metatable; the
      -- methods must still refuse it (reading a file handle as an epoll
      -- object would crash the interpreter).
      local kq, ep, p = sel.kqueue(), sel.epoll(), sel.poll()
      local ev = sel.kevent(0)
      local f = assert(io.tmpfile())
      local file_mt = debug.getmetatable(f)
      local function as(obj, calls)
        debug.setmetatable(f, debug.getmetatable(obj))
        for name, args in pairs(calls) do
          local ok, err = pcall(function() return f[name](f, (table.unpack or unpack)(args)) end)
          assert(not ok, name .. " accepted a file handle")
          assert(tostring(err):find("bad self", 1, true), tostring(err))
        end
        debug.setmetatable(f, file_mt)
      end
      as(p, { register = { 0 }, modify = { 0, 1 }, unregister = { 0 }, poll = { 0 } })
      as(ep, { register = { 0 }, modify = { 0, 1 }, unregister = { 0 }, poll = { 0 },
               fileno = {}, close = {} })
      as(kq, { control = { nil, 1, 0 }, fileno = {}, close = {} })
      -- A file handle dressed as a kevent is not a kevent either.
      debug.setmetatable(f, debug.getmetatable(ev))
      local ok, err = pcall(kq.control, kq, { f }, 0, 0)
      debug.setmetatable(f, file_mt)
      assert.is_false(ok)
      assert.matches("kevent", tostring(err))
      -- Nothing was harmed: the file and the objects still work.
      assert.truthy(f:write("x"))
      f:close()
      assert.same({}, ep:poll(0))
      assert.same({}, p:poll(0))
      assert.same({}, kq:control(nil, 1, 0))
      ep:close()
      kq:close()
    end)

    it("of every kqueue method must be a kqueue object", function()
      local kq = sel.kqueue()
      local ep = sel.epoll()
      walk_self({
        { "control", kq.control }, { "fileno", kq.fileno }, { "close", kq.close },
      }, ep, "select.kqueue")
      ep:close()
      kq:close()
    end)
  end)

  it("raises plain strings that busted's assert.has_error matches exactly", function()
    assert.has_error(function() sel.select({}, {}, {}, -1) end,
      "bad argument #4 to 'select' (timeout must be non-negative)")
    assert.has_error(function() sel.poll():register(-1) end,
      "bad argument #1 to 'register' (file descriptor cannot be a negative integer (-1))")
    local ep = sel.epoll()
    ep:close()
    assert.has_error(function() ep:poll() end, "I/O operation on closed epoll object")
    local ok, err = pcall(sel.poll().unregister, sel.poll(), 0)
    assert.is_false(ok)
    assert.truthy(err:match("^bad argument #1 to 'unregister' %(.+%)$"), err)
  end)

  it("leaves the module working after all of the above", function()
    local a, b = util.tcp_pair()
    local _, w = sel.select({}, { a }, {}, 0)
    assert(rawequal(w[1], a))
    local p = sel.poll()
    p:register(a)
    assert.are.equal(1, #p:poll(0))
    a:close()
    b:close()
  end)
end)
