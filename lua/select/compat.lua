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
-- It is native code (`src/lua/compat.rs`), cheaper per entry than luasocket's
-- own: `getfd` is called once per entry (luasocket calls it twice for each
-- entry of `recvt`), and the `getfd` and `dirty` methods are looked up once
-- per metatable in a call rather than once per entry.
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

local M = {}

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
-- @function socket_select
M.socket_select = require("select")._compat_socket_select

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
