-- This module (require "select") under the running interpreter: select.select,
-- poll, epoll, kqueue (when select.kqueue exists) and select.selectors (when
-- it can be required). Workloads W1-W4 (W5 is derived from W1/W3 by the report).
--
--   lua5.4 bench/lua/ours.lua API        W1..W4 for one API: select | poll | epoll | kqueue | selectors
--   lua5.4 bench/lua/ours.lua mem KIND   registration memory, KIND = poll | epoll | kqueue
--   lua5.4 bench/lua/ours.lua pair       T8: kqueue against epoll, measured in alternation
--
-- run.sh runs one process per API, so that a crash in one API costs only its
-- own figures. Run from the repository root with LUA_PATH/LUA_CPATH set by run.sh.

local B = require "bench_common"
local sel = require "select"

local measure, emit = B.measure, B.emit
local tag = jit and "luajit" or (_VERSION:gsub("Lua (%d)%.(%d)", "lua%1%2"))

local kqueue, kevent = sel.kqueue, sel.kevent
local POLLIN, EPOLLIN = sel.POLLIN, sel.EPOLLIN
local KQ_READ, KQ_ADD, KQ_DELETE = sel.KQ_FILTER_READ, sel.KQ_EV_ADD, sel.KQ_EV_DELETE

local function impl(name)
  return tag .. "." .. name
end

-- W3 body shared by the APIs whose results are arrays of {fd, events}.
local function hop_pairs(wait, s)
  local sock, partner = s.sock, s.partner
  return function(it)
    local done = 0
    while done < it do
      local evs = wait()
      for i = 1, #evs do
        local fd = evs[i][1]
        sock[fd]:receive(1)
        partner[fd]:send("x")
      end
      done = done + #evs
    end
    return done
  end
end

-- Each API: wait(s) -> op, close (W1/W2: op(iters) makes iters calls with
-- timeout 0); ping(s) -> op, close (W3: op counts token hops); churn(s, fd,
-- others) -> op, close (W4: register + unregister fd with `others` registered).
-- `variants` lists extra W1/W2 rows, `ping_variants` extra W3 rows.
local APIS = {}

APIS.select = {
  wait = function(s)
    local select_, rl = sel.select, s.ends
    return function(it)
      for _ = 1, it do select_(rl, nil, nil, 0) end
      return it
    end
  end,
  variants = {
    select_obj = function(s)
      local select_, ro = sel.select, s.objs
      return function(it)
        for _ = 1, it do select_(ro, nil, nil, 0) end
        return it
      end
    end,
  },
  ping = function(s)
    local select_, rl, sock, partner = sel.select, s.ends, s.sock, s.partner
    return function(it)
      local done = 0
      while done < it do
        local r = select_(rl)
        for i = 1, #r do
          local fd = r[i]
          sock[fd]:receive(1)
          partner[fd]:send("x")
        end
        done = done + #r
      end
      return done
    end
  end,
}

APIS.poll = {
  new = function(s)
    local p = sel.poll()
    for _, fd in ipairs(s.ends) do p:register(fd, POLLIN) end
    return p
  end,
  -- The opt-in allocation-free form: one results table refilled every call.
  variants = {
    poll_reuse = function(s, api)
      local p, out = api.new(s), {}
      return function(it)
        for _ = 1, it do p:poll(0, out) end
        return it
      end
    end,
  },
  wait = function(s, api)
    local p = api.new(s)
    return function(it)
      for _ = 1, it do p:poll(0) end
      return it
    end
  end,
  ping = function(s, api)
    local p = api.new(s)
    return hop_pairs(function() return p:poll() end, s)
  end,
  ping_variants = {
    poll_reuse = function(s, api)
      local p, out = api.new(s), {}
      return hop_pairs(function() return p:poll(nil, out) end, s)
    end,
  },
  churn = function(s, fd, others)
    local p = sel.poll()
    for i = 1, others do p:register(s.ends[i], POLLIN) end
    p:poll(0)
    return function(it)
      for _ = 1, it do
        p:register(fd, POLLIN)
        p:unregister(fd)
      end
      return it
    end
  end,
}

APIS.epoll = {
  new = function(s)
    local ep = sel.epoll()
    for _, fd in ipairs(s.ends) do ep:register(fd, EPOLLIN) end
    return ep
  end,
  variants = {
    -- The results read as a loop reads them (kqueue_read's counterpart).
    epoll_read = function(s, api)
      local ep = api.new(s)
      return function(it)
        local sink = 0
        for _ = 1, it do
          local evs = ep:poll(0)
          for i = 1, #evs do
            local ev = evs[i]
            sink = sink + ev[1] + ev[2]
          end
        end
        return it, sink
      end, function() ep:close() end
    end,
    epoll_reuse = function(s, api)
      local ep, out = api.new(s), {}
      return function(it)
        for _ = 1, it do ep:poll(0, -1, out) end
        return it
      end, function() ep:close() end
    end,
  },
  wait = function(s, api)
    local ep = api.new(s)
    return function(it)
      for _ = 1, it do ep:poll(0) end
      return it
    end, function() ep:close() end
  end,
  ping = function(s, api)
    local ep = api.new(s)
    return hop_pairs(function() return ep:poll() end, s), function() ep:close() end
  end,
  ping_variants = {
    epoll_reuse = function(s, api)
      local ep, out = api.new(s), {}
      return hop_pairs(function() return ep:poll(nil, nil, out) end, s), function() ep:close() end
    end,
  },
  churn = function(s, fd, others)
    local ep = sel.epoll()
    for i = 1, others do ep:register(s.ends[i], EPOLLIN) end
    return function(it)
      for _ = 1, it do
        ep:register(fd, EPOLLIN)
        ep:unregister(fd)
      end
      return it
    end, function() ep:close() end
  end,
}

APIS.kqueue = {
  new = function(s)
    local kq = kqueue()
    local changes = {}
    for i, fd in ipairs(s.ends) do changes[i] = kevent(fd, KQ_READ, KQ_ADD) end
    assert(kq:control(changes, 0, 0))
    return kq
  end,
  wait = function(s, api)
    local kq, maxev = api.new(s), s.n
    return function(it)
      for _ = 1, it do kq:control(nil, maxev, 0) end
      return it
    end, function() kq:close() end
  end,
  variants = {
    -- Each delivered event's ident, filter and udata read, as a loop does.
    kqueue_read = function(s, api)
      local kq, maxev = api.new(s), s.n
      return function(it)
        local sink, last = 0, nil
        for _ = 1, it do
          local evs = kq:control(nil, maxev, 0)
          for i = 1, #evs do
            local ev = evs[i]
            sink, last = sink + ev.ident + ev.filter, ev.udata
          end
        end
        return it, sink, last
      end, function() kq:close() end
    end,
  },
  ping = function(s, api)
    local kq, maxev, sock, partner = api.new(s), s.n, s.sock, s.partner
    return function(it)
      local done = 0
      while done < it do
        local evs = kq:control(nil, maxev)
        for i = 1, #evs do
          local fd = evs[i].ident
          sock[fd]:receive(1)
          partner[fd]:send("x")
        end
        done = done + #evs
      end
      return done
    end, function() kq:close() end
  end,
  churn = function(s, fd, others)
    local kq = kqueue()
    for i = 1, others do
      assert(kq:control({ kevent(s.ends[i], KQ_READ, KQ_ADD) }, 0, 0))
    end
    local add = { kevent(fd, KQ_READ, KQ_ADD) }
    local del = { kevent(fd, KQ_READ, KQ_DELETE) }
    return function(it)
      for _ = 1, it do
        kq:control(add, 0, 0)
        kq:control(del, 0, 0)
      end
      return it
    end, function() kq:close() end
  end,
}

local selectors -- loaded on demand

APIS.selectors = {
  new = function(s)
    local ds = selectors.DefaultSelector()
    for _, fd in ipairs(s.ends) do ds:register(fd, selectors.EVENT_READ, s.partner[fd]) end
    return ds
  end,
  wait = function(s, api)
    local ds = api.new(s)
    return function(it)
      for _ = 1, it do ds:select(0) end
      return it
    end, function() ds:close() end
  end,
  ping = function(s, api)
    local ds, sock = api.new(s), s.sock
    return function(it)
      local done = 0
      while done < it do
        local evs = ds:select()
        for i = 1, #evs do
          local key = evs[i][1]
          sock[key.fd]:receive(1)
          key.data:send("x")
        end
        done = done + #evs
      end
      return done
    end, function() ds:close() end
  end,
  churn = function(s, fd, others)
    local ds = selectors.DefaultSelector()
    local R = selectors.EVENT_READ
    for i = 1, others do ds:register(s.ends[i], R) end
    return function(it)
      for _ = 1, it do
        ds:register(fd, R)
        ds:unregister(fd)
      end
      return it
    end, function() ds:close() end
  end,
}

local function run_api(name)
  local api = APIS[name]
  assert(api, "unknown API " .. tostring(name))
  -- W1 and W2: the API's own row, then its variants.
  local rows = { { name, api.wait } }
  for vname, v in pairs(api.variants or {}) do rows[#rows + 1] = { vname, v } end
  B.w1_w2(rows, impl, api)
  -- W3: each API in its natural loop; a unit is one token hop (one byte read
  -- and written to the partner), reported as round trips per second.
  -- Variants (the opt-in allocation-free form) follow the API's own row.
  local pings = { { name, api.ping } }
  for vname, v in pairs(api.ping_variants or {}) do pings[#pings + 1] = { vname, v } end
  for _, k in ipairs(B.W3_K) do
    for _, row in ipairs(pings) do
      local s = B.open_set(2 * k)
      B.tokens(s)
      local op, close = row[2](s, api)
      emit("W3", impl(row[1]), k, 1e9 / (2 * measure(op)))
      if close then close() end
      B.close_set(s)
      collectgarbage()
    end
  end
  -- W4: one register + unregister pair on a set holding `others`.
  if api.churn then
    for _, others in ipairs(B.W4_OTHERS) do
      local s = B.open_set(others + 1)
      local op, close = api.churn(s, s.ends[others + 1], others)
      emit("W4", impl(name), others, measure(op))
      if close then close() end
      B.close_set(s)
      collectgarbage()
    end
  end
end

-- Registration memory: as many descriptors as the open-file limit allows
-- (M), all registered in one object; RSS growth (and Lua heap growth) per
-- descriptor. Kernel memory (epitems) is not in RSS: that is "the kernel's own".
local function mem(kind)
  local limit = tonumber(os.getenv("BENCH_FD_LIMIT")) or 1024
  local npairs = math.floor((limit - 64) / 2)
  local s = B.open_set(2 * npairs)
  local m = s.n
  local changes
  if kind == "kqueue" then
    changes = {}
    for i, fd in ipairs(s.ends) do changes[i] = kevent(fd, KQ_READ, KQ_ADD) end
  end
  local obj
  collectgarbage()
  collectgarbage()
  local rss0, heap0 = B.rss(), collectgarbage("count")
  if kind == "poll" then
    obj = sel.poll()
    for _, fd in ipairs(s.ends) do obj:register(fd, POLLIN) end
    obj:poll(0)
  elseif kind == "epoll" then
    obj = sel.epoll()
    for _, fd in ipairs(s.ends) do obj:register(fd, EPOLLIN) end
    obj:poll(0)
  else
    obj = kqueue()
    assert(obj:control(changes, 0, 0))
    obj:control(nil, m, 0)
  end
  collectgarbage()
  collectgarbage()
  local rss1, heap1 = B.rss(), collectgarbage("count")
  emit("MEM", impl(kind), "n", m)
  emit("MEM", impl(kind), "bytes", (rss1 - rss0) / m)
  emit("MEM", impl(kind), "heap", (heap1 - heap0) * 1024 / m)
  if obj.close then obj:close() end
  B.close_set(s)
end

-- T8's workloads, kqueue against our epoll in alternation (measure_pair):
-- one "P8" row per workload, its kqueue / epoll ratio (time for W1 and W2,
-- rate for W3).
local function paired()
  local kq, ep = APIS.kqueue, APIS.epoll
  local function pair(w, param, s, key)
    local a, b = B.measure_pair(function()
      return kq[key](s, kq)
    end, function()
      return ep[key](s, ep)
    end)
    local ratio = key == "ping" and b / a or a / b
    emit("P8", impl("kqueue/epoll"), w .. " " .. param, string.format("%.3f", ratio))
  end
  for _, n in ipairs(B.W1_N) do
    local s = B.open_set(n)
    pair("W1", n .. ":idle", s, "wait")
    if n == 1000 then
      B.make_one_ready(s)
      pair("W1", n .. ":one", s, "wait")
    end
    B.close_set(s)
    collectgarbage()
  end
  local s = B.open_set(1000)
  B.fill(s)
  pair("W2", "1000", s, "wait")
  B.close_set(s)
  collectgarbage()
  for _, k in ipairs(B.W3_K) do
    s = B.open_set(2 * k)
    B.tokens(s)
    pair("W3", k, s, "ping")
    B.close_set(s)
    collectgarbage()
  end
end

local what = arg[1]
if what == "pair" then
  if kqueue then
    paired()
  else
    B.note(tag .. ": select.kqueue is absent from this build: paired rows skipped")
  end
elseif what == "mem" then
  if arg[2] == "kqueue" and not kqueue then
    emit("MEM", impl("kqueue"), "bytes", "n/a (no select.kqueue)")
  else
    mem(arg[2])
  end
elseif what == "kqueue" and not kqueue then
  B.note(tag .. ": select.kqueue is absent from this build: kqueue rows skipped")
elseif what == "selectors" then
  local ok, mod = pcall(require, "select.selectors")
  if ok then
    selectors = mod
    run_api(what)
  else
    B.note(tag .. ": require \"select.selectors\" failed: selectors rows skipped")
  end
else
  run_api(what)
end
B.shutdown()
