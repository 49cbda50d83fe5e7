-- Runs examples/echo_server.lua in a child process under the interpreter running
-- this spec, with this spec's package.path/cpath (so the same select.so), and
-- checks what it reports.

--- The interpreter running us: the lowest negative index of `arg` (the program
--- name before any options); lua5.4 when that is not known.
local function interpreter()
  if type(arg) ~= "table" then return "lua5.4" end
  local i = -1
  while arg[i - 1] ~= nil do i = i - 1 end
  return arg[i] or "lua5.4"
end

local function shell_quote(s)
  return "'" .. s:gsub("'", [['\'']]) .. "'"
end

local here = debug.getinfo(1, "S").source:match("^@(.*)$"):match("^(.*)/") or "."
local script = here .. "/../examples/echo_server.lua"

local function run_demo()
  local setup = ("package.path = %q; package.cpath = %q"):format(package.path, package.cpath)
  local cmd = table.concat({
    shell_quote(interpreter()), "-e", shell_quote(setup), shell_quote(script), "2>&1",
  }, " ")
  local p = assert(io.popen(cmd))
  local out = p:read("*a")
  p:close()
  return out
end

local function count(s, pattern)
  local n = 0
  for _ in s:gmatch(pattern) do n = n + 1 end
  return n
end

describe("examples/echo_server.lua", function()
  local out

  setup(function()
    out = run_demo()
  end)

  it("runs to the end", function()
    assert.truthy(out:match("\ndemo finished\n$"), out)
  end)

  for _, name in ipairs({ "select.poll", "select.epoll" }) do
    describe("with " .. name, function()
      local section
      before_each(function()
        local quoted = name:gsub("%.", "%%.")
        section = out:match("== " .. quoted .. " ==\n(.-)\n" .. quoted .. ": [^\n]*\n") or ""
      end)

      it("listens, accepts three clients and sees each close", function()
        assert.truthy(section:match("server: listening on 127%.0%.0%.1:%d+ %(fd %d+%)"), out)
        assert.are.equal(3, count(section, "server: accepted 127%.0%.0%.1:%d+ %(fd %d+%)"))
        assert.are.equal(3, count(section, "server: fd %d+ closed by the client"))
        assert.are.equal(3, count(section, "client %d: done, closing fd %d+"))
      end)

      it("echoes every message back to its sender", function()
        for id = 1, 3 do
          for n = 1, 2 do
            local line = ("hello %d.%d from client %d"):format(id, n, id)
            local esc = line:gsub("%.", "%%.")
            assert.truthy(section:match('client ' .. id .. ': sends "' .. esc .. '"'), out)
            assert.truthy(section:match('server: echoed 24 bytes on fd %d+: "' .. esc .. '\\n"'), out)
            assert.truthy(section:match('client ' .. id .. ': got back "' .. esc .. '"'), out)
          end
        end
      end)

      it("prints the summary", function()
        local quoted = name:gsub("%.", "%%.")
        assert.truthy(out:match(quoted .. ": 3 connections accepted, 6 echoes sent, "
          .. "6 replies received, 3 closed, in [%d.]+ ms\n"), out)
      end)
    end)
  end

  it("shows a failing system call as values (epoll, EEXIST)", function()
    assert.truthy(out:match('registering fd %d+ again %-> true %(the mask is replaced%)'), out)
    assert.truthy(out:match('registering fd %d+ again %-> nil, "File exists", 17'), out)
  end)
end)
