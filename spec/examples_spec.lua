-- Runs each program of examples/ in a child process of the interpreter running
-- this spec (or $LUA_INTERP), with this spec's package.path/cpath (so the same
-- select.so and select.selectors), and checks the lines it prints.
local tu = require "testutil"

local function shell_quote(s)
  return "'" .. s:gsub("'", [['\'']]) .. "'"
end

local function interpreter()
  local env = os.getenv("LUA_INTERP")
  if env and env ~= "" then return env end
  local ok, path = pcall(tu.interpreter)
  if ok and path and path ~= "" then return path end
  return "lua5.4"
end

local here = debug.getinfo(1, "S").source:match("^@(.*)$"):match("^(.*)/") or "."

--- Runs examples/<name> with `args`; returns its output (stdout and stderr)
--- and its exit status.
local function run_example(name, args)
  local setup = ("package.path = %q; package.cpath = %q"):format(package.path, package.cpath)
  local cmd = table.concat({
    "timeout 30", shell_quote(interpreter()), "-e", shell_quote(setup),
    shell_quote(here .. "/../examples/" .. name), args or "", "2>&1; echo \"exit=$?\"",
  }, " ")
  local p = assert(io.popen(cmd))
  local out = p:read("*a")
  p:close()
  local body, status = out:match("^(.*)exit=(%d+)\n$")
  return body or out, tonumber(status)
end

local function lines_of(out)
  local t = {}
  for line in out:gmatch("([^\n]*)\n") do t[#t + 1] = line end
  return t
end

-- index of the first line equal to `line` (or matching `pattern` if `is_pattern`)
local function find_line(lines, line, is_pattern)
  for i, l in ipairs(lines) do
    if (is_pattern and l:match(line)) or (not is_pattern and l == line) then return i end
  end
  return nil
end

local function assert_line(lines, line, out)
  local i = find_line(lines, line)
  assert(i, ("line %q missing from:\n%s"):format(line, out))
  return i
end

local function plain(s) -- a literal string as a Lua pattern
  return (s:gsub("[%^%$%(%)%%%.%[%]%*%+%-%?]", "%%%0"))
end

describe("examples/chat_server.lua", function()
  local out, status, lines
  setup(function()
    out, status = run_example("chat_server.lua")
    lines = lines_of(out)
  end)

  it("runs to the end by itself", function()
    assert.are.equal(0, status, out)
    assert.are.equal("server: 5 clients served, 5 messages relayed in 45 deliveries; shutting down",
      lines[#lines], out)
  end)

  it("listens on 127.0.0.1 with the default selector", function()
    assert.is_not_nil(lines[1]:match("^chat server on 127%.0%.0%.1:%d+, using selectors%.EpollSelector$"), out)
  end)

  it("lets every client join, then says everyone is here", function()
    local online = assert_line(lines, "server: all 5 clients online", out)
    for i = 1, 5 do
      assert.is_true(assert_line(lines, ("server: client%d joined"):format(i), out) < online)
    end
  end)

  it("relays every hello to every other client", function()
    local online = find_line(lines, "server: all 5 clients online")
    for i = 1, 5 do
      local said = assert_line(lines, ('server: client%d says "hello from client%d"'):format(i, i), out)
      assert.is_true(said > online)
      local others = {}
      for j = 1, 5 do
        if j ~= i then others[#others + 1] = "client" .. j end
      end
      local heard = assert_line(lines, ("client%d: heard 4 hellos, from %s; leaving"):format(
        i, table.concat(others, ", ")), out)
      local left = assert_line(lines, ("server: client%d left"):format(i), out)
      assert.is_true(heard > online and heard < left)
    end
    assert.are.equal(1 + 5 + 1 + 5 + 5 + 5 + 1, #lines, out)
  end)

  it("serves 50 clients as well", function()
    local out50, status50 = run_example("chat_server.lua", "--demo 50")
    assert.are.equal(0, status50, out50)
    local l50 = lines_of(out50)
    assert.are.equal("server: 50 clients served, 50 messages relayed in 4950 deliveries; shutting down",
      l50[#l50])
    assert_line(l50, "server: all 50 clients online", out50)
    assert_line(l50, "client37: heard 49 hellos, from client1, client2, client3, client4, client5, client6, " ..
      "client7, client8, client9, client10, client11, client12, client13, client14, client15, client16, " ..
      "client17, client18, client19, client20, client21, client22, client23, client24, client25, client26, " ..
      "client27, client28, client29, client30, client31, client32, client33, client34, client35, client36, " ..
      "client38, client39, client40, client41, client42, client43, client44, client45, client46, client47, " ..
      "client48, client49, client50; leaving", out50)
  end)
end)

describe("examples/event_loop.lua", function()
  local out, status, lines, times
  setup(function()
    out, status = run_example("event_loop.lua")
    lines, times = {}, {}
    for _, l in ipairs(lines_of(out)) do
      local t, text = l:match("^%[([%d.]+)%] (.*)$")
      lines[#lines + 1] = text or l
      times[#times + 1] = tonumber(t)
    end
  end)

  it("runs every task to the end", function()
    assert.are.equal(0, status, out)
    assert.are.equal("all tasks done", lines[#lines], out)
    assert.are.equal(10, #lines, out)
  end)

  it("sleeps: the ticker ticks every 0.1 s", function()
    local prev = 0
    for i = 1, 3 do
      local at = assert_line(lines, "tick " .. i, out)
      assert.is_true(at > prev, out)
      assert.is_true(times[at] >= 0.1 * i - 0.005, out)
      prev = at
    end
  end)

  it("waits for readable and writable sockets: ping, pong, twice", function()
    local prev = 0
    for i = 1, 2 do
      local sent = assert_line(lines, ('pinger sent "ping %d"'):format(i), out)
      local got = assert_line(lines, ('ponger got "ping %d"'):format(i), out)
      local back = assert_line(lines, ('pinger got "pong %d"'):format(i), out)
      assert.is_true(prev < sent and sent < got and got < back, out)
      assert.is_true(times[sent] >= 0.12 * i - 0.005, out)
      prev = back
    end
  end)
end)

describe("examples/http_client.lua", function()
  local out, status, lines
  setup(function()
    out, status = run_example("http_client.lua")
    lines = lines_of(out)
  end)

  it("runs to the end by itself", function()
    assert.are.equal(0, status, out)
    assert.are.equal("server: answered 3 requests; done", lines[#lines], out)
  end)

  it("starts its server and fetches three pages at once", function()
    assert.is_not_nil(lines[1]:match("^server: listening on 127%.0%.0%.1:%d+$"), out)
    assert.is_not_nil(lines[2]:match(
      "^client: fetching /hello, /big and /missing from http://127%.0%.0%.1:%d+ at once$"), out)
    assert_line(lines, "server: GET /hello -> 200 OK", out)
    assert_line(lines, "server: GET /big -> 200 OK", out)
    assert_line(lines, "server: GET /missing -> 404 Not Found", out)
  end)

  it("prints each response", function()
    local blocks = {
      table.concat({
        "GET /hello -> 200 OK",
        "  Server: lua-select-example",
        "  Content-Type: text/plain",
        "  Content-Length: 23",
        "  Connection: close",
        '  body: "Hello from lua-select!\\n"',
      }, "\n"),
      table.concat({
        "GET /missing -> 404 Not Found",
        "  Server: lua-select-example",
        "  Content-Type: text/plain",
        "  Content-Length: 23",
        "  Connection: close",
        '  body: "no such page: /missing\\n"',
      }, "\n"),
      table.concat({
        "GET /big -> 200 OK",
        "  Server: lua-select-example",
        "  Content-Type: application/octet-stream",
        "  Content-Length: 262144",
        "  Connection: close",
        "  body: 262144 bytes, as sent",
      }, "\n"),
    }
    for _, block in ipairs(blocks) do
      assert.is_not_nil(out:find("\n" .. block .. "\n", 1, true), "missing:\n" .. block .. "\nin:\n" .. out)
    end
    assert.are.equal(2 + 3 + 3 * 6 + 1, #lines, out)
  end)
end)

-- keep the helper honest
describe("examples_spec helpers", function()
  it("find lines exactly, or by pattern", function()
    local l = lines_of("a.b\nab\n")
    assert.are.equal(2, find_line(l, "ab"))
    assert.are.equal(1, find_line(l, plain("a.b"), true))
    assert.is_nil(find_line(l, "a"))
  end)
end)
