-- The `data` of READ and WRITE events: what it measures, and when. BSD
-- measures it when the event is collected; the Linux emulation measures it at
-- the first look at the returned kevent (reading `data`, comparing,
-- `tostring`, passing it to `control`, assigning a field) and keeps it.
local sel = require "select"
local util = require "testutil"

local READ, WRITE = sel.KQ_FILTER_READ, sel.KQ_FILTER_WRITE
local ADD, DELETE = sel.KQ_EV_ADD, sel.KQ_EV_DELETE

local WHEN = "libkqueue measures data when the event is collected, as BSD does, not at the first look"

-- The one event of a call waiting up to a second.
local function one_event(kq)
  local evs = assert(kq:control(nil, 4, 1))
  assert.are.equal(1, #evs)
  return evs[1]
end

-- Waits (up to 2 s) until `n` bytes are readable on luasocket socket `s`, as a
-- fresh event of a queue of its own says. TCP over loopback may take a moment.
local function wait_bytes(s, n)
  local kq = assert(sel.kqueue())
  local ok, err = pcall(function()
    assert(kq:control({ sel.kevent(s, READ, ADD) }, 0, 0))
    local deadline = util.gettime() + 2
    repeat
      local evs = assert(kq:control(nil, 1, 0.1))
      if evs[1] and evs[1].data == n then
        return
      end
    until util.gettime() > deadline
    error(("%d bytes never became readable"):format(n))
  end)
  kq:close()
  assert(ok, err)
end

-- A pipe (a FIFO in a fresh directory): its read end and its unbuffered write
-- end as Lua files, and a function closing both and removing the FIFO.
local function pipe()
  local dir = util.temp_dir()
  local path = dir .. "/fifo"
  os.execute("mkfifo '" .. path .. "'")
  -- Opened for reading and writing so that neither open waits for the other.
  local r = io.open(path, "r+")
  local w = r and io.open(path, "w")
  if not w then
    if r then r:close() end
    util.remove_tree(dir)
    error("could not open a FIFO at " .. path)
  end
  w:setvbuf("no")
  return r, w, function()
    r:close()
    w:close()
    util.remove_tree(dir)
  end
end

describe("select.kqueue event data", function()
  local kq, a, b
  before_each(function()
    kq = assert(sel.kqueue())
    a, b = util.tcp_pair()
  end)
  after_each(function()
    kq:close()
    a:close()
    b:close()
  end)

  -- 5 bytes sent from `a`, and the READ event of `b` they raise (not looked at).
  local function read_event()
    assert(kq:control({ sel.kevent(b, READ, ADD) }, 0, 0))
    assert(a:send("hello"))
    return one_event(kq)
  end

  describe("says what it measures", function()
    it("READ on a socket: the bytes readable", function()
      local ev = read_event()
      assert.are.equal(READ, ev.filter)
      assert.are.equal(5, ev.data)
    end)

    it("READ on a pipe: the bytes readable", function()
      local r, w, close = pipe()
      finally(close)
      assert(kq:control({ sel.kevent(r, READ, ADD) }, 0, 0))
      assert.are.same({}, kq:control(nil, 4, 0))
      assert(w:write("hello"))
      local ev = one_event(kq)
      assert.are.equal(sel.fileno(r), ev.ident)
      assert.are.equal(5, ev.data)
    end)

    it("WRITE on a socket: room to write", function()
      if util.on_libkqueue then
        pending("known difference of libkqueue: libkqueue's WRITE event on a socket carries data 0")
      end
      assert(kq:control({ sel.kevent(a, WRITE, ADD) }, 0, 0))
      local ev = one_event(kq)
      assert.are.equal(WRITE, ev.filter)
      assert.is_true(ev.data > 0)
    end)

    it("WRITE on a pipe: room to write, less by what is written", function()
      local r, w, close = pipe()
      finally(close)
      assert(kq:control({ sel.kevent(w, WRITE, ADD) }, 0, 0))
      local before = one_event(kq).data
      assert.is_true(before > 5)
      assert(w:write("hello"))
      local after = one_event(kq).data
      assert.are.equal(before - 5, after)
      assert.are.equal("hello", r:read(5))
    end)
  end)

  it("is measured once, then kept", function()
    local ev = read_event()
    assert.are.equal(5, ev.data)
    assert(a:send("abc"))
    wait_bytes(b, 8)
    assert.are.equal(5, ev.data)
    assert.truthy(tostring(ev):find("data=0x5", 1, true))
    assert.is_true(ev == sel.kevent(ev.ident, ev.filter, ev.flags, ev.fflags, 5, nil))
  end)

  describe("is measured at the first look, not at collection:", function()
    -- The READ event of 5 bytes, after which 3 more have arrived.
    local function late_event()
      local ev = read_event()
      assert(a:send("abc"))
      wait_bytes(b, 8)
      return ev
    end

    it("reading data", function()
      if util.on_libkqueue then pending(WHEN) end
      local ev = late_event()
      assert.are.equal(8, ev.data)
    end)

    it("tostring", function()
      if util.on_libkqueue then pending(WHEN) end
      local ev = late_event()
      local text = tostring(ev)
      assert.truthy(text:find("data=0x8", 1, true), text)
      assert(a:send("z"))
      wait_bytes(b, 9)
      assert.are.equal(8, ev.data)
    end)

    it("==", function()
      if util.on_libkqueue then pending(WHEN) end
      local ev = late_event()
      local same = sel.kevent(ev.ident, ev.filter, ev.flags, ev.fflags, 8, nil)
      assert.is_true(ev == same)
      assert(a:send("z"))
      wait_bytes(b, 9)
      assert.are.equal(8, ev.data)
    end)

    it("< and <=", function()
      if util.on_libkqueue then pending(WHEN) end
      local ev = late_event()
      local seven = sel.kevent(ev.ident, ev.filter, ev.flags, ev.fflags, 7, nil)
      local eight = sel.kevent(ev.ident, ev.filter, ev.flags, ev.fflags, 8, nil)
      assert.is_true(seven < ev)
      assert.is_true(ev <= eight)
      assert.is_false(ev < eight)
      assert(a:send("z"))
      wait_bytes(b, 9)
      assert.are.equal(8, ev.data)
    end)

    it("passing the kevent to control", function()
      if util.on_libkqueue then pending(WHEN) end
      local ev = late_event()
      assert(kq:control({ ev }, 0, 0))
      assert(a:send("z"))
      wait_bytes(b, 9)
      assert.are.equal(8, ev.data)
    end)

    it("assigning another field", function()
      if util.on_libkqueue then pending(WHEN) end
      local ev = late_event()
      ev.fflags = 0
      assert(a:send("z"))
      wait_bytes(b, 9)
      assert.are.equal(8, ev.data)
    end)
  end)

  it("takes a value assigned before any look, and a field assigned first leaves it measured", function()
    local ev = read_event()
    ev.data = 42
    assert.are.equal(42, ev.data)
    assert.truthy(tostring(ev):find("data=0x2a", 1, true))
    local other = one_event(kq)
    other.fflags = 0
    assert.are.equal(0, other.fflags)
    assert.are.equal(5, other.data)
  end)

  it("of a kevent made by select.kevent is the value given, even negative", function()
    local ev = sel.kevent(b, READ, ADD, 0, -5, nil)
    assert.are.equal(-5, ev.data)
    assert.are.equal(-5, ev.data)
    local text = tostring(ev)
    assert.truthy(text:find("data=0xfffffffffffffffb", 1, true), text)
    assert.is_true(ev == sel.kevent(b, READ, ADD, 0, -5, nil))
    assert.is_false(ev == sel.kevent(b, READ, ADD, 0, 0, nil))
    assert.is_true(ev < sel.kevent(b, READ, ADD, 0, 0, nil))
    assert.is_true(ev <= sel.kevent(b, READ, ADD, 0, -5, nil))
    assert.is_false(sel.kevent(b, READ, ADD, 0, 0, nil) <= ev)
    ev.fflags = 0
    assert.are.equal(-5, ev.data)
    -- As a change, and after it: still the value given.
    assert(kq:control({ ev }, 0, 0))
    assert.are.equal(-5, ev.data)
  end)

  it("is 0 when the descriptor was closed before the first look", function()
    if util.on_libkqueue then pending(WHEN) end
    local ev = read_event()
    b:close()
    local ok, data = pcall(function() return ev.data end)
    assert.is_true(ok, data)
    assert.are.equal(0, data)
    local shown
    ok, shown = pcall(tostring, ev)
    assert.is_true(ok, shown)
    assert.truthy(shown:find("data=0x0", 1, true), shown)
  end)

  it("of a returned kevent does not stop it from being passed back as a change", function()
    local ev = read_event()
    ev.flags = DELETE
    assert.has_no.errors(function()
      assert(kq:control({ ev }, 0, 0))
    end)
    assert.are.equal(DELETE, ev.flags)
    assert(a:send("abc"))
    wait_bytes(b, 8)
    assert.are.same({}, kq:control(nil, 4, 0))
  end)
end)
