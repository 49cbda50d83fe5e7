local sel = require "select"
local util = require "testutil"

-- The first n values of t, as arguments.
local function unpack_args(t, n)
  return (table.unpack or unpack)(t, 1, n)
end

describe("select.kevent", function()
  it("has Python's defaults", function()
    local ev = sel.kevent(7)
    assert.are.equal(7, ev.ident)
    assert.are.equal(sel.KQ_FILTER_READ, ev.filter)
    assert.are.equal(sel.KQ_EV_ADD, ev.flags)
    assert.are.equal(0, ev.fflags)
    assert.are.equal(0, ev.data)
    assert.is_nil(ev.udata)
  end)

  it("takes every field positionally", function()
    local u = {}
    local ev = sel.kevent(9, sel.KQ_FILTER_TIMER, sel.KQ_EV_ADD + sel.KQ_EV_ONESHOT, sel.KQ_NOTE_SECONDS, 5, u)
    assert.are.same({9, -7, 0x11, 1, 5}, {ev.ident, ev.filter, ev.flags, ev.fflags, ev.data})
    assert.are.equal(u, ev.udata)
  end)

  it("has no udata when given one to five arguments", function()
    local args = { 9, sel.KQ_FILTER_TIMER, sel.KQ_EV_ADD, 0, 5 }
    for n = 1, #args do
      local ev = sel.kevent(unpack_args(args, n))
      assert.is_nil(ev.udata, n .. " arguments")
      assert.are.equal(ev, sel.kevent(unpack_args(args, n)))
    end
  end)

  it("takes a keyword table", function()
    local ev = sel.kevent{ident = 4, filter = sel.KQ_FILTER_WRITE, data = -3, udata = "tag"}
    assert.are.same({4, -2, 1, 0, -3, "tag"}, {ev.ident, ev.filter, ev.flags, ev.fflags, ev.data, ev.udata})
  end)

  it("stores a descriptor-like ident as its fd", function()
    local a, b = util.tcp_pair()
    assert.are.equal(a:getfd(), sel.kevent(a).ident)
    assert.are.equal(b:getfd(), sel.kevent{ident = b}.ident)
    local f = assert(io.open("/dev/null"))
    assert.is_number(sel.kevent(f).ident)
    assert.are.equal(sel.kevent(io.stdin).ident, 0)
    f:close()
    a:close(); b:close()
    assert.has_error(function() sel.kevent(a) end)
    assert.has_error(function() sel.kevent(f) end)
  end)

  it("fields are writable, with ranges checked", function()
    local ev = sel.kevent(1)
    ev.ident, ev.filter, ev.flags, ev.fflags, ev.data = 2, -7, 0x20, 8, 99
    assert.are.same({2, -7, 0x20, 8, 99}, {ev.ident, ev.filter, ev.flags, ev.fflags, ev.data})
    ev.udata = print
    assert.are.equal(print, ev.udata)
    ev.udata = nil
    assert.is_nil(ev.udata)
    for _, case in ipairs{
      {"filter", 40000}, {"filter", -40000}, {"flags", -1}, {"flags", 65536},
      {"fflags", -1}, {"fflags", 2^32}, {"ident", -1}, {"data", 1.5}, {"flags", "1"}, {"filter", 0/0},
    } do
      local ok, err = pcall(function() ev[case[1]] = case[2] end)
      assert.is_false(ok, case[1])
      assert.are.equal("string", type(err))
      assert.matches(case[1], err, 1, true)
    end
    local ok, err = pcall(function() ev.nosuch = 1 end)
    assert.is_false(ok)
    assert.matches("no field 'nosuch'", err, 1, true)
    assert.is_nil(ev.nosuch)
  end)

  it("compares all six fields with ==", function()
    local u = {}
    assert.are.equal(sel.kevent(3, -1, 1, 0, 0, u), sel.kevent(3, -1, 1, 0, 0, u))
    assert.are_not.equal(sel.kevent(3, -1, 1, 0, 0, u), sel.kevent(3, -1, 1, 0, 0, {}))
    assert.are_not.equal(sel.kevent(3), sel.kevent(4))
    assert.are_not.equal(sel.kevent(3, -1), sel.kevent(3, -2))
    assert.are_not.equal(sel.kevent(3, -1, 1, 0, 1), sel.kevent(3, -1, 1, 0, 0))
    assert.is_false(sel.kevent(0) == io.stdin)
  end)

  it("orders by (ident, filter, flags, fflags, data), then numeric udata", function()
    local a, b = sel.kevent(1), sel.kevent(2)
    assert.is_true(a < b)
    assert.is_true(a <= b)
    assert.is_false(b < a)
    assert.is_true(sel.kevent(1, -2) < sel.kevent(1, -1))
    assert.is_true(sel.kevent(1, -1, 1, 0, 5) < sel.kevent(1, -1, 1, 0, 6))
    assert.is_true(sel.kevent(1, -1, 1, 0, 0, 1) < sel.kevent(1, -1, 1, 0, 0, 2))
    assert.is_true(sel.kevent(1, -1, 1, 0, 0, 2) <= sel.kevent(1, -1, 1, 0, 0, 2))
    assert.is_false(sel.kevent(1, -1, 1, 0, 0, 3) <= sel.kevent(1, -1, 1, 0, 0, 2))
    local ok, err = pcall(function() return a < 3 end)
    assert.is_false(ok)
    assert.matches("attempt to compare", err)
  end)

  it("formats like Python's repr", function()
    assert.are.equal("<select.kevent ident=3 filter=-1 flags=0x1 fflags=0x0 data=0x0 udata=nil>",
      tostring(sel.kevent(3)))
    assert.are.equal("<select.kevent ident=5 filter=-7 flags=0x11 fflags=0x2 data=0x10 udata=0x7>",
      tostring(sel.kevent(5, -7, 0x11, 2, 16, 7)))
  end)

  it("rejects bad arguments with plain string errors", function()
    for _, args in ipairs{
      {}, {nil}, {true}, {"3"}, {-1}, {1.5}, {0/0}, {math.huge},
      {1, "x"}, {1, 1.5}, {1, 70000}, {1, -1, -1}, {1, -1, 1, -1}, {1, -1, 1, 0, 0.5},
      {{}}, {setmetatable({}, {__index = function() return nil end})},
    } do
      local ok, err = pcall(sel.kevent, (table.unpack or unpack)(args, 1, 6))
      assert.is_false(ok)
      assert.are.equal("string", type(err))
      assert.matches("bad argument #%d to 'kevent'", err)
    end
  end)

  it("lets an error raised by the ident's fileno() through", function()
    local obj = {fileno = function() error("no fd here") end}
    local ok, err = pcall(sel.kevent, obj)
    assert.is_false(ok)
    assert.matches("no fd here", err)
  end)
end)
