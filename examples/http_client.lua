-- An HTTP client and the small HTTP server it talks to, in one process, both
-- multiplexed by one select.selectors selector.
--
-- The server listens on 127.0.0.1 (a free port) and answers GET requests over
-- HTTP/1.0. The client fetches three pages at once with non-blocking sockets:
-- it connects without waiting (the selector says when the connection is
-- made), writes its request as the socket accepts it, reads the response until
-- the server closes, then prints it. Nothing ever blocks: one large page (with
-- many partial writes and reads) is in flight alongside the small ones.
--
--   lua5.4 examples/http_client.lua
local selectors = require "select.selectors"
local socket = require "socket"

io.stdout:setvbuf("line")

local READ, WRITE = selectors.EVENT_READ, selectors.EVENT_WRITE
local DEADLINE = 10 -- seconds: a safety net, the demo takes milliseconds
local sel = selectors.DefaultSelector()

local BIG = ("0123456789abcdef"):rep(16384) -- 256 KiB: more than a socket buffer holds

local PAGES = {
  ["/hello"] = { "200 OK", "text/plain", "Hello from lua-select!\n" },
  ["/big"] = { "200 OK", "application/octet-stream", BIG },
}

------------------------------------------------------------------------------
-- The server.

local listener = assert(socket.bind("127.0.0.1", 0))
listener:settimeout(0)
local host, port = listener:getsockname()
local answered = 0
print(("server: listening on %s:%s"):format(host, port))

local function serve(conn)
  local request, response, sent = "", nil, 0
  return function(events)
    if events % 2 == 1 and not response then
      local data, err, partial = conn:receive(4096)
      request = request .. (data or partial or "")
      if err == "closed" then
        sel:unregister(conn)
        conn:close()
        return
      end
      if not request:find("\r\n\r\n", 1, true) then return end -- not all there yet
      local method, path = request:match("^(%u+) (%S+) HTTP/1%.%d\r\n")
      local page = method == "GET" and PAGES[path]
        or { "404 Not Found", "text/plain", "no such page: " .. tostring(path) .. "\n" }
      print(("server: %s %s -> %s"):format(tostring(method), tostring(path), page[1]))
      response = ("HTTP/1.0 %s\r\nServer: lua-select-example\r\nContent-Type: %s\r\n" ..
        "Content-Length: %d\r\nConnection: close\r\n\r\n%s"):format(page[1], page[2], #page[3], page[3])
      sel:modify(conn, WRITE, sel:get_key(conn).data) -- from now on: room to write
      return
    end
    if events >= WRITE and response then
      local last, err, partial = conn:send(response, sent + 1)
      sent = last or partial or sent
      if sent == #response or (err and err ~= "timeout") then
        answered = answered + 1
        sel:unregister(conn)
        conn:close() -- HTTP/1.0: the end of the body is the end of the connection
      end
    end
  end
end

sel:register(listener, READ, function()
  local conn = listener:accept()
  if conn then
    conn:settimeout(0)
    sel:register(conn, READ, serve(conn))
  end
end)

------------------------------------------------------------------------------
-- The client.

local pending = 0

local function report(path, raw)
  local head, body = raw:match("^(.-)\r\n\r\n(.*)$")
  local status = head:match("^HTTP/1%.%d (%d%d%d [^\r\n]*)")
  print(("GET %s -> %s"):format(path, status))
  for name, value in head:gmatch("\r\n([^:\r\n]+): ([^\r\n]*)") do
    print(("  %s: %s"):format(name, value))
  end
  if #body > 64 then
    print(("  body: %d bytes, %s"):format(#body, body == BIG and "as sent" or "CORRUPTED"))
  else
    print(('  body: "%s"'):format((body:gsub("\n", "\\n"))))
  end
end

local function fetch(path)
  local c = assert(socket.tcp())
  c:settimeout(0)
  local ok, err = c:connect(host, port) -- "timeout": the connection is under way
  assert(ok or err == "timeout", err)
  local request = ("GET %s HTTP/1.0\r\nHost: %s:%s\r\nUser-Agent: lua-select\r\n\r\n"):format(path, host, port)
  local sent, response = 0, {}
  pending = pending + 1
  sel:register(c, WRITE, function(events)
    if events >= WRITE then -- connected (or failed): write what we can
      assert(c:getpeername(), "connection refused")
      local last, serr, partial = c:send(request, sent + 1)
      sent = last or partial or sent
      assert(not serr or serr == "timeout", serr)
      if sent == #request then sel:modify(c, READ, sel:get_key(c).data) end
    end
    if events % 2 == 1 then
      local data, rerr, partial = c:receive(65536)
      response[#response + 1] = data or partial
      if rerr == "closed" then
        sel:unregister(c)
        c:close()
        pending = pending - 1
        report(path, table.concat(response))
      end
    end
  end)
end

print(("client: fetching /hello, /big and /missing from http://%s:%s at once"):format(host, port))
fetch("/hello")
fetch("/big")
fetch("/missing")

------------------------------------------------------------------------------
-- The loop: until the three responses are in.

local started = socket.gettime()
while pending > 0 do
  if socket.gettime() - started > DEADLINE then error("the demo did not finish in time") end
  for _, ready in ipairs(assert(sel:select(1))) do
    local key = sel:get_map()[ready[1].fileobj] -- nil if closed earlier in this round
    if key then key.data(ready[2]) end
  end
end

sel:unregister(listener)
listener:close()
sel:close()
print(("server: answered %d requests; done"):format(answered))
