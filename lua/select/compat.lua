--- Drop-in replacements built on the `select` module.
--
-- `socket_select` behaves as luasocket's `socket.select` (luasocket 3.x): the
-- same arguments, the same results, the same errors, but without its
-- `FD_SETSIZE` limit: luasocket refuses any descriptor above 1023 with
-- `descriptor too large for set size`, this one takes descriptors of any size.
--
-- What it reproduces of luasocket, checked against it by `spec/compat_spec.lua`:
--
-- * `recvt` and `sendt` are arrays (or nil) read up to the first nil entry;
--   each entry is asked `getfd()` (any table or userdata with that method
--   works); entries with no `getfd` method, or whose `getfd()` gives no
--   non-negative number (a closed socket gives -1), are skipped;
-- * an entry of `recvt` whose `dirty()` method returns true (a luasocket
--   socket with data already in its buffer) is reported readable at once,
--   first in the result, and the wait becomes a poll;
-- * `timeout` in seconds, a number or numeric string; nil or negative waits
--   forever; NaN polls;
-- * the results are two arrays of the ready objects in ascending descriptor
--   order (after the dirty ones) that also map each object to its index
--   (`t[sock] == i`, a float on Lua 5.3+ as in luasocket); on timeout the
--   results are two empty tables and `"timeout"`;
-- * errors: `bad argument #N to 'select' (table expected, got T)`,
--   `bad argument #3 to 'select' (number expected, got T)`,
--   `attempt to index a T value` for an entry that cannot be indexed, and
--   `select failed` when the system call fails (a descriptor closed behind
--   luasocket's back, or a timeout of 2^31 seconds or more).
--
-- The function name inside `bad argument` messages is always `'select'`;
-- luasocket's depends on the Lua version and how it was called (`'?'`,
-- `'select'`, `'socket.core.select'`).
--
-- @module select.compat
-- @usage
-- local socket = require "socket"
-- local compat = require "select.compat"
-- local readable, writable, err = compat.socket_select({server, client}, nil, 1)
-- -- or, for code (copas, ...) that calls socket.select itself:
-- compat.install(socket)

local native_select = require("select").select

local type, tonumber, error, pcall, getmetatable = type, tonumber, error, pcall, getmetatable
local floor, sort = math.floor, table.sort

local M = {}

local MAX_SECONDS = 2147483648 -- luasocket's (int) cast of the seconds overflows here

local function argerror(n, msg)
  error("bad argument #" .. n .. " to 'select' (" .. msg .. ")", 0)
end

local function get_field(v, name)
  return v[name]
end

-- v[name] as lua_gettable does it from C: values that cannot be indexed give
-- `attempt to index a T value`, without position.
local function index(v, name)
  local tv = type(v)
  if tv == "table" or tv == "string" then
    return v[name]
  elseif tv == "userdata" then
    local ok, r = pcall(get_field, v, name)
    if ok then return r end
    if type(r) == "string" and r:find("attempt to index", 1, true) then
      error("attempt to index a userdata value", 0)
    end
    error(r, 0)
  end
  error("attempt to index a " .. tv .. " value", 0)
end

local function call(f, v)
  if type(f) ~= "function" then
    local mt = getmetatable(f)
    if not (type(mt) == "table" and mt.__call) then
      error("attempt to call a " .. type(f) .. " value", 0)
    end
  end
  return f(v)
end

-- The descriptor luasocket's select would use for v, or nil to skip v.
local function getfd(v)
  local m = index(v, "getfd")
  if m == nil then return nil end
  local fd = tonumber((call(m, v))) -- numeric strings count, as lua_isnumber
  if fd == nil or fd ~= fd or fd < 0 or fd >= 2147483648 then return nil end -- NaN too
  return floor(fd) -- luasocket's (int) cast truncates
end

local function is_dirty(v)
  local m = index(v, "dirty")
  if m == nil then return false end
  return call(m, v) and true or false
end

-- Per-call work tables, reused between calls. A call takes them out and puts
-- them back when it returns normally: a call that raised, or a nested call
-- (from inside a getfd or dirty method), just works on fresh ones.
local spare

local function new_work()
  return {
    byfd = {},   -- fd -> object (the last one seen with that fd, as luasocket)
    rlist = {},  -- fds to watch for reading, each once
    rin = {},    -- fd -> true while in rlist
    rskip = {},  -- fd -> true: dirty, reported already, not waited for
    wlist = {},
    win = {},
    dirty = {},  -- objects of recvt found dirty, in order
  }
end

local function release(w)
  local byfd, rin, win, rskip = w.byfd, w.rin, w.win, w.rskip
  local rlist, wlist, dirty = w.rlist, w.wlist, w.dirty
  for i = #rlist, 1, -1 do
    local fd = rlist[i]
    byfd[fd], rin[fd], rskip[fd], rlist[i] = nil, nil, nil, nil
  end
  for i = #wlist, 1, -1 do
    local fd = wlist[i]
    byfd[fd], win[fd], wlist[i] = nil, nil, nil
  end
  for i = #dirty, 1, -1 do dirty[i] = nil end
  spare = w
end

local function collect(t, argn, list, set, byfd, dirty, rskip)
  if t == nil then return end
  if type(t) ~= "table" then
    argerror(argn, "table expected, got " .. type(t))
  end
  local i = 1
  while true do
    local v = t[i]
    if v == nil then break end
    local fd = getfd(v)
    if fd then
      if not set[fd] then
        set[fd] = true
        list[#list + 1] = fd
      end
      byfd[fd] = v
      if dirty and is_dirty(v) then
        dirty[#dirty + 1] = v
        rskip[fd] = true
      end
    end
    i = i + 1
  end
end

-- Fills `out` after its `n` first entries with the objects of the ready fds,
-- in ascending fd order; then makes it associative (out[obj] = index).
local function fill(out, n, fds, byfd)
  sort(fds)
  for i = 1, #fds do
    n = n + 1
    out[n] = byfd[fds[i]]
  end
  for i = 1, n do
    out[out[i]] = i + 0.0
  end
  return out
end

--- luasocket's `socket.select`, without the 1024-descriptor limit.
-- @tparam[opt] table recvt objects to watch for reading (array; nil: none)
-- @tparam[opt] table sendt objects to watch for writing (array; nil: none)
-- @tparam[opt] number timeout seconds; nil or negative: wait forever
-- @treturn table the objects of `recvt` ready for reading (`t[i] = obj`, `t[obj] = i`)
-- @treturn table the objects of `sendt` ready for writing, likewise
-- @treturn[opt] string `"timeout"` when nothing got ready in time (and the two
-- tables are empty)
-- @raise on invalid arguments, and `select failed` when the system call fails
-- @usage
-- local r, w, err = compat.socket_select({server}, {client}, 0.5)
-- if err == "timeout" then ... end
-- for _, sock in ipairs(r) do ... end
function M.socket_select(recvt, sendt, timeout)
  local t = -1
  if timeout ~= nil then
    t = tonumber(timeout) -- numbers and numeric strings, as luaL_optnumber
    if t == nil then
      argerror(3, "number expected, got " .. type(timeout))
    end
  end
  local w = spare or new_work()
  spare = nil
  local byfd, dirty, rskip = w.byfd, w.dirty, w.rskip
  collect(recvt, 1, w.rlist, w.rin, byfd, dirty, rskip)
  collect(sendt, 2, w.wlist, w.win, byfd, nil, nil)
  local ndirty = #dirty

  -- the fds to wait for: rlist less the dirty ones
  local rfds = w.rlist
  if ndirty > 0 then
    rfds = {}
    for i = 1, #w.rlist do
      local fd = w.rlist[i]
      if not rskip[fd] then rfds[#rfds + 1] = fd end
    end
    t = 0
  end
  if t ~= t then
    t = 0 -- NaN: luasocket's MAX(NaN, 0.0) makes it a poll
  elseif t < 0 then
    t = nil
  elseif t >= MAX_SECONDS then
    release(w)
    error("select failed", 0)
  end

  local r, wr = native_select(rfds, w.wlist, nil, t)
  if not r then
    if ndirty == 0 then
      release(w)
      error("select failed", 0)
    end
    -- luasocket then reads back the sets the failed call left as they were
    r, wr = {}, {}
    for i = 1, #rfds do r[i] = rfds[i] end
    for i = 1, #w.wlist do wr[i] = w.wlist[i] end
  end

  local rtab, wtab = {}, {}
  for i = 1, ndirty do rtab[i] = dirty[i] end
  if #r == 0 and #wr == 0 and ndirty == 0 then
    release(w)
    return rtab, wtab, "timeout"
  end
  fill(rtab, ndirty, r, byfd)
  fill(wtab, 0, wr, byfd)
  release(w)
  return rtab, wtab
end

--- Makes a luasocket module use `socket_select` as its `select`, for code
-- that calls `socket.select` itself.
-- @tparam table socket the luasocket module (`require "socket"`)
-- @treturn function the function it had before, to put it back
-- @usage local old = compat.install(require "socket")
function M.install(socket)
  local old = socket.select
  socket.select = M.socket_select
  return old
end

return M
