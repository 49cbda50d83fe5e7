-- A line-based chat server for luasocket clients, on select.selectors.
--
-- Every client first sends its name on a line, then chat lines; the server
-- relays each line to every other client as "name: text", and announces who
-- joins and leaves. One DefaultSelector watches the listening socket and every
-- connection; a connection is watched for writing only while it has output
-- waiting, so a slow client never blocks the others.
--
--   lua5.4 examples/chat_server.lua            demo: 5 scripted clients, then exits
--   lua5.4 examples/chat_server.lua --demo 20  demo with 20 clients
--   lua5.4 examples/chat_server.lua --serve 5555
--        serves on 127.0.0.1:5555 until interrupted (try: nc 127.0.0.1 5555)
--
-- In the demo the scripted clients live in the same process and the same
-- selector as the server: each connects, sends its name, waits until the
-- server says everyone is here, says hello, and leaves once it has heard the
-- hello of every other client. The server shuts down when the last one left.
local selectors = require "select.selectors"
local socket = require "socket"

io.stdout:setvbuf("line")

local READ, WRITE = selectors.EVENT_READ, selectors.EVENT_WRITE
local DEADLINE = 10 -- seconds: a safety net for the demo, which takes milliseconds

local mode, arg1 = arg and arg[1], arg and tonumber(arg[2])
local serving = mode == "--serve"
local expected = (mode == "--demo" and arg1) or 5 -- demo clients

local sel = selectors.DefaultSelector()
local stats = { served = 0, relayed = 0, deliveries = 0 }

------------------------------------------------------------------------------
-- Buffered, non-blocking connections (both the server's and the demo clients').

-- Queues `text` on connection `c` and makes sure the selector watches it for
-- writing until the queue is empty.
local function queue(c, text)
  c.out = c.out .. text
  local key = sel:get_key(c.sock)
  if key.events == READ then sel:modify(c.sock, READ + WRITE, key.data) end
end

local function flush(c)
  local last, err, partial = c.sock:send(c.out)
  local sent = last or partial or 0
  c.out = c.out:sub(sent + 1)
  if c.out == "" then
    sel:modify(c.sock, READ, sel:get_key(c.sock).data)
  end
  return err == nil or err == "timeout"
end

-- Reads what is there; calls on_line(c, line) for each complete line. Returns
-- false once the peer has closed.
local function drain(c, on_line)
  local data, err, partial = c.sock:receive(8192)
  c.inbuf = c.inbuf .. (data or partial or "")
  while true do
    local line, rest = c.inbuf:match("^([^\n]*)\n(.*)$")
    if not line then break end
    c.inbuf = rest
    on_line(c, (line:gsub("\r$", "")))
  end
  return err ~= "closed"
end

local function new_conn(sock, handler)
  sock:settimeout(0)
  local c = { sock = sock, inbuf = "", out = "" }
  sel:register(sock, READ, function(events) handler(c, events) end)
  return c
end

local function close(c)
  sel:unregister(c.sock)
  c.sock:close()
end

------------------------------------------------------------------------------
-- The server.

-- a deep backlog: the demo's clients all connect before the loop accepts any
local server = assert(socket.bind("127.0.0.1", serving and arg1 or 0, 1024))
server:settimeout(0)
local host, port = server:getsockname()
local members = {} -- connection -> true, for those who have given their name
local online = 0

local function broadcast(from, text)
  for c in pairs(members) do
    if c ~= from then
      queue(c, text .. "\n")
      stats.deliveries = stats.deliveries + 1
    end
  end
end

local function on_chat_line(c, line)
  if not c.name then
    c.name = line
    members[c] = true
    online = online + 1
    print(("server: %s joined"):format(c.name))
    broadcast(c, "* " .. c.name .. " joined")
    if not serving and online == expected then
      print(("server: all %d clients online"):format(expected))
      broadcast(nil, "* everyone is here")
    end
  else
    print(("server: %s says %q"):format(c.name, line))
    stats.relayed = stats.relayed + 1
    broadcast(c, c.name .. ": " .. line)
  end
end

local function on_client_event(c, events)
  if events >= WRITE and not flush(c) then events = READ end -- a dead peer: read the EOF
  if events % 2 == 1 and not drain(c, on_chat_line) then
    close(c)
    if members[c] then
      members[c] = nil
      online = online - 1
      print(("server: %s left"):format(c.name))
      broadcast(c, "* " .. c.name .. " left")
    end
    stats.served = stats.served + 1
  end
end

sel:register(server, READ, function()
  local sock = server:accept()
  if sock then new_conn(sock, on_client_event) end
end)

print(("chat server on %s:%s, using %s"):format(host, port, tostring(getmetatable(sel).__name)))

------------------------------------------------------------------------------
-- The demo's scripted clients.

local clients_left = 0

local function start_client(i)
  local name = "client" .. i
  local heard = {}
  local c
  c = new_conn(assert(socket.connect("127.0.0.1", port)), function(_, events)
    local open = true
    if events >= WRITE then flush(c) end
    if events % 2 == 1 then
      open = drain(c, function(_, line)
        if line == "* everyone is here" then
          queue(c, "hello from " .. name .. "\n")
          c.said_hello = true
        else
          local who = line:match("^(client%d+): hello from ")
          if who then heard[#heard + 1] = who end
        end
      end)
    end
    if c.said_hello and c.out == "" and #heard == expected - 1 then
      table.sort(heard, function(a, b) return tonumber(a:sub(7)) < tonumber(b:sub(7)) end)
      print(("%s: heard %d hellos, from %s; leaving"):format(name, #heard, table.concat(heard, ", ")))
      close(c)
      clients_left = clients_left - 1
    elseif not open then
      error(name .. ": the server closed the connection")
    end
  end)
  queue(c, name .. "\n")
  clients_left = clients_left + 1
end

if not serving then
  for i = 1, expected do start_client(i) end
end

------------------------------------------------------------------------------
-- The event loop.

local started = socket.gettime()
while serving or clients_left > 0 or online > 0 do
  if not serving and socket.gettime() - started > DEADLINE then
    error("the demo did not finish in time")
  end
  for _, ready in ipairs(assert(sel:select(1))) do
    -- an earlier handler of this round may have unregistered it
    local key = sel:get_map()[ready[1].fileobj]
    if key then key.data(ready[2]) end
  end
end

sel:unregister(server)
server:close()
sel:close()
print(("server: %d clients served, %d messages relayed in %d deliveries; shutting down"):format(
  stats.served, stats.relayed, stats.deliveries))
