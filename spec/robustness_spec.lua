-- Defects an adversarial review found, each kept as its reproducer: none may
-- crash, abort or leak. Each reproducer runs in a child process of the same
-- interpreter, so that a crash is reported as a failed test (with the exit
-- status) instead of ending the test run.
local util = require "testutil"

local has_gc_errors = _VERSION ~= "Lua 5.4" -- 5.4 turns __gc errors into warnings

-- Runs `code` (with S = require "select" and socket) in a child; returns its
-- output, which must end with "done" and an exit status of 0.
local function survives(code)
  local out, status = util.run_lua_status(
    'local S = require "select"\nlocal socket = require "socket"\n' .. code .. '\nio.write("done")\n')
  assert.are.equal(0, status, "child ended with status " .. tostring(status) .. ":\n" .. out)
  assert.truthy(out:find("done$"), out)
  return out
end

describe("robustness", function()
  it("select: a list that grows while an earlier one is read is not read past the stack", function()
    local out = survives [[
      local wlist = {}
      local obj = { getfd = function() for i = 1, 3000 do wlist[i] = 1 end return 0 end }
      local r, w, x = S.select({ obj }, wlist, nil, 0)
      assert(type(r) == "table" and type(w) == "table" and type(x) == "table")
      -- wlist is read up to its length when the call began (empty).
      io.write(#w, " ")
      local big = {}
      local obj2 = { getfd = function() for i = 1, 100000 do big[i] = 1 end return 0 end }
      r, w = S.select({ obj2 }, big, nil, 0)
      io.write(#w, " ")
    ]]
    assert.truthy(out:find("^0 0 "), out)
  end)

  it("select: a getfd that runs the garbage collector leaves the stack room it had", function()
    -- A collection can shrink the Lua stack to what the running calls have
    -- claimed; select keeps every value on it, so its claim must be its own.
    survives [[
      local s = socket.udp()
      s:setsockname("127.0.0.1", 0)
      local fd = s:getfd()
      local list = {}
      for i = 1, 700 do
        list[i] = setmetatable({}, { __index = { getfd = function()
          if i == 2 then collectgarbage() end
          return fd
        end } })
      end
      for _ = 1, 20 do
        local _, w = S.select(list, list, nil, 0)
        assert(#w == 700)
      end
    ]]
  end)

  it("survives errors raised by finalizers during its own allocations, and leaks nothing", function()
    local out = survives [[
      local ep = S.epoll(); local t = {}
      for i = 1, 200 do t[i] = socket.udp(); t[i]:setsockname("127.0.0.1", 0); ep:register(t[i], S.EPOLLOUT) end
      local p = S.poll()
      for i = 1, 200 do p:register(t[i], S.POLLOUT) end
      local kq = S.kqueue()
      local armed, failed, ok = false, 0, 0
      local calls = {
        function() return ep:poll(0) end,
        function() return p:poll(0) end,
        function() return S.select(t, t, nil, 0) end,
        function() return kq:control({ S.kevent(t[1], S.KQ_FILTER_WRITE, S.KQ_EV_ADD, 0, 0, {}) }, 10, 0) end,
        function() return S.kevent(1, S.KQ_FILTER_READ, S.KQ_EV_ADD, 0, 0, "u") end,
      }
      for i = 1, 300 do
        for _ = 1, 50 do
          local f = function() if armed then error("boom") end end
          if newproxy then getmetatable(newproxy(true)).__gc = f else setmetatable({}, { __gc = f }) end
        end
        armed = true
        local good, err = pcall(calls[i % #calls + 1])
        armed = false
        if good then ok = ok + 1 elseif tostring(err):find("boom") then failed = failed + 1 else error(err) end
      end
      collectgarbage(); collectgarbage()
      -- Everything still works afterwards.
      assert(#ep:poll(0) == 200 and #p:poll(0) == 200)
      io.write(failed, " ", ok, " ")
    ]]
    local failed, ok = out:match("^(%d+) (%d+) ")
    assert.truthy(failed, out)
    assert.are.equal(300, tonumber(failed) + tonumber(ok))
    if has_gc_errors then
      assert.is_true(tonumber(failed) > 0, "no finalizer error reached a module call: " .. out)
    end
  end)

  it("select: a list too long for the memory left is an error, not an abort", function()
    -- The address-space limit leaves room for the Lua list (about 370 MB on
    -- 5.4) but not for select's own buffer of it.
    local name = os.tmpname()
    local f = assert(io.open(name, "w"))
    f:write(string.format("package.path = %q\npackage.cpath = %q\n", package.path, package.cpath))
    f:write([[
      local S = require "select"
      local t = {}
      for i = 1, 23000000 do t[i] = 0 end
      local ok, err = pcall(S.select, t, nil, nil, 0)
      io.write(tostring(ok), " ", tostring(err), " done")
    ]])
    f:close()
    local p = assert(io.popen(("sh -c 'ulimit -v 560000; exec %s %s' 2>&1; echo \" status=$?\"")
      :format(util.lua_command(), name)))
    local out = p:read("*a")
    p:close()
    os.remove(name)
    -- Either it fits (other interpreters store numbers more tightly) or it
    -- is Lua's own memory error; never an abort.
    assert.truthy(out:find("^true nil done status=0") or out:find("^false not enough memory done status=0"), out)
  end)

  it("epoll: an impossible maxevents is an error, and a large one leaves no memory behind", function()
    local out = survives [[
      local ep = S.epoll()
      local r, msg, errno = ep:poll(0, 2147483647)
      assert(r == nil and errno == 22, tostring(msg))
      local function rss()
        local f = io.open("/proc/self/status"); local s = f:read("*a"); f:close()
        return tonumber(s:match("VmRSS:%s*(%d+)"))
      end
      local before = rss()
      for _ = 1, 3 do assert(#ep:poll(0, 1e8) == 0) end
      io.write(rss() - before, " ")
    ]]
    local grown = tonumber(out:match("^(%-?%d+) "))
    assert.truthy(grown, out)
    assert.is_true(grown < 20000, "RSS grew by " .. tostring(grown) .. " kB")
  end)

  it("epoll: registrations closed without unregister do not grow the event buffer", function()
    -- The same loop of sockets opened and closed, with and without
    -- registering each: the memory the registrations add is what differs.
    local loop = [[
      local register = %s
      local ep = S.epoll()
      local function rss()
        local f = io.open("/proc/self/status"); local s = f:read("*a"); f:close()
        return tonumber(s:match("VmRSS:%%s*(%%d+)"))
      end
      local before = rss()
      for i = 1, 300000 do
        local s = socket.udp()
        s:setsockname("127.0.0.1", 0)
        if register then assert(ep:register(s, S.EPOLLIN)) end
        s:close()
        if i %% 10000 == 0 then collectgarbage(); assert(#ep:poll(0) == 0) end
      end
      collectgarbage(); collectgarbage()
      io.write(rss() - before, " ")
    ]]
    local plain = tonumber(survives(loop:format("false")):match("^(%-?%d+) "))
    local registered = tonumber(survives(loop:format("true")):match("^(%-?%d+) "))
    -- 300,000 closed registrations once held a 3.6 MB buffer.
    assert.is_true(registered - plain < 1500,
      ("RSS grew by %d kB with registrations, %d kB without"):format(registered, plain))
  end)

  it("kqueue: udata tokens are reused, so no counter runs out", function()
    local out = survives [[
      local kq = S.kqueue()
      local store = (debug.getuservalue or debug.getfenv)(kq)
      for i = 1, 20000 do
        kq:control({ S.kevent(i % 7 + 1, S.KQ_FILTER_USER, S.KQ_EV_ADD, 0, 0, { i }) }, 0, 0)
        kq:control({ S.kevent(i % 7 + 1, S.KQ_FILTER_USER, S.KQ_EV_DELETE) }, 0, 0)
      end
      -- One more udata: its token is the store's one numeric key left.
      kq:control({ S.kevent(1, S.KQ_FILTER_USER, S.KQ_EV_ADD, 0, 0, { "last" }) }, 0, 0)
      local top = 0
      for k, v in pairs(store) do
        if type(k) == "number" and type(v) == "table" and k > top then top = k end
      end
      io.write(top, " ")
    ]]
    local top = tonumber(out:match("^(%d+) "))
    assert.truthy(top, out)
    -- 40,000 udata changes before it: a counter would be past 40,000.
    assert.is_true(top > 0 and top < 100, "token " .. tostring(top))
  end)

  it("kqueue: the udata of a descriptor closed without EV_DELETE is released as the queue is used", function()
    local out = survives [[
      local kq = S.kqueue()
      local weak = setmetatable({}, { __mode = "k" })
      local socks = {}
      for i = 1, 100 do
        local s = socket.udp()
        s:setsockname("127.0.0.1", 0)
        local conn = { i }
        weak[conn] = true
        assert(kq:control({ S.kevent(s, S.KQ_FILTER_READ, S.KQ_EV_ADD, 0, 0, conn) }, 0, 0))
        socks[i] = s
      end
      -- BSD code closes without EV_DELETE; the numbers go to other files.
      for i = 1, 100 do socks[i]:close() end
      local others = {}
      for i = 1, 100 do others[i] = socket.udp(); others[i]:setsockname("127.0.0.1", 0) end
      -- Waits that time out check the queue's descriptors, one each.
      for _ = 1, 120 do kq:control(nil, 1, 0.001) end
      collectgarbage(); collectgarbage()
      local kept = 0
      for _ in pairs(weak) do kept = kept + 1 end
      io.write(kept, " ")
      for i = 1, 100 do others[i]:close() end
    ]]
    assert.are.equal("0 done", out)
  end)

  it("kevent: a cleared udata is released", function()
    local out = survives [[
      local weak = setmetatable({}, { __mode = "k" })
      local v = {}
      weak[v] = true
      local ev = S.kevent(1, S.KQ_FILTER_USER, S.KQ_EV_ADD, 0, 0, v)
      v = nil
      ev.udata = nil
      collectgarbage(); collectgarbage()
      io.write(next(weak) == nil and "freed " or "kept ")
      -- Clearing a udata never set touches nothing else (before 5.2 a
      -- userdata's uservalue starts as the global table).
      rawset(_G, 1, "mine")
      local plain = S.kevent(1, S.KQ_FILTER_USER)
      plain.udata = nil
      assert(rawget(_G, 1) == "mine", "global [1] cleared")
      -- A refill of the reuse form with an event that has no udata.
      local kq = S.kqueue()
      local conn = {}
      weak[conn] = true
      local results = { S.kevent(9, S.KQ_FILTER_USER, 0, 0, 0, conn) }
      conn = nil
      local changes = { S.kevent(1, S.KQ_FILTER_USER, S.KQ_EV_ADD),
                        S.kevent(1, S.KQ_FILTER_USER, 0, S.KQ_NOTE_TRIGGER) }
      kq:control(changes, 1, 0, results)
      assert(#results == 1 and results[1].udata == nil)
      collectgarbage(); collectgarbage()
      io.write(next(weak) == nil and "freed " or "kept ")
    ]]
    assert.are.equal("freed freed done", out)
  end)

  it("select: a long list changed by getfd returns only values it polled", function()
    local out = survives [[
      local srv = assert(socket.bind("127.0.0.1", 0))
      local ip, port = srv:getsockname()
      local c = assert(socket.connect(ip, port))
      local list = {}
      local fd = c:getfd()
      for i = 1, 4999 do list[i] = { getfd = function() return fd end } end
      -- The last entry's method replaces every entry read before it.
      list[5000] = { getfd = function()
        for i = 1, 4999 do list[i] = "not polled" end
        return fd
      end }
      local _, wr = S.select(nil, list, nil, 0)
      for _, v in ipairs(wr) do assert(type(v) == "table", "got " .. tostring(v)) end
      io.write(#wr, " ")
    ]]
    assert.are.equal("5000 done", out)
  end)

  it("a userdata dressed as a Lua file through the debug library is not read as one", function()
    local out = survives [[
      local s = socket.tcp()
      local mt = debug.getmetatable(s)
      debug.setmetatable(s, debug.getmetatable(io.stdout))
      local ok, err = pcall(S.select, { s }, nil, nil, 0)
      debug.setmetatable(s, mt)
      assert(not ok, "accepted")
      io.write(tostring(err):find("file descriptor expected", 1, true) and "rejected " or tostring(err))
    ]]
    assert.are.equal("rejected done", out)
  end)

  it("a kqueue whose udata store was replaced through the debug library raises", function()
    local out = survives [[
      local kq = S.kqueue()
      local set = debug.setuservalue or debug.setfenv
      -- 5.1 and 5.2 take only a table as uservalue; later versions take 42.
      local ok = pcall(set, kq, 42)
      if not ok then set(kq, setmetatable({}, { __newindex = function() error("no") end })) end
      local good, err = pcall(kq.control, kq, { S.kevent(1, S.KQ_FILTER_USER, S.KQ_EV_ADD, 0, 0, {}) }, 0, 0)
      io.write(tostring(good), " ", tostring(err), " ")
    ]]
    -- A clear error (or, where the replacement is a table, success): no crash.
    assert.truthy(out:find("^false .*udata store is missing") or out:find("^true "), out)
  end)
end)

