-- A TCP echo server and a few clients on 127.0.0.1, all in one process and one
-- event loop: first multiplexed with select.poll, then with select.epoll.
-- Every socket is non-blocking; the loop only touches a socket the kernel reported
-- ready. The server watches its listening socket (new connections) and each
-- accepted connection (data to echo; POLLOUT/EPOLLOUT only while it has output
-- pending); each client sends its messages one at a time and closes after the
-- last echo. Ends by itself when every connection is closed.
--
--   lua5.4 examples/echo_server.lua      (with select.so on package.cpath, and luasocket)
local socket = require "socket"
local sel = require "select"

io.stdout:setvbuf("line") -- each line out as soon as printed, even into a pipe

local CLIENTS, MESSAGES = 3, 2
local DEADLINE = 5 -- seconds: a safety net, the demo takes a few milliseconds

--- A string shown quoted, with its newlines as \n.
local function show(s)
  return '"' .. s:gsub("\n", "\\n") .. '"'
end

--- true if bit `flag` is set in `mask` (no bitwise operators: runs on Lua 5.1 too).
local function has(mask, flag)
  return mask % (2 * flag) >= flag
end

-- The two multiplexers behind one small interface: the same loop drives both.
local backends = {
  {
    name = "select.poll",
    open = function() return sel.poll() end,
    IN = sel.POLLIN, OUT = sel.POLLOUT, HUP = sel.POLLHUP, ERR = sel.POLLERR,
    wait = function(p, seconds) return p:poll(seconds * 1000) end, -- milliseconds
    close = function() end,
  },
  {
    name = "select.epoll",
    open = function() return assert(sel.epoll()) end,
    IN = sel.EPOLLIN, OUT = sel.EPOLLOUT, HUP = sel.EPOLLHUP, ERR = sel.EPOLLERR,
    wait = function(ep, seconds) return ep:poll(seconds) end, -- seconds
    close = function(ep) ep:close() end,
  },
}

local function run(b)
  print(("== %s =="):format(b.name))
  local poller = b.open()
  local handlers = {} -- fd -> function(events)
  local open_count = 0
  local stats = { accepted = 0, echoed = 0, closed = 0, received = 0 }

  local function watch(sock, mask, handler)
    assert(poller:register(sock, mask))
    handlers[sock:getfd()] = handler
    open_count = open_count + 1
  end
  local function forget(sock)
    local fd = sock:getfd()
    assert(poller:unregister(sock))
    handlers[fd] = nil
    open_count = open_count - 1
    sock:close()
  end

  -- The server: a listening socket, and one handler per accepted connection.
  local server = assert(socket.bind("127.0.0.1", 0))
  server:settimeout(0)
  local host, port = server:getsockname()
  print(("server: listening on %s:%s (fd %d)"):format(host, port, server:getfd()))

  local function serve(conn)
    local fd, pending = conn:getfd(), ""
    local function on_event(events)
      if has(events, b.IN) or has(events, b.HUP) or has(events, b.ERR) then
        local data, err, partial = conn:receive(4096)
        data = data or partial
        if data and #data > 0 then
          pending = pending .. data
          assert(poller:modify(conn, b.IN + b.OUT)) -- now also wait for room to write
        end
        if err == "closed" then
          print(("server: fd %d closed by the client"):format(fd))
          stats.closed = stats.closed + 1
          forget(conn)
          return
        end
      end
      if has(events, b.OUT) and #pending > 0 then
        local last, err, partial_last = conn:send(pending)
        local sent = last or partial_last or 0
        if sent > 0 then
          print(("server: echoed %d bytes on fd %d: %s"):format(sent, fd, show(pending:sub(1, sent))))
          stats.echoed = stats.echoed + 1
          pending = pending:sub(sent + 1)
        end
        if err and err ~= "timeout" then error("server send: " .. err) end
        if pending == "" then assert(poller:modify(conn, b.IN)) end -- nothing left to write
      end
    end
    return on_event
  end

  watch(server, b.IN, function()
    local conn = server:accept()
    if not conn then return end -- someone else took it; nothing to do
    conn:settimeout(0)
    local peer_host, peer_port = conn:getpeername()
    print(("server: accepted %s:%s (fd %d)"):format(peer_host, peer_port, conn:getfd()))
    stats.accepted = stats.accepted + 1
    watch(conn, b.IN, serve(conn))
  end)
  -- A failing system call is a value, not an error: registering a descriptor again
  -- replaces its mask with poll, and is EEXIST with epoll.
  local ok, msg, errno = poller:register(server, b.IN)
  print(("server: registering fd %d again -> %s"):format(
    server:getfd(), ok and "true (the mask is replaced)" or ("nil, %q, %d"):format(msg, errno)))

  -- The clients: each sends a line, waits for its echo, sends the next, then closes.
  for id = 1, CLIENTS do
    local client = assert(socket.connect("127.0.0.1", port))
    client:settimeout(0)
    local fd, n, inbox = client:getfd(), 1, ""
    local function send_next()
      local line = ("hello %d.%d from client %d"):format(id, n, id)
      print(("client %d: sends %s"):format(id, show(line)))
      assert(client:send(line .. "\n"))
    end
    watch(client, b.IN, function()
      local data, err, partial = client:receive(4096)
      inbox = inbox .. (data or partial or "")
      for line in inbox:gmatch("([^\n]*)\n") do
        print(("client %d: got back %s"):format(id, show(line)))
        stats.received = stats.received + 1
        n = n + 1
      end
      inbox = inbox:match("[^\n]*$")
      if err == "closed" then error("client " .. id .. ": the server closed early") end
      if n > MESSAGES then
        print(("client %d: done, closing fd %d"):format(id, fd))
        forget(client)
      else
        send_next()
      end
    end)
    send_next()
  end

  -- The event loop: wait, then call the handler of each ready descriptor.
  local started = socket.gettime()
  while open_count > 1 do -- until only the listening socket is left
    if socket.gettime() - started > DEADLINE then error(b.name .. ": the demo did not finish in time") end
    local events = assert(b.wait(poller, 1))
    for _, ev in ipairs(events) do
      local fd, mask = ev[1], ev[2]
      local handler = handlers[fd]
      if handler then handler(mask) end -- nil if an earlier event of this round closed it
    end
  end
  forget(server)
  b.close(poller)
  print(("%s: %d connections accepted, %d echoes sent, %d replies received, %d closed, in %.1f ms"):format(
    b.name, stats.accepted, stats.echoed, stats.received, stats.closed, (socket.gettime() - started) * 1000))
  assert(stats.accepted == CLIENTS and stats.received == CLIENTS * MESSAGES and stats.closed == CLIENTS)
end

for _, b in ipairs(backends) do
  run(b)
end
print("demo finished")
