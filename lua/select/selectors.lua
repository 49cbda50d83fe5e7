--- High-level I/O multiplexing: Python's `selectors` module in Lua.
--
-- A selector watches a set of *file objects* (anything that has a file
-- descriptor) and tells which of them are ready for reading or writing.
-- It is built on the `select` module: `SelectSelector` uses `select.select`,
-- `PollSelector` uses `select.poll`, `EpollSelector` uses `select.epoll` and
-- `KqueueSelector` uses `select.kqueue`. `DefaultSelector` is the best of them
-- available here, in Python's order: epoll (Linux), then kqueue (macOS, the
-- BSDs, and the emulation on Linux), then poll, then select.
--
-- A file object is any of:
--
-- * a non-negative integer file descriptor;
-- * a Lua file handle (`io.open`, `io.popen`, `io.stdin`, ...);
-- * a luasocket object, or any table or userdata with a `getfd()` or `fileno()`
--   method returning a descriptor.
--
-- Registering a file object gives a *key*, a plain table
-- `{fileobj = obj, fd = its_descriptor, events = mask, data = any_value}`
-- that `select` hands back with the events that are ready. Keys are snapshots:
-- `modify` returns a new key and leaves the old one as it was. Treat them as
-- read-only.
--
-- Errors follow the `select` module's rule. Programming errors (an invalid file
-- object, registering twice, an unknown file object, events outside
-- `EVENT_READ|EVENT_WRITE`, using a closed selector) raise a Lua error whose
-- value is a plain string such as
-- `bad argument #1 to 'register' (file descriptor expected, got nil)`.
-- Failures of the operating system return `nil, message, errno`.
--
-- A descriptor closed behind the selector's back never makes `select` fail:
-- `SelectSelector` and `PollSelector` report it as ready (with all the events it
-- was registered for, so that the owner's next read or write finds out), while
-- with `EpollSelector` and `KqueueSelector` the kernel drops it from the set, so
-- it is no longer reported. `unregister` works on it either way, even through
-- the closed object (a closed luasocket or Lua file is found again by identity).
--
-- @module select.selectors
-- @usage
-- local selectors = require "select.selectors"
-- local socket = require "socket"
--
-- local sel = selectors.DefaultSelector()
-- local server = assert(socket.bind("127.0.0.1", 0))
-- server:settimeout(0)
-- sel:register(server, selectors.EVENT_READ, "accept")
-- while true do
--   for _, ready in ipairs(sel:select(1)) do
--     local key, events = ready[1], ready[2]
--     if key.data == "accept" then
--       local client = server:accept()
--       client:settimeout(0)
--       sel:register(client, selectors.EVENT_READ, "client")
--     else
--       local line, err = key.fileobj:receive()
--       if err == "closed" then
--         sel:unregister(key.fileobj)
--         key.fileobj:close()
--       end
--     end
--   end
-- end

local native = require "select"

local type, tostring, error, pcall, rawequal = type, tostring, error, pcall, rawequal
local next, setmetatable, getmetatable = next, setmetatable, getmetatable
local floor, ceil = math.floor, math.ceil
local format = string.format

local native_select = native.select
local native_fileno = native.fileno
local native_poll = native.poll
local native_epoll = native.epoll
local native_kqueue = native.kqueue
local native_kevent = native.kevent

local M = {}

--- Event mask bit: the file object is ready for reading (1).
M.EVENT_READ = 1

--- Event mask bit: the file object is ready for writing (2).
M.EVENT_WRITE = 2

local EVENT_READ, EVENT_WRITE = 1, 2
local EBADF = 9
local CLOSED = "I/O operation on closed selector"

local POLLIN, POLLOUT = native.POLLIN, native.POLLOUT
local KQ_FILTER_READ, KQ_FILTER_WRITE = native.KQ_FILTER_READ, native.KQ_FILTER_WRITE
local KQ_EV_ADD, KQ_EV_DELETE = native.KQ_EV_ADD, native.KQ_EV_DELETE

-- BAND[a * 4 + b] == a & b for 0 <= a, b <= 3 (Lua 5.1 has no bit operators).
local BAND = {}
for a = 0, 3 do
  for b = 0, 3 do
    local r = 0
    if a % 2 == 1 and b % 2 == 1 then r = r + 1 end
    if a >= 2 and b >= 2 then r = r + 2 end
    BAND[a * 4 + b] = r
  end
end

-- Whether bit `bit` (a power of two) is set in `mask`.
local function has_bit(mask, bit)
  return floor(mask / bit) % 2 == 1
end

-- poll/epoll revents -> EVENT_* (as Python: anything but POLLIN counts as
-- writable, anything but POLLOUT as readable, so errors and hang-ups wake both
-- sides up). The two constants are the same for poll and epoll (1 and 4).
-- Memoised per revents value: one table lookup on the hot path.
local REVENTS = setmetatable({}, {
  __index = function(t, revents)
    local ev = 0
    local without_in = revents - (has_bit(revents, POLLIN) and POLLIN or 0)
    local without_out = revents - (has_bit(revents, POLLOUT) and POLLOUT or 0)
    if without_out ~= 0 then ev = ev + EVENT_READ end
    if without_in ~= 0 then ev = ev + EVENT_WRITE end
    t[revents] = ev
    return ev
  end,
})

local function raise(fname, argn, msg)
  error(format("bad argument #%d to '%s' (%s)", argn, fname, msg), 0)
end

-- File objects -> descriptors. ================================

--- Converts a file object to its file descriptor, as the selectors do: with
-- `select.fileno`, the native module's own conversion.
-- @param fileobj an integer, a Lua file handle, or an object with a `getfd()`
-- or `fileno()` method
-- @treturn[1] integer the descriptor
-- @treturn[2] nil when `fileobj` is not (or no longer) a valid descriptor, or
-- its `getfd`/`fileno` method raised an error
-- @treturn[2] string why not, e.g. `bad argument #1 to 'fileobj_to_fd' (file
-- descriptor cannot be a negative integer (-1))` (or the method's error value)
-- @usage local fd = selectors.fileobj_to_fd(io.stdin)  --> 0
function M.fileobj_to_fd(fileobj)
  local ok, fd = pcall(native_fileno, fileobj, "fileobj_to_fd")
  if ok then return fd end
  return nil, fd
end

-- Keys. =======================================================

local KEY_MT = {
  __tostring = function(k)
    return format("SelectorKey<fileobj=%s, fd=%d, events=%d, data=%s>",
      tostring(k.fileobj), k.fd, k.events, tostring(k.data))
  end,
}

local function new_key(fileobj, fd, events, data)
  return setmetatable({ fileobj = fileobj, fd = fd, events = events, data = data }, KEY_MT)
end

-- The read-only map view (get_map). ===========================

-- On 5.1 and LuaJIT `__len` only works for userdata: the view is a newproxy
-- there, a table elsewhere.
local newproxy = newproxy -- luacheck: ignore 113 (5.1/LuaJIT only)

local function new_view(sel)
  local fd_to_key = sel._fd_to_key
  local function iter(_, fd)
    return next(fd_to_key, fd)
  end
  local methods = {}
  function methods.get(_, fileobj, default)
    local key = sel:_lookup_key(fileobj)
    if key == nil then return default end
    return key
  end
  function methods.len()
    return sel._count
  end
  function methods.iter(view)
    return iter, view, nil
  end
  function methods.contains(_, fileobj)
    return sel:_lookup_key(fileobj) ~= nil
  end
  local mt = {
    __index = function(_, k)
      local m = methods[k]
      if m ~= nil then return m end
      return sel:_lookup_key(k)
    end,
    __newindex = function()
      error("selector map is read-only", 2)
    end,
    __len = function()
      return sel._count
    end,
    __pairs = function(view)
      return iter, view, nil
    end,
    __tostring = function()
      return "selector map: " .. sel._id
    end,
    __metatable = false,
  }
  if newproxy then
    local view = newproxy(true)
    local vmt = getmetatable(view)
    for k, v in next, mt do vmt[k] = v end
    return view
  end
  return setmetatable({}, mt)
end

-- The shared part of every selector. ==========================

--- A selector object (all classes have these methods).
-- @type Selector
local Selector = {}

local function check_events(events, fname)
  if events ~= 1 and events ~= 2 and events ~= 3 then
    local got = type(events) == "number" and tostring(events) or type(events)
    raise(fname, 2, "events must be EVENT_READ, EVENT_WRITE or both, got " .. got)
  end
end

-- fd of fileobj, falling back on an identity search among the registered
-- objects (a closed luasocket or Lua file is still found). If neither finds
-- it, raises what `select.fileno` raised, worded for method `fname`.
function Selector:_lookup(fileobj, fname)
  local ok, fd = pcall(native_fileno, fileobj, fname)
  if ok then return fd end
  for kfd, key in next, self._fd_to_key do
    if rawequal(key.fileobj, fileobj) then return kfd end
  end
  error(fd, 0)
end

-- key of fileobj, or nil (never raises for a bad fileobj).
function Selector:_lookup_key(fileobj)
  local ok, fd = pcall(self._lookup, self, fileobj, "get_key")
  if ok then return self._fd_to_key[fd] end
  return nil
end

-- A method called on something that is no selector (s.select("x") instead of
-- s:select()) raises at once, as Python's TypeError does, instead of acting on nil.
local function check_self(self, fname)
  if type(self) ~= "table" or self._fd_to_key == nil then
    error(("calling '%s' on bad self (selector expected, got %s)"):format(fname, type(self)), 3)
  end
end

local function check_open(self)
  check_self(self, "method")
  if self._closed then error(CLOSED, 0) end
end

local function registered_key(self, fileobj, fname)
  check_open(self)
  local fd = self:_lookup(fileobj, fname)
  local key = self._fd_to_key[fd]
  if not key then raise(fname, 1, format("%s is not registered", tostring(fileobj))) end
  return key
end

local function forget(self, key)
  self._fd_to_key[key.fd] = nil
  self._count = self._count - 1
end

--- Starts watching a file object.
-- @param fileobj the file object (see the module description)
-- @tparam integer events `EVENT_READ`, `EVENT_WRITE` or `EVENT_READ + EVENT_WRITE`
-- @param[opt] data any value, handed back in the key
-- @treturn[1] table the new key `{fileobj=, fd=, events=, data=}`
-- @return[2] nil when the operating system refuses the descriptor (e.g. epoll
-- and a regular file, kqueue and a closed descriptor)
-- @treturn[2] string the error message
-- @treturn[2] integer errno
-- @raise if `fileobj` is not a file object, is already registered (or its
-- descriptor is), `events` is invalid or the selector is closed
-- @usage local key = sel:register(sock, selectors.EVENT_READ, handler)
function Selector:register(fileobj, events, data)
  check_open(self)
  check_events(events, "register")
  local fd = self:_lookup(fileobj, "register")
  if self._fd_to_key[fd] then
    raise("register", 1, format("%s (fd %d) is already registered", tostring(fileobj), fd))
  end
  local ok, err, errno = self:_add(fd, events)
  if not ok then return nil, err, errno end
  local key = new_key(fileobj, fd, events, data)
  self._fd_to_key[fd] = key
  self._count = self._count + 1
  return key
end

--- Stops watching a file object. Works after the object was closed.
-- @param fileobj a registered file object
-- @treturn table its key
-- @raise if `fileobj` is not registered or the selector is closed
-- @usage sel:unregister(sock); sock:close()
function Selector:unregister(fileobj)
  local key = registered_key(self, fileobj, "unregister")
  forget(self, key)
  self:_del(key.fd, key.events)
  return key
end

--- Changes the events watched for a file object, or its data, or both.
-- Changing only the data touches no system state.
-- @param fileobj a registered file object
-- @tparam integer events the new event mask
-- @param[opt] data the new data (as with `register`, omitting it sets it to nil)
-- @treturn[1] table the key: a new one if anything changed, else the same one
-- @return[2] nil when the operating system refuses the change; the file object
-- is then unregistered (as in Python)
-- @treturn[2] string the error message
-- @treturn[2] integer errno
-- @raise if `fileobj` is not registered, `events` is invalid or the selector
-- is closed
-- @usage sel:modify(sock, selectors.EVENT_READ + selectors.EVENT_WRITE, handler)
function Selector:modify(fileobj, events, data)
  check_open(self)
  check_events(events, "modify")
  local key = registered_key(self, fileobj, "modify")
  local old = key.events
  if events ~= old then
    local ok, err, errno = self:_mod(key.fd, old, events)
    if not ok then
      forget(self, key)
      self:_del(key.fd, old)
      return nil, err, errno
    end
  elseif rawequal(data, key.data) then
    return key
  end
  key = new_key(key.fileobj, key.fd, events, data)
  self._fd_to_key[key.fd] = key
  return key
end

--- Waits until some registered file objects are ready, or the timeout expires.
-- @function Selector:select
-- @tparam[opt] number timeout seconds (fractions allowed); nil waits until
-- something is ready; 0 or negative only polls
-- @treturn[1] {{table,integer},...} an array of `{key, events}` pairs, one per
-- ready file object, `events` being the ready subset of `key.events`; empty on
-- timeout
-- @return[2] nil on an operating system failure
-- @treturn[2] string the error message
-- @treturn[2] integer errno
-- @raise if the selector is closed or `timeout` is not a number
-- @usage
-- for _, ready in ipairs(sel:select(0.5)) do
--   local key, events = ready[1], ready[2]
--   if events % 2 == 1 then on_readable(key) end
--   if events >= 2 then on_writable(key) end
-- end

--- The epoll or kqueue descriptor (`EpollSelector` and `KqueueSelector` only;
-- the other classes have no `fileno`, as in Python).
-- @function Selector:fileno
-- @treturn integer the descriptor
-- @raise if the selector is closed

--- The key of a registered file object.
-- @param fileobj a registered file object
-- @treturn table its key
-- @raise if `fileobj` is not registered or the selector is closed
function Selector:get_key(fileobj)
  return registered_key(self, fileobj, "get_key")
end

--- A read-only live view of the registered file objects.
--
-- `map[fileobj]` is the key of `fileobj` or nil; `#map` (Lua 5.2+ and, as a
-- userdata, 5.1/LuaJIT) and `map:len()` the number of registered file objects;
-- `pairs(map)` (5.2+) and `map:iter()` (all versions) iterate `fd, key`;
-- `map:get(fileobj [, default])` and `map:contains(fileobj)` look up. Assigning
-- to it raises an error. After `close` the view is empty.
-- @return the view, or nil once the selector is closed (as Python's `None`)
-- @usage
-- local map = sel:get_map()
-- print(#map, map[sock] and map[sock].data)
-- for fd, key in map:iter() do print(fd, key.fileobj) end
function Selector:get_map()
  if self._closed then return nil end
  return self._map
end

--- Closes the selector: forgets every registration and frees the system
-- object (epoll or kqueue descriptor). Idempotent. Every other method except
-- `get_map` then raises `I/O operation on closed selector`.
-- In Lua 5.4 `local sel <close> = selectors.DefaultSelector()` closes it at
-- scope exit.
function Selector:close()
  if self._closed then return end
  self._closed = true
  local fd_to_key = self._fd_to_key
  for fd in next, fd_to_key do fd_to_key[fd] = nil end
  self._count = 0
  self:_close()
end

-- Hooks, overridden per class: apply the change to the system object and
-- return true or nil, msg, errno.
function Selector._add() return true end
function Selector._mod() return true end
function Selector._del() end
function Selector._close() end

-- Classes. ====================================================

local function class(name, init)
  local C = {}
  for k, v in next, Selector do C[k] = v end
  C.__index = C
  C.__name = "selectors." .. name
  C.__tostring = function(self)
    return C.__name .. ": " .. self._id
  end
  C.__close = function(self) self:close() end
  return setmetatable(C, {
    __call = function(_, ...)
      local self = {
        _fd_to_key = {},
        _count = 0,
        _closed = false,
        _scratch = {},
      }
      self._id = tostring(self):match("0x%x+") or tostring(self)
      self._map = new_view(self)
      setmetatable(self, C)
      local ok, err, errno = init(self, ...)
      if not ok then return nil, err, errno end
      return self
    end,
    __tostring = function() return "selectors." .. name end,
  })
end

local function check_timeout(timeout)
  if type(timeout) ~= "number" then
    raise("select", 1, "number or nil expected, got " .. type(timeout))
  end
  raise("select", 1, "timeout must be a number, got NaN")
end

-- Rewrites in place an array of native {fd, revents} pairs into {key, events}.
local function pairs_to_keys(res, fd_to_key)
  local len, n = #res, 0
  for i = 1, len do
    local pair = res[i]
    local key = fd_to_key[pair[1]]
    if key then
      local ev = BAND[REVENTS[pair[2]] * 4 + key.events]
      if ev ~= 0 then
        n = n + 1
        pair[1] = key
        pair[2] = ev
        res[n] = pair
      end
    end
  end
  for i = len, n + 1, -1 do res[i] = nil end
  return res
end

--- The selector classes. Calling one creates a selector; each class is also
-- the metatable of its selectors (`getmetatable(sel) == selectors.PollSelector`).
-- All have the methods of `Selector`.
-- @section classes

--- Creates a selector on `select.select`. It has no limit on descriptor
-- numbers (the native `select` has none); each call costs in proportion to
-- the number of registered objects.
-- @function SelectSelector
-- @return a `Selector`
-- @usage local sel = selectors.SelectSelector()
local SelectSelector = class("SelectSelector", function(self)
  self._readers, self._rpos = {}, {}
  self._writers, self._wpos = {}, {}
  return true
end)

local function set_add(arr, pos, fd)
  local n = #arr + 1
  arr[n] = fd
  pos[fd] = n
end

local function set_del(arr, pos, fd)
  local i = pos[fd]
  if not i then return end
  local n = #arr
  local last = arr[n]
  arr[i] = last
  pos[last] = i
  arr[n] = nil
  pos[fd] = nil
end

function SelectSelector:_add(fd, events)
  if events % 2 == 1 then set_add(self._readers, self._rpos, fd) end
  if events >= 2 then set_add(self._writers, self._wpos, fd) end
  return true
end

function SelectSelector:_del(fd)
  set_del(self._readers, self._rpos, fd)
  set_del(self._writers, self._wpos, fd)
end

function SelectSelector:_mod(fd, _, events)
  self:_del(fd)
  return self:_add(fd, events)
end

-- select() reported EBADF: some registered descriptor was closed behind our
-- back. Those are reported ready with all their events, with whatever the
-- others have ready right now.
local function select_with_bad_fds(self)
  local ready, n = {}, 0
  local rd, wr = {}, {}
  local probe = {}
  for fd, key in next, self._fd_to_key do
    probe[1] = fd
    if native_select(probe, nil, nil, 0) == nil then
      n = n + 1
      ready[n] = { key, key.events }
    else
      if key.events % 2 == 1 then rd[#rd + 1] = fd end
      if key.events >= 2 then wr[#wr + 1] = fd end
    end
  end
  local r, w, msg = native_select(rd, wr, nil, 0)
  if not r then return nil, w, msg end
  local fd_to_key, seen = self._fd_to_key, {}
  for i = 1, #r do
    local e = { fd_to_key[r[i]], EVENT_READ }
    n = n + 1
    ready[n] = e
    seen[r[i]] = e
  end
  for i = 1, #w do
    local e = seen[w[i]]
    if e then
      e[2] = EVENT_READ + EVENT_WRITE
    else
      n = n + 1
      ready[n] = { fd_to_key[w[i]], EVENT_WRITE }
    end
  end
  return ready
end

function SelectSelector:select(timeout)
  check_self(self, "select")
  if self._closed then error(CLOSED, 0) end
  if timeout ~= nil then
    if timeout ~= timeout or type(timeout) ~= "number" then check_timeout(timeout) end
    if timeout < 0 then timeout = 0 end
  end
  local r, w, errno = native_select(self._readers, self._writers, nil, timeout)
  if not r then
    if errno == EBADF then return select_with_bad_fds(self) end
    return nil, w, errno
  end
  local fd_to_key, seen = self._fd_to_key, self._scratch
  -- r (a fresh table from the native call) becomes the result.
  local nr = #r
  for i = 1, nr do
    local fd = r[i]
    local e = { fd_to_key[fd], EVENT_READ }
    r[i] = e
    seen[fd] = e
  end
  local n = nr
  for i = 1, #w do
    local fd = w[i]
    local e = seen[fd]
    if e then
      e[2] = EVENT_READ + EVENT_WRITE
    else
      n = n + 1
      r[n] = { fd_to_key[fd], EVENT_WRITE }
    end
  end
  for i = 1, nr do seen[r[i][1].fd] = nil end
  return r
end

--- Creates a selector on `select.poll`.
-- @function PollSelector
-- @return a `Selector`
-- @usage local sel = selectors.PollSelector()
local PollSelector = class("PollSelector", function(self)
  self._poller = native_poll()
  return true
end)

local POLL_MASK = { POLLIN, POLLOUT, POLLIN + POLLOUT }

function PollSelector:_add(fd, events)
  self._poller:register(fd, POLL_MASK[events])
  return true
end

function PollSelector:_mod(fd, _, events)
  return self._poller:modify(fd, POLL_MASK[events])
end

function PollSelector:_del(fd)
  pcall(self._poller.unregister, self._poller, fd)
end

function PollSelector:_close()
  self._poller = nil
end

function PollSelector:select(timeout)
  check_self(self, "select")
  local p = self._poller
  if not p then error(CLOSED, 0) end
  if timeout ~= nil then
    if timeout ~= timeout or type(timeout) ~= "number" then check_timeout(timeout) end
    if timeout <= 0 then timeout = 0 else timeout = ceil(timeout * 1000) end
  end
  local res, msg, errno = p:poll(timeout)
  if not res then return nil, msg, errno end
  return pairs_to_keys(res, self._fd_to_key)
end

if native_epoll then
  --- Creates a selector on `select.epoll` (Linux).
  -- @function EpollSelector
  -- @treturn[1] Selector the selector
  -- @return[2] nil if no epoll descriptor could be created
  -- @treturn[2] string the error message
  -- @treturn[2] integer errno
  -- @usage local sel = selectors.EpollSelector()
  local EpollSelector = class("EpollSelector", function(self)
    local ep, msg, errno = native_epoll()
    if not ep then return nil, msg, errno end
    self._poller = ep
    return true
  end)

  function EpollSelector:_add(fd, events)
    return self._poller:register(fd, POLL_MASK[events]) -- EPOLLIN/OUT == POLLIN/OUT
  end

  function EpollSelector:_mod(fd, _, events)
    return self._poller:modify(fd, POLL_MASK[events])
  end

  function EpollSelector:_del(fd)
    self._poller:unregister(fd) -- fails harmlessly if the fd was closed
  end

  function EpollSelector:_close()
    self._poller:close()
    self._poller = nil
  end

  function EpollSelector:fileno()
    check_open(self)
    return self._poller:fileno()
  end

  function EpollSelector:select(timeout)
    check_self(self, "select")
    local ep = self._poller
    if not ep then error(CLOSED, 0) end
    if timeout ~= nil then
      if timeout ~= timeout or type(timeout) ~= "number" then check_timeout(timeout) end
      if timeout < 0 then timeout = 0 end
    end
    local res, msg, errno = ep:poll(timeout)
    if not res then return nil, msg, errno end
    return pairs_to_keys(res, self._fd_to_key)
  end

  M.EpollSelector = EpollSelector
end

if native_kqueue and native_kevent then
  --- Creates a selector on `select.kqueue` (BSD; emulated on Linux).
  -- @function KqueueSelector
  -- @treturn[1] Selector the selector
  -- @return[2] nil if no kqueue could be created
  -- @treturn[2] string the error message
  -- @treturn[2] integer errno
  -- @usage local sel = selectors.KqueueSelector()
  local KqueueSelector = class("KqueueSelector", function(self)
    local kq, msg, errno = native_kqueue()
    if not kq then return nil, msg, errno end
    self._poller = kq
    self._nfilters = 0
    return true
  end)

  local BITS = { 1, 1, 2 } -- filters per event mask

  -- Deletes the filters of `events`, one call each (a failing change stops the
  -- changes after it), ignoring failures (the fd may be closed already).
  local function kq_delete(kq, fd, events)
    if events % 2 == 1 then
      kq:control({ native_kevent(fd, KQ_FILTER_READ, KQ_EV_DELETE) }, 0, 0)
    end
    if events >= 2 then
      kq:control({ native_kevent(fd, KQ_FILTER_WRITE, KQ_EV_DELETE) }, 0, 0)
    end
  end

  -- Adds the filters of `events`; on failure none of them is left behind.
  local function kq_add(kq, fd, events)
    local changes = {}
    if events % 2 == 1 then changes[1] = native_kevent(fd, KQ_FILTER_READ, KQ_EV_ADD) end
    if events >= 2 then changes[#changes + 1] = native_kevent(fd, KQ_FILTER_WRITE, KQ_EV_ADD) end
    local ok, msg, errno = kq:control(changes, 0, 0)
    if not ok then
      kq_delete(kq, fd, events) -- which change failed is unknown: undo both
      return nil, msg, errno
    end
    return true
  end

  function KqueueSelector:_add(fd, events)
    local ok, msg, errno = kq_add(self._poller, fd, events)
    if not ok then return nil, msg, errno end
    self._nfilters = self._nfilters + BITS[events]
    return true
  end

  function KqueueSelector:_mod(fd, old, new)
    local kq = self._poller
    local drop = BAND[old * 4 + (3 - new)] -- old & ~new
    local add = BAND[new * 4 + (3 - old)]  -- new & ~old
    if drop ~= 0 then kq_delete(kq, fd, drop) end
    if add ~= 0 then
      local ok, msg, errno = kq_add(kq, fd, add)
      if not ok then return nil, msg, errno end -- the caller then calls _del(fd, old)
    end
    self._nfilters = self._nfilters + BITS[new] - BITS[old]
    return true
  end

  function KqueueSelector:_del(fd, events)
    kq_delete(self._poller, fd, events)
    self._nfilters = self._nfilters - BITS[events]
  end

  function KqueueSelector:_close()
    self._poller:close()
    self._poller = nil
    self._nfilters = 0
  end

  KqueueSelector.fileno = function(self)
    check_open(self)
    return self._poller:fileno()
  end

  function KqueueSelector:select(timeout)
    check_self(self, "select")
    local kq = self._poller
    if not kq then error(CLOSED, 0) end
    if timeout ~= nil then
      if timeout ~= timeout or type(timeout) ~= "number" then check_timeout(timeout) end
      if timeout < 0 then timeout = 0 end
    end
    local nf = self._nfilters
    local kevs, msg, errno = kq:control(nil, nf > 0 and nf or 1, timeout)
    if not kevs then return nil, msg, errno end
    local fd_to_key, seen = self._fd_to_key, self._scratch
    local len, n = #kevs, 0
    -- kevs (a fresh table from the native call) becomes the result
    for i = 1, len do
      local kev = kevs[i]
      local fd = kev.ident
      local key = fd_to_key[fd]
      if key then
        local filter = kev.filter
        local ev = filter == KQ_FILTER_READ and EVENT_READ or (filter == KQ_FILTER_WRITE and EVENT_WRITE or 0)
        ev = BAND[ev * 4 + key.events]
        if ev ~= 0 then
          local e = seen[fd]
          if e then
            e[2] = BAND[e[2] * 4 + 3 - ev] + ev -- e[2] | ev
          else
            n = n + 1
            e = { key, ev }
            kevs[n] = e
            seen[fd] = e
          end
        end
      end
    end
    for i = len, n + 1, -1 do kevs[i] = nil end
    for i = 1, n do seen[kevs[i][1].fd] = nil end
    return kevs
  end

  M.KqueueSelector = KqueueSelector
end

--- The class selectors use on this system: the best available of
-- `EpollSelector`, `KqueueSelector`, `PollSelector`, `SelectSelector`.
-- @function DefaultSelector
-- @return a `Selector`
-- @usage local sel = selectors.DefaultSelector()
M.DefaultSelector = M.EpollSelector or M.KqueueSelector or PollSelector or SelectSelector

M.SelectSelector = SelectSelector
M.PollSelector = PollSelector

return M
