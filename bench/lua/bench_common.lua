-- Shared by the Lua drivers (ours.lua, peers.lua): clock, median-of-batches
-- measurement, result lines, and the descriptor sets.
--
-- Descriptors are AF_UNIX stream socket pairs made with luasocket's
-- socket.unix (listen/connect/accept on a temporary path): the same kind of
-- socket as socketpair(2) in the C and Python drivers, available under every
-- Lua version (luaposix has no Lua 5.4 build). Both ends of each pair are
-- registered, so N registered descriptors need N open files.

local unix = require "socket.unix"

local M = {}

M.RUNS = tonumber(os.getenv("BENCH_RUNS")) or 5
M.BATCH = (tonumber(os.getenv("BENCH_BATCH_MS")) or 40) / 1000
M.FD_SETSIZE = 1024

M.W1_N = { 1, 10, 100, 1000, 10000 }
M.W2_N = { 100, 1000 }
M.W3_K = { 1, 64, 512 }
M.W4_OTHERS = { 0, 1000 }

-- Process CPU time (user + system) in seconds: clock(3).
local clock = os.clock
M.clock = clock

local floor = math.floor
local tointeger = math.tointeger or function(x) return x end

function M.toint(x)
  return tointeger(x)
end

-- How many units of `op` make a batch of about BATCH seconds.
local function calibrate(op)
  local iters = 1
  op(1) -- warm-up: first calls may pay for lazy set-up
  while true do
    local t0 = clock()
    local done = op(iters)
    local dt = clock() - t0
    if dt >= M.BATCH / 20 then
      iters = floor(done * M.BATCH / dt)
      return iters < 1 and 1 or iters
    end
    iters = iters * 4
  end
end

-- Cost in ns of one unit of `op` over one batch of `iters` units.
local function batch(op, iters)
  local t0 = clock()
  local done = op(iters)
  return (clock() - t0) * 1e9 / done
end

local function median(v)
  table.sort(v)
  return v[floor(#v / 2) + 1]
end

--- Median cost in ns of one unit of `op`; `op(iters)` runs about `iters`
--- units and returns how many it really ran.
function M.measure(op)
  local iters = calibrate(op)
  local v = {}
  for r = 1, M.RUNS do
    v[r] = batch(op, iters)
  end
  return median(v)
end

--- Median costs in ns of one unit of two operations measured in
--- alternation in one process (A then B, then B then A, ...), each batch on
--- a fresh object: `make()` returns op, close. A change in the machine's
--- load meanwhile weighs on both alike, which separate processes minutes
--- apart do not ensure.
function M.measure_pair(make_a, make_b)
  local makes, iters, v = { make_a, make_b }, {}, { {}, {} }
  for i = 1, 2 do
    local op, close = makes[i]()
    iters[i] = calibrate(op)
    if close then close() end
  end
  for r = 1, M.RUNS do
    for j = 0, 1 do
      local i = (r + j) % 2 + 1
      local op, close = makes[i]()
      op(1)
      v[i][r] = batch(op, iters[i])
      if close then close() end
    end
  end
  return median(v[1]), median(v[2])
end

function M.emit(w, impl, param, value)
  if type(value) == "number" then
    value = string.format("%.1f", value)
  end
  io.stdout:write("R\t", w, "\t", impl, "\t", tostring(param), "\t", value, "\n")
  io.stdout:flush()
end

function M.note(text)
  io.stdout:write("N\t", text, "\n")
  io.stdout:flush()
end

local server, server_path

local function listener()
  if not server then
    server_path = os.tmpname()
    os.remove(server_path)
    server = assert(unix.stream())
    assert(server:bind(server_path))
    assert(server:listen(128))
  end
  return server
end

function M.shutdown()
  if server then
    server:close()
    os.remove(server_path)
    server = nil
  end
end

--- A set of `n` registered descriptors: `ends[1..n]` are the integer fds
--- a1, b1, a2, b2, ... of ceil(n/2) pairs; `sock[fd]` is fd's luasocket
--- object, `partner[fd]` the other end's object, `pfd[fd]` the other end's fd.
function M.open_set(n)
  local srv = listener()
  local s = { n = n, ends = {}, all = {}, sock = {}, partner = {}, pfd = {}, objs = {}, maxfd = 0 }
  for _ = 1, floor((n + 1) / 2) do
    local c = assert(unix.stream())
    assert(c:connect(server_path))
    local a = assert(srv:accept())
    c:settimeout(0)
    a:settimeout(0)
    local fa, fc = tointeger(a:getfd()), tointeger(c:getfd())
    s.sock[fa], s.sock[fc] = a, c
    s.partner[fa], s.partner[fc] = c, a
    s.pfd[fa], s.pfd[fc] = fc, fa
    s.all[#s.all + 1] = fa
    s.all[#s.all + 1] = fc
    if fa > s.maxfd then s.maxfd = fa end
    if fc > s.maxfd then s.maxfd = fc end
  end
  for i = 1, n do
    s.ends[i] = s.all[i]
    s.objs[i] = s.sock[s.all[i]]
  end
  return s
end

--- W1 and W2 for a list of rows {name, make}: `make(s, ...)` returns op, close
--- for the set `s` (the extra arguments are passed on); figures are emitted
--- under `impl(name)`.
function M.w1_w2(rows, impl, ...)
  local function each(w, param, s, ...)
    for _, row in ipairs(rows) do
      local op, close = row[2](s, ...)
      M.emit(w, impl(row[1]), param, M.measure(op))
      if close then close() end
    end
  end
  for _, n in ipairs(M.W1_N) do
    local s = M.open_set(n)
    for _, kind in ipairs({ "idle", "one" }) do
      if kind == "one" then M.make_one_ready(s) end
      each("W1", n .. ":" .. kind, s, ...)
    end
    M.close_set(s)
    collectgarbage()
  end
  for _, n in ipairs(M.W2_N) do
    local s = M.open_set(n)
    M.fill(s)
    each("W2", n, s, ...)
    M.close_set(s)
    collectgarbage()
  end
end

--- Queues one byte for every registered end (all become readable).
function M.fill(s)
  for i = 1, s.n do
    assert(s.partner[s.ends[i]]:send("x"))
  end
end

--- Makes the first registered end readable (W1 "one ready").
function M.make_one_ready(s)
  assert(s.partner[s.ends[1]]:send("x"))
end

function M.unready_one(s)
  assert(s.sock[s.ends[1]]:receive(1))
end

--- Puts a token in flight on each pair of a W3 set (into a_i).
function M.tokens(s)
  for i = 1, #s.all, 2 do
    assert(s.sock[s.all[i + 1]]:send("x"))
  end
end

function M.close_set(s)
  for _, fd in ipairs(s.all) do
    s.sock[fd]:close()
  end
end

--- Resident set size in bytes (Linux /proc/self/statm, 4 KiB pages).
function M.rss()
  local f = assert(io.open("/proc/self/statm"))
  local line = f:read("*l")
  f:close()
  local resident = line:match("^%d+%s+(%d+)")
  return tonumber(resident) * 4096
end

return M
