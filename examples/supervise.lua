-- supervise.lua: runs a command, passes its output through, forwards SIGINT
-- and SIGTERM to it, and reports how it ended, with select.kqueue.
--
--   lua supervise.lua CMD [ARG...]
--
-- Exits with the command's exit code, or 128 + N when signal N killed it.
--
-- What the kqueue watches:
--   PROC   the command's pid, NOTE_EXIT: the event's data is its exit status
--          as waitpid encodes it; the child is not reaped by the kqueue, so
--          closing the popen handle afterwards still collects it;
--   READ   the pipe the command writes its output to;
--   SIGNAL SIGINT and SIGTERM: counted by the queue instead of acting on us,
--          then sent on to the command with `kill`.
-- Plain Lua starts the command with io.popen: its shell prints its own pid,
-- then `exec`s the command in the same process (our child). The command is
-- started before the signals are watched: a watched signal is blocked in
-- this process, and a blocked mask is inherited by children.
-- (From a terminal, Ctrl-C reaches the whole foreground process group, so
-- the command then gets SIGINT twice: once from the terminal, once from us.)
local sel = require "select"

local SIGINT, SIGTERM = 2, 15 -- the same on Linux and the BSDs
local SIGNAL_NAMES = {
  [1] = "SIGHUP", [2] = "SIGINT", [3] = "SIGQUIT", [6] = "SIGABRT", [9] = "SIGKILL",
  [13] = "SIGPIPE", [14] = "SIGALRM", [15] = "SIGTERM",
}
local CHUNK = 65536

local function has(flags, bit)
  return flags % (2 * bit) >= bit
end

local function say(...)
  io.stderr:write("supervise: ", ...)
  io.stderr:write("\n")
end

if #arg == 0 then
  say("usage: supervise.lua CMD [ARG...]")
  os.exit(2)
end

local function quote(s)
  return "'" .. s:gsub("'", [['\'']]) .. "'"
end
local words = {}
for i = 1, #arg do
  words[i] = quote(arg[i])
end

local child = assert(io.popen("echo $$; exec " .. table.concat(words, " ")))
-- Unbuffered: reading the pid line must not swallow the command's output
-- (the READ filter sees only what is still in the pipe).
child:setvbuf("no")
local pid = tonumber(child:read("*l"))
if not pid then
  say("could not start ", table.concat(words, " "))
  os.exit(1)
end

--- "exit status 3", "killed by signal 15 (SIGTERM)"; and the exit code to
--- pass on.
local function describe_status(status)
  local sig = status % 128
  if sig == 0 then
    local code = math.floor(status / 256) % 256
    return "exit status " .. code, code
  end
  local core = status % 256 >= 128 and ", core dumped" or ""
  return string.format("killed by signal %d (%s%s)", sig, SIGNAL_NAMES[sig] or "?", core), 128 + sig
end

local kq = assert(sel.kqueue())
local READ, PROC, SIGNAL = sel.KQ_FILTER_READ, sel.KQ_FILTER_PROC, sel.KQ_FILTER_SIGNAL
local ADD, DELETE, EOF, ERROR = sel.KQ_EV_ADD, sel.KQ_EV_DELETE, sel.KQ_EV_EOF, sel.KQ_EV_ERROR

local changes = {
  sel.kevent(pid, PROC, ADD, sel.KQ_NOTE_EXIT),
  sel.kevent(child, READ, ADD),
  sel.kevent(SIGINT, SIGNAL, ADD),
  sel.kevent(SIGTERM, SIGNAL, ADD),
}

local reading = true
--- Passes on `n` bytes the pipe has (`eof`: the writers are gone).
local function relay(n, eof)
  while n > 0 do
    local data = child:read(math.min(n, CHUNK))
    if not data then
      break
    end
    io.stdout:write(data)
    n = n - #data
  end
  io.stdout:flush()
  if eof and n <= 0 and reading then
    reading = false
    assert(kq:control({ sel.kevent(child, READ, DELETE) }, 0))
  end
end

local status
while not status do
  local events, msg = kq:control(changes, 8)
  if not events then
    say("kevent: ", msg)
    os.exit(1)
  end
  changes = nil
  for _, ev in ipairs(events) do
    if has(ev.flags, ERROR) then
      say(string.format("cannot watch (filter %d, ident %d): errno %d", ev.filter, ev.ident, ev.data))
      os.exit(1)
    elseif ev.filter == READ then
      relay(ev.data, has(ev.flags, EOF) and ev.data == 0)
    elseif ev.filter == SIGNAL then
      say("forwarding ", SIGNAL_NAMES[ev.ident], " to pid ", pid)
      os.execute(string.format("kill -%d %d", ev.ident, pid))
    elseif ev.filter == PROC then
      status = ev.data
    end
  end
end

-- The output the command wrote before it ended is in the pipe already; a
-- process it left behind may keep the pipe open, so take only what is there.
while reading do
  local events = assert(kq:control(nil, 8, 0))
  local got = false
  for _, ev in ipairs(events) do
    if ev.filter == READ then
      got = ev.data > 0
      relay(ev.data, has(ev.flags, EOF) and ev.data == 0)
    end
  end
  if not got then
    break
  end
end

local text, code = describe_status(status)
say("pid ", pid, " ", text)
kq:close()
child:close() -- reaps it: the kqueue did not
os.exit(code)
