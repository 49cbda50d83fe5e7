-- A signal arriving during a blocking select/poll/epoll wait does not end it
-- early with an error, and the whole wait still keeps to the timeout: EINTR
-- is retried with the time that remains (PEP 475; doc/select.luadoc, "Errors: one rule").
--
-- Two ways of catching the signal, so that every Lua version is covered:
-- * in this process, a luaposix handler for SIGUSR1 (Lua 5.1-5.3, LuaJIT);
-- * in a child interpreter, the SIGINT handler that the standalone `lua`
--   program installs while it runs a script (every version; the only way in
--   Lua 5.4, which has no luaposix here). That handler makes the next Lua
--   instruction raise "interrupted!", which the child catches with pcall.
local sel = require "select"
local util = require "testutil"

local posix = util.posix()
local signal = posix and require "posix.signal"

-- Runs `f(count)` with a SIGUSR1 handler installed; `count()` tells how many
-- signals the handler has seen. Restores the default disposition only once
-- `want` signals have arrived (a late one must not kill the test run).
local function with_usr1_handler(want, f)
  local got = 0
  signal.signal(signal.SIGUSR1, function() got = got + 1 end)
  local ok, err = pcall(f, function() return got end)
  local t0 = util.gettime()
  while got < want and util.gettime() - t0 < 3 do
    util.sleep(0.01)
  end
  signal.signal(signal.SIGUSR1, got >= want and signal.SIG_DFL or signal.SIG_IGN)
  if not ok then
    error(err, 0)
  end
end

-- Signals this process with SIGUSR1 at each of the given delays (seconds).
local function usr1_at(...)
  for i = 1, select("#", ...) do
    util.signal_me_later("USR1", (select(i, ...)))
  end
end

local function assert_waited(elapsed, at_least, at_most)
  assert.is_true(elapsed >= at_least, string.format("returned after %.3f s, before %.3f s", elapsed, at_least))
  assert.is_true(elapsed < at_most, string.format("returned after %.3f s, after %.3f s", elapsed, at_most))
end

describe("a signal during a wait (in this process, luaposix handler)", function()
  if not posix then
    pending("luaposix (signal handlers) is not installed for " .. _VERSION ..
      "; the child-interpreter tests below cover this version")
    return
  end

  local server

  before_each(function()
    server = util.listener() -- never readable: nobody connects
  end)

  after_each(function()
    server:close()
  end)

  it("does not end poll early, and poll keeps its timeout", function()
    with_usr1_handler(1, function(count)
      local p = sel.poll()
      p:register(server, sel.POLLIN)
      usr1_at(0.1)
      local t0 = util.gettime()
      local result, msg, errno = p:poll(300)
      local elapsed = util.gettime() - t0
      assert.are.same({}, result, tostring(msg) .. " " .. tostring(errno))
      assert_waited(elapsed, 0.29, 2)
      assert.are.equal(1, count())
    end)
  end)

  it("does not end select early, and select keeps its timeout", function()
    with_usr1_handler(1, function(count)
      usr1_at(0.1)
      local t0 = util.gettime()
      local r, w, x = sel.select({ server }, {}, { server }, 0.3)
      local elapsed = util.gettime() - t0
      assert.are.same({}, r, tostring(w) .. " " .. tostring(x))
      assert.are.same({}, w)
      assert.are.same({}, x)
      assert_waited(elapsed, 0.29, 2)
      assert.are.equal(1, count())
    end)
  end)

  it("does not end select early when all lists are empty (a plain sleep)", function()
    with_usr1_handler(1, function(count)
      usr1_at(0.1)
      local t0 = util.gettime()
      local r = sel.select({}, {}, {}, 0.3)
      assert.are.same({}, r)
      assert_waited(util.gettime() - t0, 0.29, 2)
      assert.are.equal(1, count())
    end)
  end)

  it("does not end epoll:poll early, and it keeps its timeout", function()
    with_usr1_handler(1, function(count)
      local ep = sel.epoll()
      ep:register(server, sel.EPOLLIN)
      usr1_at(0.1)
      local t0 = util.gettime()
      local result, msg, errno = ep:poll(0.3)
      local elapsed = util.gettime() - t0
      ep:close()
      assert.are.same({}, result, tostring(msg) .. " " .. tostring(errno))
      assert_waited(elapsed, 0.29, 2)
      assert.are.equal(1, count())
    end)
  end)

  it("survives several signals in one wait, still keeping the timeout", function()
    with_usr1_handler(3, function(count)
      local p = sel.poll()
      p:register(server, sel.POLLIN)
      usr1_at(0.05, 0.12, 0.2)
      local t0 = util.gettime()
      local result = p:poll(300)
      assert.are.same({}, result)
      assert_waited(util.gettime() - t0, 0.29, 2)
      assert.are.equal(3, count())
    end)
  end)

  for _, case in ipairs({
    { "poll", function(h)
      local p = sel.poll()
      p:register(h, sel.POLLIN)
      local r = p:poll()
      return r and #r
    end },
    { "select", function(h)
      local r = sel.select({ h }, nil, nil)
      return r and #r
    end },
    { "epoll:poll", function(h)
      local ep = sel.epoll()
      ep:register(h, sel.EPOLLIN)
      local r = ep:poll(-1)
      ep:close()
      return r and #r
    end },
  }) do
    it("keeps an endless " .. case[1] .. " waiting until a descriptor is ready", function()
        with_usr1_handler(1, function(count)
        local h = assert(io.popen("sleep 0.3; echo ready"))
        usr1_at(0.1)
        local t0 = util.gettime()
        local n = case[2](h)
        local elapsed = util.gettime() - t0
        assert.are.equal(1, n)
        assert_waited(elapsed, 0.2, 3)
        assert.are.equal(1, count())
        assert.are.equal("ready", h:read("*l"))
        h:close()
      end)
    end)
  end
end)

-- The child: a script run by the same interpreter, signalled with SIGINT.
-- It prints "ok=<pcall status> err=<message> elapsed=<seconds> n=<ready>".
local CHILD = [[
local sel = require "select"
local socket = require "socket"
local f = assert(io.open("/proc/self/stat"))
local pid = tonumber(f:read("*a"):match("^(%d+)"))
f:close()
local server = assert(socket.bind("127.0.0.1", 0))
local h = assert(io.popen("sleep 0.3; echo ready"))
local function wait()
  WAIT_BODY
end
os.execute(string.format("(sleep 0.1; kill -INT %d) >/dev/null 2>&1 &", pid))
local t0 = socket.gettime()
local n
local ok, err = pcall(function()
  local result = wait()
  n = result -- an instruction after the call: the hook raises here at the latest
  return n
end)
print(string.format("ok=%s err=%s elapsed=%.3f n=%s", tostring(ok), tostring(err),
  socket.gettime() - t0, tostring(n)))
h:close()
server:close()
]]

local function run_child(body)
  local out = util.run_lua((CHILD:gsub("WAIT_BODY", function() return body end)))
  local ok, err, elapsed = out:match("ok=(%S+) err=(.-) elapsed=(%S+) n=")
  assert(ok, "child failed: " .. out)
  return ok, err, tonumber(elapsed), out
end

describe("a signal during a wait (child interpreter, SIGINT handler of lua.c)", function()
  local timed = {
    { "poll", "local p = sel.poll(); p:register(server, sel.POLLIN); return #p:poll(300)" },
    { "select", "return #sel.select({ server }, {}, { server }, 0.3)" },
    { "select with empty lists", "return #sel.select({}, {}, {}, 0.3)" },
    { "epoll:poll", "local ep = sel.epoll(); ep:register(server, sel.EPOLLIN); return #ep:poll(0.3)" },
  }
  for _, case in ipairs(timed) do
    it("does not end " .. case[1] .. " early, and it keeps its timeout", function()
      local ok, err, elapsed, out = run_child(case[2])
      -- the handler ran (its hook raised once the call returned) ...
      assert.are.equal("false", ok, out)
      assert.truthy(err:find("interrupted!", 1, true), out)
      -- ... and the call itself waited out its whole timeout
      assert_waited(elapsed, 0.29, 2)
    end)
  end

  local endless = {
    { "poll", "local p = sel.poll(); p:register(h, sel.POLLIN); return #p:poll()" },
    { "select", "return #sel.select({ h }, nil, nil)" },
    { "epoll:poll", "local ep = sel.epoll(); ep:register(h, sel.EPOLLIN); return #ep:poll()" },
  }
  for _, case in ipairs(endless) do
    it("keeps an endless " .. case[1] .. " waiting until a descriptor is ready", function()
      local ok, err, elapsed, out = run_child(case[2])
      assert.are.equal("false", ok, out)
      assert.truthy(err:find("interrupted!", 1, true), out)
      assert_waited(elapsed, 0.2, 3)
    end)
  end
end)
