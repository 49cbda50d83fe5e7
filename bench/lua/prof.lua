-- Profiling helper (not run by bench/run.sh): repeats one operation of ours
-- so that a profiler sees only it, e.g.
--
--   LUA_PATH="bench/lua/?.lua;lua/?.lua;;" LUA_CPATH="build/lua54/?.so;;" \
--     valgrind --tool=callgrind --callgrind-out-file=/tmp/cg.out \
--     lua5.4 bench/lua/prof.lua epoll 1000 idle 100000
--   callgrind_annotate /tmp/cg.out | head -40
--
-- API: select | poll | epoll | kqueue | selectors
-- N: registered descriptors; STATE: idle | one | all | churn | ping; COUNT:
-- calls (ping, epoll only: N/2 socket pairs with a token bouncing in each, W3's loop;
-- COUNT token hops).

local B = require "bench_common"
local sel = require "select"

local api, n, state, count = arg[1], tonumber(arg[2]), arg[3], tonumber(arg[4])
assert(api and n and state and count, "usage: prof.lua API N idle|one|all|churn COUNT")

local s = B.open_set(state == "churn" and n + 1 or n)
if state == "one" then B.make_one_ready(s) end
if state == "all" then B.fill(s) end
if state == "ping" then B.tokens(s) end

local ends = {}
for i = 1, n do ends[i] = s.ends[i] end
local extra = s.ends[n + 1]

local op
if api == "select" then
  op = function() sel.select(ends, nil, nil, 0) end
elseif api == "poll" then
  local p = sel.poll()
  for _, fd in ipairs(ends) do p:register(fd, sel.POLLIN) end
  if state == "churn" then
    op = function() p:register(extra, sel.POLLIN); p:unregister(extra) end
  else
    op = function() p:poll(0) end
  end
elseif api == "epoll" then
  local ep = sel.epoll()
  for _, fd in ipairs(ends) do ep:register(fd, sel.EPOLLIN) end
  if state == "churn" then
    op = function() ep:register(extra, sel.EPOLLIN); ep:unregister(extra) end
  elseif state == "ping" then
    op = function()
      local evs = ep:poll()
      for i = 1, #evs do
        local fd = evs[i][1]
        s.sock[fd]:receive(1)
        s.partner[fd]:send("x")
      end
    end
  else
    op = function() ep:poll(0) end
  end
elseif api == "kqueue" then
  local kq = sel.kqueue()
  local ch = {}
  for i, fd in ipairs(ends) do ch[i] = sel.kevent(fd, sel.KQ_FILTER_READ, sel.KQ_EV_ADD) end
  if #ch > 0 then assert(kq:control(ch, 0, 0)) end
  if state == "churn" then
    local add = { sel.kevent(extra, sel.KQ_FILTER_READ, sel.KQ_EV_ADD) }
    local del = { sel.kevent(extra, sel.KQ_FILTER_READ, sel.KQ_EV_DELETE) }
    op = function() kq:control(add, 0, 0); kq:control(del, 0, 0) end
  else
    op = function() kq:control(nil, n, 0) end
  end
elseif api == "selectors" then
  local selectors = require "select.selectors"
  local ds = selectors.DefaultSelector()
  for _, fd in ipairs(ends) do ds:register(fd, selectors.EVENT_READ) end
  if state == "churn" then
    op = function() ds:register(extra, selectors.EVENT_READ); ds:unregister(extra) end
  else
    op = function() ds:select(0) end
  end
else
  error("unknown API " .. tostring(api))
end

local t0 = os.clock()
for _ = 1, count do op() end
io.stderr:write(string.format("%s N=%d %s: %.1f ns per call\n", api, n, state, (os.clock() - t0) * 1e9 / count))
B.close_set(s)
B.shutdown()
