-- tail.lua: follows a file like `tail -f`, with select.kqueue.
--
--   lua tail.lua [-n LINES] [--for SECONDS] FILE
--
-- Prints the last LINES lines (default 10), then whatever is appended, until
-- the file is deleted, Ctrl-C (SIGINT) or SIGTERM comes, or SECONDS pass.
-- Like `tail -f` it follows the open file, through renames too; a file
-- truncated under it is read again from the start.
--
-- What the kqueue watches:
--   VNODE  the file: NOTE_WRITE/EXTEND (data came), NOTE_ATTRIB (maybe
--          truncated), NOTE_DELETE (gone: stop), NOTE_RENAME (just say so);
--   READ   the file, with EV_DISPATCH: a regular file is always readable and
--          the event's data is the number of bytes from our offset to the
--          end, so it is enabled again only when VNODE says data came;
--   SIGNAL SIGINT and SIGTERM: counted by the queue instead of killing us,
--          so the loop can end cleanly;
--   TIMER  the --for limit, once.
local sel = require "select"

local SIGINT, SIGTERM = 2, 15 -- the same on Linux and the BSDs
local SIGNAL_NAMES = { [SIGINT] = "SIGINT", [SIGTERM] = "SIGTERM" }
local CHUNK = 65536

local function bits(...)
  local n = 0
  for i = 1, select("#", ...) do
    n = n + (select(i, ...))
  end
  return n
end

local function has(flags, bit)
  return flags % (2 * bit) >= bit
end

local function die(msg, code)
  io.stderr:write("tail.lua: ", msg, "\n")
  os.exit(code or 1)
end

local function usage()
  die("usage: tail.lua [-n LINES] [--for SECONDS] FILE", 2)
end

-- Arguments.
local path, lines, seconds
do
  local i = 1
  while i <= #arg do
    local a = arg[i]
    if a == "-n" or a == "--for" then
      local v = tonumber(arg[i + 1])
      if not v or v < 0 then
        usage()
      end
      if a == "-n" then
        lines = math.floor(v)
      else
        seconds = v
      end
      i = i + 2
    elseif path == nil and a:sub(1, 1) ~= "-" then
      path = a
      i = i + 1
    else
      usage()
    end
  end
end
if not path then
  usage()
end
lines = lines or 10

local file, err = io.open(path, "rb")
if not file then
  die(err)
end
-- No read-ahead: the READ filter measures from the descriptor's offset.
file:setvbuf("no")

--- Puts the file offset at the start of the last `n` lines.
local function seek_last_lines(f, n)
  local size = f:seek("end")
  local pos, found = size, 0
  while n > 0 and pos > 0 do
    local len = math.min(4096, pos)
    pos = pos - len
    f:seek("set", pos)
    local chunk = f:read(len)
    for i = len, 1, -1 do
      -- A newline ends a line; the one ending the file starts none.
      if chunk:byte(i) == 10 and pos + i < size then
        found = found + 1
        if found == n then
          f:seek("set", pos + i)
          return
        end
      end
    end
  end
  f:seek("set", n > 0 and 0 or size)
end

--- Copies `n` bytes (known to be there) from the file to stdout.
local function copy(n)
  while n > 0 do
    local data = file:read(math.min(n, CHUNK))
    if not data then
      break -- truncated meanwhile: the ATTRIB note will tell
    end
    io.stdout:write(data)
    n = n - #data
  end
  io.stdout:flush()
  file:seek("cur", 0) -- clears a sticky end-of-file indicator, if any
end

local kq = assert(sel.kqueue())
local READ, VNODE, SIGNAL, TIMER = sel.KQ_FILTER_READ, sel.KQ_FILTER_VNODE, sel.KQ_FILTER_SIGNAL, sel.KQ_FILTER_TIMER
local ADD, ENABLE, CLEAR = sel.KQ_EV_ADD, sel.KQ_EV_ENABLE, sel.KQ_EV_CLEAR
local DISPATCH, ONESHOT, ERROR = sel.KQ_EV_DISPATCH, sel.KQ_EV_ONESHOT, sel.KQ_EV_ERROR
local NOTE_DELETE, NOTE_WRITE, NOTE_EXTEND = sel.KQ_NOTE_DELETE, sel.KQ_NOTE_WRITE, sel.KQ_NOTE_EXTEND
local NOTE_ATTRIB, NOTE_RENAME = sel.KQ_NOTE_ATTRIB, sel.KQ_NOTE_RENAME

seek_last_lines(file, lines)

-- The vnode watch goes in before the first READ event measures the file, so
-- nothing appended in between is missed.
local changes = {
  sel.kevent(file, VNODE, bits(ADD, CLEAR), bits(NOTE_WRITE, NOTE_EXTEND, NOTE_ATTRIB, NOTE_DELETE, NOTE_RENAME)),
  sel.kevent(file, READ, bits(ADD, DISPATCH)),
  sel.kevent(SIGINT, SIGNAL, ADD),
  sel.kevent(SIGTERM, SIGNAL, ADD),
}
if seconds then
  -- Milliseconds (the default unit), once.
  changes[#changes + 1] = sel.kevent(1, TIMER, bits(ADD, ONESHOT), 0, math.floor(seconds * 1000))
end

local reason
while not reason do
  local events, msg = kq:control(changes, 8)
  if not events then
    die("kevent: " .. msg)
  end
  changes = {}
  local more = false
  for _, ev in ipairs(events) do
    if has(ev.flags, ERROR) then
      die(string.format("cannot watch (filter %d): errno %d", ev.filter, ev.data))
    elseif ev.filter == READ then
      copy(ev.data)
    elseif ev.filter == VNODE then
      local notes = ev.fflags
      if has(notes, NOTE_ATTRIB) then
        local pos = file:seek("cur")
        if file:seek("end") < pos then
          io.stderr:write("tail.lua: ", path, ": file truncated\n")
          file:seek("set", 0)
        else
          file:seek("set", pos)
        end
        more = true
      end
      if has(notes, NOTE_WRITE) or has(notes, NOTE_EXTEND) then
        more = true
      end
      if has(notes, NOTE_RENAME) then
        io.stderr:write("tail.lua: ", path, ": file renamed (still following it)\n")
      end
      if has(notes, NOTE_DELETE) then
        reason = "file deleted"
      end
    elseif ev.filter == SIGNAL then
      reason = "interrupted by " .. SIGNAL_NAMES[ev.ident]
    elseif ev.filter == TIMER then
      reason = "done after " .. seconds .. " s"
    end
  end
  if more then
    -- Measure again: the READ event comes in the next call.
    changes[1] = sel.kevent(file, READ, ENABLE)
  end
end

-- What was written just before the end is still shown.
local rest = file:read("*a")
if rest and #rest > 0 then
  io.stdout:write(rest)
end
io.stdout:flush()
io.stderr:write("tail.lua: ", path, ": ", reason, "\n")
kq:close()
file:close()
os.exit(0)
