-- A coroutine event loop in about a hundred lines, on select.selectors.
--
-- Tasks are coroutines. They call loop.sleep(seconds), loop.wait_readable(f)
-- and loop.wait_writable(f), which suspend them until the time has passed or
-- the file object is ready; the loop sleeps in the selector meanwhile.
--
--   lua5.4 examples/event_loop.lua      (runs the small demo at the end)
local selectors = require "select.selectors"
local socket = require "socket"

local READ, WRITE = selectors.EVENT_READ, selectors.EVENT_WRITE
local yield = coroutine.yield

local loop = { sel = selectors.DefaultSelector(), timers = {}, tasks = 0 }

--- Suspends the running task for `seconds`.
function loop.sleep(seconds) yield("sleep", seconds) end
--- Suspends the running task until `f` can be read without blocking.
function loop.wait_readable(f) yield("io", f, READ) end
--- Suspends the running task until `f` can be written without blocking.
function loop.wait_writable(f) yield("io", f, WRITE) end

-- Resumes `co`, then files it under what it waits for next.
local function step(co, ...)
  local ok, what, a, b = coroutine.resume(co, ...)
  if not ok then error(what, 0) end
  if coroutine.status(co) == "dead" then
    loop.tasks = loop.tasks - 1
  elseif what == "sleep" then
    loop.timers[#loop.timers + 1] = { at = socket.gettime() + a, co = co }
  elseif what == "io" then
    -- one registration per file object; its data maps each event to its waiter
    local key = loop.sel:get_map()[a]
    if key then
      assert(key.data[b] == nil, "two tasks wait for the same event")
      key.data[b] = co
      loop.sel:modify(a, key.events + b, key.data)
    else
      assert(loop.sel:register(a, b, { [b] = co }))
    end
  end
end

--- Starts `fn(...)` as a new task.
function loop.spawn(fn, ...)
  loop.tasks = loop.tasks + 1
  step(coroutine.create(fn), ...)
end

--- Runs until every task has finished.
function loop.run()
  local sel, timers = loop.sel, loop.timers
  while loop.tasks > 0 do
    -- wait until the next timer, or for I/O only
    local first
    for i = 1, #timers do
      if not first or timers[i].at < timers[first].at then first = i end
    end
    local timeout = first and math.max(0, timers[first].at - socket.gettime())
    assert(timeout or #sel:get_map() > 0, "every task waits for nothing: deadlock")
    local ready = assert(sel:select(timeout))
    local wake = {}
    for _, r in ipairs(ready) do
      local key, events = r[1], r[2]
      local waiters, left = key.data, key.events
      for _, ev in ipairs({ READ, WRITE }) do
        if waiters[ev] and (ev == READ and events % 2 == 1 or ev == WRITE and events >= 2) then
          wake[#wake + 1] = waiters[ev]
          waiters[ev], left = nil, left - ev
        end
      end
      if left == 0 then sel:unregister(key.fileobj) else sel:modify(key.fileobj, left, waiters) end
    end
    local now = socket.gettime()
    for i = #timers, 1, -1 do
      if timers[i].at <= now then wake[#wake + 1] = table.remove(timers, i).co end
    end
    for _, co in ipairs(wake) do step(co) end
  end
  loop.sel:close()
end

------------------------------------------------------------------------------
-- The demo: a ticker, and two tasks talking over a socket pair.
io.stdout:setvbuf("line")
local t0 = socket.gettime()
local function log(fmt, ...)
  print(("[%4.2f] " .. fmt):format(socket.gettime() - t0, ...))
end

local server = assert(socket.bind("127.0.0.1", 0))
local host, port = server:getsockname()
local a = assert(socket.connect(host, port))
local b = assert(server:accept())
server:close()
a:settimeout(0)
b:settimeout(0)

loop.spawn(function()
  for i = 1, 3 do
    loop.sleep(0.1)
    log("tick %d", i)
  end
end)

loop.spawn(function() -- the ponger: answers each ping
  for _ = 1, 2 do
    loop.wait_readable(b)
    local msg = b:receive("*l")
    log("ponger got %q", msg)
    loop.wait_writable(b)
    b:send(msg:gsub("ping", "pong") .. "\n")
  end
  b:close()
end)

loop.spawn(function() -- the pinger: pings twice, 0.12 s apart
  for i = 1, 2 do
    loop.sleep(0.12)
    loop.wait_writable(a)
    a:send("ping " .. i .. "\n")
    log("pinger sent %q", "ping " .. i)
    loop.wait_readable(a)
    log("pinger got %q", (a:receive("*l")))
  end
  a:close()
end)

loop.run()
log("all tasks done")
