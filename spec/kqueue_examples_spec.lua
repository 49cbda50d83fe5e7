-- The kqueue examples, run as their own processes with the interpreter this
-- spec runs under and the module under test:
--   examples/tail.lua       follows a file (VNODE + READ, SIGNAL, TIMER)
--   examples/supervise.lua  runs a command (PROC, READ, SIGNAL)
local util = require "testutil"

local LUA = util.lua_command()

local function shell_quote(s)
  return "'" .. s:gsub("'", [['\'']]) .. "'"
end

-- The command line running example `name` with `args` (already quoted),
-- finding the module where this spec finds it.
local function example(name, args)
  local setup = string.format("package.path = %q; package.cpath = %q", package.path, package.cpath)
  return string.format("%s -e %s examples/%s %s", LUA, shell_quote(setup), name, args)
end

-- Runs a command line to its end; returns its output (stdout and stderr)
-- and exit status.
local function run(cmd)
  local p = assert(io.popen(cmd .. " 2>&1; echo \"status=$?\""))
  local out = p:read("*a")
  p:close()
  local status = tonumber(out:match("status=(%d+)%s*$"))
  return (out:gsub("status=%d+%s*$", "")), status
end

-- Reads the next line from `p`, which must be `want`; if not, fails with
-- everything the process wrote, to tell why.
local function expect_line(p, want)
  local line = p:read("*l")
  if line ~= want then
    error(string.format("expected line %q, got %q, then:\n%s", want, tostring(line), p:read("*a") or ""), 2)
  end
end

-- Starts a command line as a child (`exec`: its pid is the shell's), output
-- and errors into one pipe. Returns the popen handle and the pid.
local function start(cmd)
  return util.spawn("exec " .. cmd .. " 2>&1")
end

describe("examples/tail.lua", function()
  local dir, path

  before_each(function()
    dir = util.temp_dir()
    path = dir .. "/log"
    util.write_file(path, "old 1\nold 2\nold 3\n", "w")
  end)

  after_each(function()
    util.remove_tree(dir)
  end)

  it("prints the last lines, then the lines appended, and exits when the file is deleted", function()
    if util.on_libkqueue then
      pending("known difference of libkqueue: libkqueue's EVFILT_VNODE maps inotify events onto"
        .. " notes differently (extra ATTRIB/LINK/WRITE notes, seen here; not in its "
        .. "BUGS.md)")
    end
    local t0 = util.gettime()
    local p, pid = start(example("tail.lua", "-n 2 --for 5 " .. shell_quote(path)))
    -- The last two lines first: once they are out, tail is watching.
    expect_line(p, "old 2")
    expect_line(p, "old 3")
    util.write_file(path, "new 1\n")
    expect_line(p, "new 1")
    util.write_file(path, "new 2\nnew ")
    util.sleep(0.05)
    util.write_file(path, "3\n")
    expect_line(p, "new 2")
    expect_line(p, "new 3")
    util.write_file(path, "last words\n")
    assert(os.remove(path))
    local rest = p:read("*a")
    assert.are.same({ "exit", 0 }, { util.reap(p, pid) })
    assert.are.equal("last words\ntail.lua: " .. path .. ": file deleted\n", rest)
    assert.is_true(util.gettime() - t0 < 4, "ended by the deletion, not by --for")
  end)

  it("reads a truncated file again from the start", function()
    if util.on_libkqueue then
      pending("known difference of libkqueue: libkqueue's EVFILT_VNODE maps inotify events onto"
        .. " notes differently (extra ATTRIB/LINK/WRITE notes, seen here; not in its "
        .. "BUGS.md)")
    end
    local p, pid = start(example("tail.lua", "-n 1 --for 5 " .. shell_quote(path)))
    expect_line(p, "old 3")
    util.write_file(path, "", "w")
    expect_line(p, "tail.lua: " .. path .. ": file truncated")
    util.write_file(path, "fresh\n")
    expect_line(p, "fresh")
    assert(os.remove(path))
    assert.matches("file deleted", p:read("*a"), 1, true)
    assert.are.same({ "exit", 0 }, { util.reap(p, pid) })
  end)

  it("exits cleanly on SIGINT (Ctrl-C)", function()
    local t0 = util.gettime()
    local p, pid = start(example("tail.lua", "-n 1 --for 5 " .. shell_quote(path)))
    expect_line(p, "old 3")
    os.execute("kill -INT " .. pid)
    assert.are.equal("tail.lua: " .. path .. ": interrupted by SIGINT\n", p:read("*a"))
    assert.are.same({ "exit", 0 }, { util.reap(p, pid) })
    assert.is_true(util.gettime() - t0 < 4, "ended by the signal, not by --for")
  end)

  it("stops after --for SECONDS", function()
    local t0 = util.gettime()
    local out, status = run(example("tail.lua", "--for 0.3 " .. shell_quote(path)))
    local took = util.gettime() - t0
    assert.are.equal("old 1\nold 2\nold 3\ntail.lua: " .. path .. ": done after 0.3 s\n", out)
    assert.are.equal(0, status)
    assert.is_true(took >= 0.3 and took < 3, "took " .. took .. " s")
  end)

  it("fails with a message for a missing file or no file", function()
    local out, status = run(example("tail.lua", shell_quote(dir .. "/missing")))
    assert.are.equal(1, status)
    assert.matches("No such file or directory", out, 1, true)
    out, status = run(example("tail.lua", ""))
    assert.are.equal(2, status)
    assert.matches("^tail.lua: usage:", out)
  end)
end)

describe("examples/supervise.lua", function()
  it("reports `exit status 3` for sh -c 'exit 3', passing the output through", function()
    local out, status = run(example("supervise.lua", [[sh -c 'echo hello; echo "it'\''s"; exit 3']]))
    assert.are.equal(3, status)
    assert.matches("^hello\nit's\nsupervise: pid %d+ exit status 3\n$", out)
  end)

  it("reports exit status 0", function()
    local out, status = run(example("supervise.lua", "true"))
    assert.are.equal(0, status)
    assert.matches("^supervise: pid %d+ exit status 0\n$", out)
  end)

  it("forwards a SIGTERM to the command, and reports its death by it", function()
    local t0 = util.gettime()
    local p, pid = start(example("supervise.lua", "sh -c 'echo ready; exec sleep 5'"))
    -- "ready" is relayed from inside the kqueue loop: the signals are watched.
    expect_line(p, "ready")
    os.execute("kill -TERM " .. pid)
    local rest = p:read("*a")
    assert.matches("^supervise: forwarding SIGTERM to pid (%d+)\n", rest)
    local child = rest:match("to pid (%d+)")
    assert.matches("supervise: pid " .. child .. " killed by signal 15 %(SIGTERM%)\n$", rest)
    assert.are.same({ "exit", 128 + 15 }, { util.reap(p, pid) }, rest)
    assert.is_true(util.gettime() - t0 < 4, "the child did not live out its sleep")
  end)

  it("forwards a SIGTERM the command catches, and reports its exit status", function()
    local p, pid = start(example("supervise.lua",
      [[sh -c 'trap "echo got TERM; exit 7" TERM; echo ready; while :; do sleep 0.05; done']]))
    expect_line(p, "ready")
    os.execute("kill -TERM " .. pid)
    local rest = p:read("*a")
    assert.matches("^supervise: forwarding SIGTERM to pid %d+\ngot TERM\nsupervise: pid %d+ exit status 7\n$", rest)
    assert.are.same({ "exit", 7 }, { util.reap(p, pid) }, rest)
  end)

  it("forwards a SIGINT", function()
    if util.sig_ignored(2) then
      pending("SIGINT is ignored in this test process (started in the background?): " ..
        "every child inherits that and no shell can undo it")
      return
    end
    local p, pid = start(example("supervise.lua",
      [[sh -c 'trap "echo got INT; exit 4" INT; echo ready; while :; do sleep 0.05; done']]))
    expect_line(p, "ready")
    os.execute("kill -INT " .. pid)
    local rest = p:read("*a")
    assert.matches("^supervise: forwarding SIGINT to pid %d+\ngot INT\nsupervise: pid %d+ exit status 4\n$", rest)
    assert.are.same({ "exit", 4 }, { util.reap(p, pid) }, rest)
  end)
end)
