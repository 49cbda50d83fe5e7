-- require "select.selectors": one set of behaviours (after CPython's
-- Lib/test/test_selectors.py), run for every selector class.
local native = require "select"
local selectors = require "select.selectors"
local tu = require "testutil"

local READ, WRITE = selectors.EVENT_READ, selectors.EVENT_WRITE
local CLOSED = "I/O operation on closed selector"

-- What differs between the classes, as facts the tests check.
--   reports_closed: a descriptor closed behind the selector's back is reported
--     ready (select/poll flag it); epoll and kqueue drop it silently instead.
--   checks_fd: register asks the kernel at once (epoll_ctl, kevent), so a
--     closed descriptor is refused there.
--   regular_file: what registering a regular file gives ("ready" or an errno).
local CLASSES = {
  { name = "DefaultSelector", reports_closed = false, checks_fd = true, regular_file = 1, fileno = true },
  { name = "SelectSelector", reports_closed = true, checks_fd = false, regular_file = "ready" },
  { name = "PollSelector", reports_closed = true, checks_fd = false, regular_file = "ready" },
  { name = "EpollSelector", reports_closed = false, checks_fd = true, regular_file = 1, fileno = true,
    needs = "epoll" },
  { name = "KqueueSelector", reports_closed = false, checks_fd = true, regular_file = "ready", fileno = true,
    needs = "kqueue" },
}

--- The `fileobj`s of the entries of a select() result with `flag` set.
local function ready_with(result, flag)
  local out = {}
  for _, entry in ipairs(result) do
    local ev = entry[2]
    if (flag == READ and ev % 2 == 1) or (flag == WRITE and ev >= 2) then
      out[#out + 1] = entry[1].fileobj
    end
  end
  return out
end

--- select() result as a map fileobj -> events (checking each appears once).
local function by_fileobj(result)
  local out = {}
  for _, entry in ipairs(result) do
    assert.is_nil(out[entry[1].fileobj], "a file object reported twice")
    out[entry[1].fileobj] = entry[2]
  end
  return out
end

local function count(result)
  local n = 0
  for _ in pairs(result) do n = n + 1 end
  return n
end

local function elapsed(f, ...)
  local t0 = tu.gettime()
  local r = f(...)
  return r, tu.gettime() - t0
end

-- Many connected pairs, made once for the whole file (cheaper than per class).
local many, close_many
local MANY = 1100 -- pairs: 2200 descriptors, many of them above 1023

describe("select.selectors", function()
  teardown(function()
    if close_many then close_many() end
  end)

  it("has Python's event constants", function()
    assert.are.equal(1, selectors.EVENT_READ)
    assert.are.equal(2, selectors.EVENT_WRITE)
  end)

  it("picks epoll as the default selector where there is one (Linux), else kqueue", function()
    local best = native.epoll and "EpollSelector" or "KqueueSelector"
    assert.are.equal(selectors[best], selectors.DefaultSelector)
    local s = selectors.DefaultSelector()
    assert.are.equal(selectors[best], getmetatable(s))
    assert.matches("^selectors%." .. best .. ": ", tostring(s))
    s:close()
  end)

  it("follows Python's order without epoll (macOS, the BSDs): kqueue, then poll", function()
    local function load_without(...)
      local fake = setmetatable({}, { __index = native })
      for _, name in ipairs({ ... }) do fake[name] = false end
      local saved, mod = package.loaded["select"], package.loaded["select.selectors"]
      package.loaded["select"], package.loaded["select.selectors"] = fake, nil
      local ok, loaded = pcall(require, "select.selectors")
      package.loaded["select"], package.loaded["select.selectors"] = saved, mod
      assert(ok, loaded)
      return loaded
    end
    local s = load_without("epoll")
    assert.is_nil(s.EpollSelector)
    assert.are.equal(s.KqueueSelector, s.DefaultSelector)
    s = load_without("epoll", "kqueue")
    assert.are.equal(s.PollSelector, s.DefaultSelector)
  end)

  it("has every class of Python's selectors", function()
    assert.is_not_nil(selectors.SelectSelector)
    assert.is_not_nil(selectors.PollSelector)
    assert.are.equal(native.epoll ~= nil, selectors.EpollSelector ~= nil)
    assert.are.equal(native.kqueue ~= nil, selectors.KqueueSelector ~= nil)
  end)

  it("converts file objects to descriptors as the native module does", function()
    local a, b = tu.tcp_pair()
    assert.are.equal(a:getfd(), selectors.fileobj_to_fd(a))
    assert.are.equal(7, selectors.fileobj_to_fd(7))
    assert.are.equal(7, selectors.fileobj_to_fd(7.0))
    assert.are.equal(0, selectors.fileobj_to_fd(io.stdin))
    assert.are.equal(2, selectors.fileobj_to_fd(io.stderr))
    assert.are.equal(9, selectors.fileobj_to_fd({ fileno = function() return 9 end }))
    local fd, msg = selectors.fileobj_to_fd(-3)
    assert.is_nil(fd)
    assert.are.equal("bad argument #1 to 'fileobj_to_fd' (file descriptor cannot be a negative integer (-3))", msg)
    a:close()
    fd, msg = selectors.fileobj_to_fd(a)
    assert.is_nil(fd)
    assert.are.equal("bad argument #1 to 'fileobj_to_fd' (file descriptor cannot be a negative integer (-1))", msg)
    assert.is_nil((selectors.fileobj_to_fd(1.5)))
    assert.is_nil((selectors.fileobj_to_fd("3")))
    b:close()
  end)

  for _, class in ipairs(CLASSES) do
    describe(class.name, function()
      if class.needs and native[class.needs] == nil then
        pending("kqueue not built yet")
        return
      end
      local C = selectors[class.name]
      local s, open
      local function pair()
        local a, b = tu.tcp_pair()
        open[#open + 1] = a
        open[#open + 1] = b
        return a, b
      end

      before_each(function()
        open = {}
        s = assert(C())
      end)

      after_each(function()
        s:close()
        for _, o in ipairs(open) do o:close() end
      end)

      -- register ------------------------------------------------------------

      it("registers a file object and returns its key", function()
        local rd = pair()
        local key = s:register(rd, READ, "data")
        assert.are.equal(rd, key.fileobj)
        assert.are.equal(rd:getfd(), key.fd)
        assert.is_true(tu.is_integer(key.fd))
        assert.are.equal(READ, key.events)
        assert.are.equal("data", key.data)
        assert.are.equal(key, s:get_key(rd))
        assert.matches("^SelectorKey<fileobj=tcp{client}: 0x%x+, fd=%d+, events=1, data=data>$", tostring(key))
      end)

      it("refuses events outside READ|WRITE, 0 included", function()
        local rd = pair()
        for _, ev in ipairs({ 0, 4, 999999, -1 }) do
          assert.has_error(function() s:register(rd, ev) end,
            "bad argument #2 to 'register' (events must be EVENT_READ, EVENT_WRITE or both, got " ..
            tostring(ev) .. ")")
        end
        assert.has_error(function() s:register(rd, 1.5) end,
          "bad argument #2 to 'register' (events must be EVENT_READ, EVENT_WRITE or both, got 1.5)")
        assert.has_error(function() s:register(rd) end,
          "bad argument #2 to 'register' (events must be EVENT_READ, EVENT_WRITE or both, got nil)")
        assert.has_error(function() s:register(rd, "1") end,
          "bad argument #2 to 'register' (events must be EVENT_READ, EVENT_WRITE or both, got string)")
        assert.are.equal(0, s:get_map():len())
      end)

      it("refuses what is not a file object", function()
        assert.has_error(function() s:register(-10, READ) end,
          "bad argument #1 to 'register' (file descriptor cannot be a negative integer (-10))")
        assert.has_error(function() s:register(nil, READ) end,
          "bad argument #1 to 'register' (file descriptor expected, got nil)")
        assert.has_error(function() s:register("3", READ) end,
          "bad argument #1 to 'register' (file descriptor expected, got string)")
        assert.has_error(function() s:register(2.5, READ) end,
          "bad argument #1 to 'register' (file descriptor expected, got non-integer number 2.5)")
        assert.has_error(function() s:register({}, READ) end,
          "bad argument #1 to 'register' (file descriptor expected, got table without getfd or fileno method)")
        assert.has_error(function() s:register({ fileno = function() return "3" end }, READ) end,
          "bad argument #1 to 'register' (file descriptor expected, getfd/fileno returned string)")
        assert.are.equal(0, s:get_map():len())
      end)

      it("lets the errors of a fileno() method through", function()
        local bad = { fileno = function() error("no descriptor here", 0) end }
        assert.has_error(function() s:register(bad, READ) end, "no descriptor here")
      end)

      it("refuses registering twice, also the same descriptor through another object", function()
        local rd = pair()
        local key = s:register(rd, READ)
        local fd = key.fd -- an integer (luasocket's getfd gives a float on 5.3+)
        assert.has_error(function() s:register(rd, WRITE) end,
          ("bad argument #1 to 'register' (%s (fd %d) is already registered)"):format(tostring(rd), fd))
        assert.has_error(function() s:register(fd, READ) end,
          ("bad argument #1 to 'register' (%d (fd %d) is already registered)"):format(fd, fd))
        local wrapper = { getfd = function() return fd end }
        assert.has_error(function() s:register(wrapper, READ) end)
        assert.are.equal(key, s:get_key(rd))
        assert.are.equal(READ, s:get_key(rd).events)
      end)

      if class.checks_fd then
        it("returns the OS error for a closed descriptor and keeps no key", function()
          local fd = tu.dead_fd()
          local key, msg, errno = s:register(fd, READ)
          assert.is_nil(key)
          assert.are.equal("Bad file descriptor", msg)
          assert.are.equal(9, errno)
          assert.has_error(function() s:get_key(fd) end,
            ("bad argument #1 to 'get_key' (%d is not registered)"):format(fd))
          assert.are.equal(0, #s:get_map())
        end)
      else
        it("accepts a closed descriptor and reports it ready", function()
          local fd = tu.dead_fd()
          local key = assert(s:register(fd, READ, "dead"))
          local result = s:select(0)
          assert.are.equal(1, #result)
          assert.are.equal(key, result[1][1])
          assert.are.equal(READ, result[1][2])
          assert.are.equal(key, s:unregister(fd))
        end)
      end

      if class.regular_file == "ready" then
        it("accepts a regular file, always ready", function()
          local f = assert(io.open("spec/testutil.lua"))
          local key = assert(s:register(f, READ))
          local result = s:select(0)
          assert.are.equal(1, #result)
          assert.are.equal(key, result[1][1])
          assert.are.equal(f, result[1][1].fileobj)
          assert.are.equal(READ, result[1][2])
          s:unregister(f)
          f:close()
        end)
      else
        it("returns the OS error for a regular file and keeps no key", function()
          local f = assert(io.open("spec/testutil.lua"))
          local key, msg, errno = s:register(f, READ)
          assert.is_nil(key)
          assert.are.equal("Operation not permitted", msg)
          assert.are.equal(class.regular_file, errno)
          assert.has_error(function() s:get_key(f) end)
          assert.is_nil(s:get_map()[f])
          f:close()
        end)
      end

      -- unregister ----------------------------------------------------------

      it("unregisters, and refuses unknown or already unregistered objects", function()
        local rd = pair()
        local key = s:register(rd, READ)
        assert.are.equal(key, s:unregister(rd))
        assert.has_error(function() s:unregister(999999) end,
          "bad argument #1 to 'unregister' (999999 is not registered)")
        assert.has_error(function() s:unregister(rd) end,
          ("bad argument #1 to 'unregister' (%s is not registered)"):format(tostring(rd)))
        assert.has_error(function() s:get_key(rd) end)
        assert.are.equal(0, #s:get_map())
        -- and it can come back
        local key2 = s:register(rd, WRITE)
        assert.are_not.equal(key, key2)
        assert.are.equal(key2, s:get_key(rd))
      end)

      it("no longer reports an unregistered object", function()
        local rd, wr = pair()
        s:register(wr, WRITE)
        assert.are.equal(1, #s:select(0))
        s:unregister(wr)
        assert.are.same({}, s:select(0))
        s:register(rd, READ)
        wr:send("x")
        assert.are.same({ rd }, ready_with(s:select(1), READ))
      end)

      it("unregisters descriptors closed behind its back (integers)", function()
        local rd, wr = pair()
        local r, w = rd:getfd(), wr:getfd()
        s:register(r, READ)
        s:register(w, WRITE)
        rd:close()
        wr:close()
        assert.are.equal(r, s:unregister(r).fd)
        assert.are.equal(w, s:unregister(w).fd)
        assert.are.equal(0, #s:get_map())
      end)

      it("unregisters descriptors closed and reused behind its back", function()
        local rd, wr = pair()
        local r, w = rd:getfd(), wr:getfd()
        s:register(r, READ)
        s:register(w, WRITE)
        rd:close()
        wr:close()
        local rd2, wr2 = pair() -- takes the lowest free numbers: r and w again, likely
        assert.are.equal(r, s:unregister(r).fd)
        assert.are.equal(w, s:unregister(w).fd)
        -- the new sockets are not watched through the old registrations
        s:register(rd2, READ)
        s:register(wr2, WRITE)
        assert.are.same({ wr2 }, ready_with(s:select(0), WRITE))
      end)

      it("unregisters sockets after they were closed (found by identity)", function()
        local rd, wr = pair()
        local kr = s:register(rd, READ)
        local kw = s:register(wr, WRITE)
        rd:close()
        wr:close()
        assert.are.equal(-1, rd:getfd())
        assert.are.equal(kr, s:get_key(rd))
        assert.are.equal(kr, s:unregister(rd))
        assert.are.equal(kw, s:unregister(wr))
        assert.has_error(function() s:unregister(rd) end,
          "bad argument #1 to 'unregister' (file descriptor cannot be a negative integer (-1))")
      end)

      -- modify --------------------------------------------------------------

      it("modifies events: a new key, and select follows", function()
        local rd, wr = pair()
        local key = s:register(wr, READ, "d")
        assert.are.same({}, s:select(0))
        local key2 = s:modify(wr, WRITE, "d")
        assert.are_not.equal(key, key2)
        assert.are.equal(READ, key.events) -- the old key is a snapshot
        assert.are.equal(WRITE, key2.events)
        assert.are.equal(key2, s:get_key(wr))
        local result = s:select(0)
        assert.are.equal(1, #result)
        assert.are.equal(key2, result[1][1])
        assert.are.equal(WRITE, result[1][2])
        -- READ|WRITE with data waiting: both
        s:register(rd, WRITE)
        wr:send("x")
        s:modify(rd, READ + WRITE)
        assert.are.equal(READ + WRITE, by_fileobj(s:select(1))[rd])
        -- and back to READ only
        s:modify(rd, READ)
        assert.are.equal(READ, by_fileobj(s:select(0))[rd])
      end)

      it("modifies data only, without touching the system object", function()
        local rd = pair()
        local d1, d2 = {}, {}
        local key = s:register(rd, READ, d1)
        local called = false
        s._mod = function() called = true; return true end
        local key2 = s:modify(rd, READ, d2)
        assert.is_false(called)
        assert.are.equal(key.events, key2.events)
        assert.are.equal(d1, key.data)
        assert.are.equal(d2, key2.data)
        assert.are.equal(key2, s:get_key(rd))
        -- nothing changed: the same key back
        assert.are.equal(key2, s:modify(rd, READ, d2))
        -- data omitted: reset to nil, as Python's default None
        assert.is_nil(s:modify(rd, READ).data)
      end)

      it("refuses modifying unknown objects or with invalid events", function()
        local rd = pair()
        assert.has_error(function() s:modify(999999, READ) end,
          "bad argument #1 to 'modify' (999999 is not registered)")
        s:register(rd, READ)
        assert.has_error(function() s:modify(rd, 0) end,
          "bad argument #2 to 'modify' (events must be EVENT_READ, EVENT_WRITE or both, got 0)")
        assert.are.equal(READ, s:get_key(rd).events)
      end)

      it("unregisters the object when the system refuses a modification", function()
        local rd = pair()
        s:register(rd, READ)
        s._mod = function() return nil, "Invented failure", 5 end
        local key, msg, errno = s:modify(rd, WRITE)
        assert.is_nil(key)
        assert.are.equal("Invented failure", msg)
        assert.are.equal(5, errno)
        assert.are.equal(0, #s:get_map())
        assert.has_error(function() s:get_key(rd) end)
      end)

      -- get_key / get_map ---------------------------------------------------

      it("gets keys, and refuses unknown objects", function()
        local rd = pair()
        local key = s:register(rd, READ, "data")
        assert.are.equal(key, s:get_key(rd))
        assert.are.equal(key, s:get_key(rd:getfd()))
        assert.has_error(function() s:get_key(999999) end,
          "bad argument #1 to 'get_key' (999999 is not registered)")
      end)

      it("gives a live, read-only map of the registrations", function()
        local rd, wr = pair()
        local map = s:get_map()
        local sentinel = {}
        assert.are.equal(0, #map)
        assert.are.equal(0, map:len())
        assert.is_nil(map:iter()(map))
        local key = s:register(rd, READ, "data")
        assert.are.equal(1, #map)
        assert.are.equal(key, map[rd])
        assert.are.equal(key, map[rd:getfd()])
        assert.are.equal(key, map:get(rd))
        assert.is_true(map:contains(rd))
        assert.is_false(map:contains(wr))
        assert.is_nil(map[wr])
        assert.is_nil(map[999999])
        assert.is_nil(map["not a file"])
        assert.are.equal(sentinel, map:get(999999, sentinel))
        local seen = {}
        for fd, k in map:iter() do seen[#seen + 1] = { fd, k } end
        assert.are.same({ { rd:getfd(), key } }, seen)
        if _VERSION ~= "Lua 5.1" then -- __pairs: 5.2+
          seen = {}
          for fd, k in pairs(map) do seen[#seen + 1] = { fd, k } end
          assert.are.same({ { rd:getfd(), key } }, seen)
        end
        assert.has_error(function() map[rd] = nil end)
        assert.has_error(function() map[wr] = key end)
        assert.are.equal(1, #map)
        local key2 = s:register(wr, WRITE)
        assert.are.equal(2, #map)
        assert.are.equal(key2, map[wr])
        s:unregister(rd)
        assert.are.equal(1, map:len())
        assert.is_nil(map[rd])
      end)

      -- close ---------------------------------------------------------------

      it("closes: empty map, errors on use, idempotent", function()
        local rd, wr = pair()
        local map = s:get_map()
        s:register(rd, READ)
        s:register(wr, WRITE)
        s:close()
        assert.is_nil(s:get_map())
        assert.are.equal(0, #map)
        assert.is_nil(map[rd])
        assert.are.equal("x", map:get(wr, "x"))
        assert.has_error(function() s:get_key(rd) end, CLOSED)
        assert.has_error(function() s:register(rd, READ) end, CLOSED)
        assert.has_error(function() s:unregister(rd) end, CLOSED)
        assert.has_error(function() s:modify(rd, WRITE) end, CLOSED)
        assert.has_error(function() s:select(0) end, CLOSED)
        assert.has_no_error(function() s:close() end)
        assert.has_no_error(function() s:close() end)
      end)

      if class.fileno then
        it("has a fileno, closed with the selector", function()
          local fd = s:fileno()
          assert.is_true(tu.is_integer(fd))
          assert.is_true(fd >= 0)
          local before = tu.fd_target(fd)
          assert.is_not_nil(before)
          s:close()
          -- closed: the number is free again (fd_target's own pipe may take it)
          assert.are_not.equal(before, tu.fd_target(fd))
          assert.has_error(function() s:fileno() end, CLOSED)
        end)
      else
        it("has no fileno (as in Python)", function()
          assert.is_nil(s.fileno)
        end)
      end

      if _VERSION == "Lua 5.4" then
        it("closes at the end of a <close> scope", function()
          local f = assert(load([[
            local C, rd = ...
            local keep
            do
              local sel <close> = C()
              sel:register(rd, 1)
              keep = sel
            end
            return keep
          ]]))
          local rd = pair()
          local closed = f(C, rd)
          assert.is_nil(closed:get_map())
          assert.has_error(function() closed:select(0) end, CLOSED)
        end)
      end

      -- select --------------------------------------------------------------

      it("reports exactly what is ready, as {key, events}", function()
        local rd, wr = pair()
        s:register(rd, READ)
        local wr_key = s:register(wr, WRITE)
        local result = s:select()
        for _, entry in ipairs(result) do
          assert.are.equal("table", type(entry[1]))
          assert.is_true(entry[2] == READ or entry[2] == WRITE or entry[2] == READ + WRITE)
        end
        assert.are.equal(1, #result)
        assert.are.equal(1, count(result))
        assert.are.equal(wr_key, result[1][1])
        assert.are.equal(WRITE, result[1][2])
      end)

      it("reports only the events registered for", function()
        local rd, wr = pair()
        wr:send("x")
        s:register(rd, WRITE) -- readable too, but only WRITE is asked
        local result = s:select(1)
        assert.are.equal(1, #result)
        assert.are.equal(WRITE, result[1][2])
      end)

      it("reports a peer's hang-up as readable", function()
        local rd, wr = pair()
        local key = s:register(rd, READ)
        assert.are.same({}, s:select(0))
        wr:close()
        local result = s:select(1)
        assert.are.equal(1, #result)
        assert.are.equal(key, result[1][1])
        assert.are.equal(READ, result[1][2])
      end)

      it("selects with nothing registered", function()
        assert.are.same({}, s:select(0))
      end)

      it("returns at once for timeout 0 or negative", function()
        local rd, wr = pair()
        s:register(wr, WRITE)
        local r1, t1 = elapsed(s.select, s, 0)
        local r2, t2 = elapsed(s.select, s, -1)
        assert.are.equal(1, #r1)
        assert.are.equal(1, #r2)
        assert.is_true(t1 + t2 < 0.5)
        s:unregister(wr)
        s:register(rd, READ)
        r1, t1 = elapsed(s.select, s, 0)
        r2, t2 = elapsed(s.select, s, -1)
        assert.are.same({}, r1)
        assert.are.same({}, r2)
        assert.is_true(t1 + t2 < 0.5)
      end)

      it("waits about the timeout when nothing is ready", function()
        local rd = pair()
        s:register(rd, READ)
        local result, dt = elapsed(s.select, s, 0.3)
        assert.are.same({}, result)
        assert.is_true(dt >= 0.28 and dt < 1.5, "waited " .. dt)
      end)

      it("waits about the timeout with nothing registered", function()
        local result, dt = elapsed(s.select, s, 0.25)
        assert.are.same({}, result)
        assert.is_true(dt >= 0.23 and dt < 1.5, "waited " .. dt)
      end)

      it("wakes up when something gets ready, before the timeout", function()
        local f = assert(io.popen("sleep 0.2; echo late"))
        s:register(f, READ)
        local result, dt = elapsed(s.select, s, 5)
        assert.are.same({ f }, ready_with(result, READ))
        assert.is_true(dt >= 0.1 and dt < 4, "waited " .. dt)
        assert.are.equal("late", f:read("*l"))
        s:unregister(f)
        f:close()
      end)

      it("waits forever for nil, returning when ready", function()
        local _, wr = pair()
        local key = s:register(wr, WRITE)
        local result = s:select(nil)
        assert.are.equal(key, result[1][1])
      end)

      it("refuses a timeout that is not a number", function()
        assert.has_error(function() s:select("1") end,
          "bad argument #1 to 'select' (number or nil expected, got string)")
        assert.has_error(function() s:select(0 / 0) end,
          "bad argument #1 to 'select' (timeout must be a number, got NaN)")
      end)

      it("returns a new result table each call", function()
        local _, wr = pair()
        s:register(wr, WRITE)
        local r1 = s:select(0)
        local r2 = s:select(0)
        assert.are_not.equal(r1, r2)
        assert.are.equal(r1[1][1], r2[1][1])
        assert.are.equal(1, #r1)
      end)

      it("serves sockets one message at a time (CPython's test_selector)", function()
        local w2r, r2w = {}, {}
        local writers = {}
        for _ = 1, 12 do
          local rd, wr = pair()
          s:register(rd, READ)
          s:register(wr, WRITE)
          writers[#writers + 1] = wr
          w2r[wr], r2w[rd] = rd, wr
        end
        local msg = " This is a test."
        local got = 0
        math.randomseed(12)
        while #writers > 0 do
          local ready_writers = ready_with(s:select(), WRITE)
          assert.is_true(#ready_writers > 0, "no socket ready for writing")
          local wr = ready_writers[math.random(#ready_writers)]
          assert(wr:send(msg))
          local ready_readers
          for _ = 1, 10 do
            ready_readers = ready_with(s:select(), READ)
            if #ready_readers > 0 then break end
            tu.sleep(0.05)
          end
          assert.are.same({ w2r[wr] }, ready_readers)
          local rd = ready_readers[1]
          assert.are.equal(msg, rd:receive(#msg))
          got = got + 1
          s:unregister(r2w[rd])
          s:unregister(rd)
          for i, w in ipairs(writers) do
            if w == wr then table.remove(writers, i) break end
          end
        end
        assert.are.equal(12, got)
        assert.are.equal(0, #s:get_map())
      end)

      -- closed behind its back ----------------------------------------------

      it("survives a socket closed behind its back, " ..
         (class.reports_closed and "reporting it" or "which the kernel drops"), function()
        local rd, wr = pair()
        local _, wr2 = pair()
        local key = s:register(rd, READ)
        local kw = s:register(wr2, WRITE)
        rd:close()
        local result
        assert.has_no_error(function() result = s:select(0) end)
        local got = by_fileobj(result)
        assert.are.equal(WRITE, got[wr2])
        if class.reports_closed then
          assert.are.equal(READ, got[rd])
          assert.are.equal(2, #result)
        else
          assert.is_nil(got[rd])
          assert.are.equal(1, #result)
        end
        assert.are.equal(key, s:unregister(rd))
        result = s:select(0)
        assert.are.equal(1, #result)
        assert.are.equal(kw, result[1][1])
        assert.are.equal(WRITE, result[1][2])
        assert.is_not_nil(wr) -- its pair is closed by after_each
      end)

      it("survives a descriptor number closed behind its back", function()
        local rd = pair()
        local fd = rd:getfd()
        local key = s:register(fd, READ + WRITE, "n")
        rd:close()
        local result = s:select(0)
        if class.reports_closed then
          assert.are.equal(1, #result)
          assert.are.equal(key, result[1][1])
          assert.are.equal(READ + WRITE, result[1][2])
        else
          assert.are.same({}, result)
        end
        assert.are.equal(key, s:unregister(fd))
        assert.are.same({}, s:select(0))
      end)

      it("survives a Lua file closed behind its back", function()
        local f = assert(io.popen("echo hello"))
        local key = assert(s:register(f, READ, "pipe"))
        local result = s:select(2)
        assert.are.equal(1, #result)
        assert.are.equal(f, result[1][1].fileobj)
        assert.are.equal("hello", f:read("*l"))
        f:close()
        assert.has_no_error(function() result = s:select(0) end)
        assert.are.equal(class.reports_closed and 1 or 0, #result)
        assert.are.equal(key, s:get_key(f))
        assert.are.equal(key, s:unregister(f))
      end)

      -- kinds of file objects -------------------------------------------------

      it("takes any kind of file object and hands back the very object", function()
        local a1, b1 = pair()
        local a2, b2 = pair()
        local a3, b3 = pair()
        local a4, b4 = pair()
        local f = assert(io.popen("echo hello"))
        local fd1 = a1:getfd()
        local with_fileno = { fileno = function() return a2:getfd() end }
        local with_getfd = setmetatable({}, { __index = { getfd = function() return a3:getfd() end } })
        local objs = { fd1, with_fileno, with_getfd, a4, f }
        for i, o in ipairs(objs) do
          local key = assert(s:register(o, READ, i))
          assert.are.equal(o, key.fileobj)
        end
        assert.are.equal(a2:getfd(), s:get_key(with_fileno).fd)
        assert.are.equal(a3:getfd(), s:get_key(with_getfd).fd)
        for _, b in ipairs({ b1, b2, b3, b4 }) do b:send("x") end
        local got = {}
        local deadline = tu.gettime() + 10 -- the echo process may be slow to start
        while tu.gettime() < deadline do
          for _, entry in ipairs(s:select(0.5)) do
            got[entry[1].data] = entry[1].fileobj
            assert.are.equal(READ, entry[2])
          end
          if count(got) == #objs then break end
        end
        for i, o in ipairs(objs) do
          assert.are.equal(o, got[i])
        end
        for _, o in ipairs(objs) do s:unregister(o) end
        f:close()
      end)

      it("takes the standard Lua file handles", function()
        local key = assert(s:register(io.stdout, WRITE))
        assert.are.equal(1, key.fd)
        assert.are.equal(io.stdout, s:get_key(1).fileobj)
        assert.are.equal(key, s:unregister(io.stdout))
      end)

      -- many descriptors ------------------------------------------------------

      it("handles more than FD_SETSIZE descriptors", function()
        if class.name == "KqueueSelector" and tu.on_libkqueue then
          pending("known difference of libkqueue: libkqueue returns at most 512 events per kevent "
            .. "call (MAX_KEVENT, src/common/private.h)")
        end
        if not many then many, close_many = tu.tcp_pairs(MANY) end
        local highest = 0
        for _, p in ipairs(many) do
          assert(s:register(p[1], READ))
          assert(s:register(p[2], WRITE))
          if p[2]:getfd() > highest then highest = p[2]:getfd() end
        end
        assert.is_true(highest >= 2 * MANY)
        assert.are.equal(2 * MANY, #s:get_map())
        local result = s:select(1)
        assert.are.equal(MANY, #result)
        local writers = by_fileobj(result)
        for _, p in ipairs(many) do
          assert.are.equal(WRITE, writers[p[2]])
        end
        -- one of them, far above 1023, becomes readable too
        local last = many[MANY]
        last[2]:send("x")
        local found
        for _ = 1, 10 do
          found = by_fileobj(s:select(1))[last[1]]
          if found then break end
        end
        assert.are.equal(READ, found)
        assert.are.equal("x", last[1]:receive(1))
      end)
    end)
  end
end)
