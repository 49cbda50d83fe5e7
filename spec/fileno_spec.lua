-- select.fileno(obj [, fname [, argn]]): the module's own conversion of a
-- descriptor-like value to an integer (doc/select.luadoc, "fileno"), and its
-- use by select.selectors.
local sel = require "select"
local selectors = require "select.selectors"
local util = require "testutil"

-- What poll:register says about v, with its function name replaced by fname.
local function register_error(v, fname)
  local ok, err = pcall(sel.poll().register, sel.poll(), v)
  assert.is_false(ok)
  return (err:gsub("^bad argument #1 to 'register'", "bad argument #1 to '" .. fname .. "'"))
end

describe("select.fileno", function()
  it("is a function of the module", function()
    assert.are.equal("function", type(sel.fileno))
  end)

  it("returns integers as they are, and exact floats as integers", function()
    assert.are.equal(0, sel.fileno(0))
    assert.are.equal(7, sel.fileno(7))
    assert.are.equal(2147483647, sel.fileno(2147483647))
    local n = sel.fileno(util.float(12))
    assert.are.equal(12, n)
    assert.is_true(util.is_integer(n))
  end)

  it("returns the descriptor of a Lua file handle", function()
    assert.are.equal(0, sel.fileno(io.stdin))
    assert.are.equal(1, sel.fileno(io.stdout))
    assert.are.equal(2, sel.fileno(io.stderr))
    local name = os.tmpname()
    local f = assert(io.open(name, "w"))
    local fd = sel.fileno(f)
    assert.is_true(util.is_integer(fd))
    assert.are.equal(name, util.fd_target(fd))
    f:close()
    os.remove(name)
  end)

  it("returns getfd() of a luasocket object and fileno() of other objects", function()
    local a, b = util.tcp_pair()
    assert.are.equal(math.floor(a:getfd()), sel.fileno(a))
    assert.are.equal(9, sel.fileno({ fileno = function() return 9 end }))
    assert.are.equal(9, sel.fileno({ getfd = function() return 9.0 end }))
    -- getfd is asked first
    assert.are.equal(4, sel.fileno({ getfd = function() return 4 end, fileno = function() return 5 end }))
    a:close()
    b:close()
  end)

  it("raises what every entry point raises for a bad value, naming 'fileno'", function()
    local a, b = util.tcp_pair()
    a:close()
    local closed = assert(io.open("/dev/null"))
    closed:close()
    local bad = { -1, 3.5, 0 / 0, math.huge, 2 ^ 31, "3", true, nil, {}, a, closed, print,
      { fileno = function() return "4" end }, { getfd = function() return -7 end } }
    for i = 1, 14 do
      local v = bad[i]
      local ok, err = pcall(sel.fileno, v)
      assert.is_false(ok, tostring(v))
      assert.are.equal("string", type(err))
      assert.are.equal(register_error(v, "fileno"), err)
    end
    assert.has_error(function() sel.fileno(-1) end,
      "bad argument #1 to 'fileno' (file descriptor cannot be a negative integer (-1))")
    assert.has_error(function() sel.fileno(a) end,
      "bad argument #1 to 'fileno' (file descriptor cannot be a negative integer (-1))")
    assert.has_error(function() sel.fileno(closed) end,
      "bad argument #1 to 'fileno' (file descriptor expected, got closed file)")
    assert.has_error(function() sel.fileno() end,
      "bad argument #1 to 'fileno' (file descriptor expected, got no value)")
    b:close()
  end)

  it("words its error for the function and argument it is given", function()
    assert.has_error(function() sel.fileno(-2, "connect") end,
      "bad argument #1 to 'connect' (file descriptor cannot be a negative integer (-2))")
    assert.has_error(function() sel.fileno({}, "watch", 3) end,
      "bad argument #3 to 'watch' (file descriptor expected, got table without getfd or fileno method)")
    assert.are.equal(5, sel.fileno(5, "watch", 2))
  end)

  it("checks its naming arguments", function()
    assert.has_error(function() sel.fileno(1, 2) end,
      "bad argument #2 to 'fileno' (string expected, got number)")
    assert.has_error(function() sel.fileno(1, "f", 0) end)
    assert.has_error(function() sel.fileno(1, "f", 1.5) end)
    assert.has_error(function() sel.fileno(1, "f", "x") end)
  end)

  it("lets an error raised by the object's method through unchanged", function()
    local value = { "error object" }
    local ok, err = pcall(sel.fileno, { getfd = function() error(value) end })
    assert.is_false(ok)
    assert(rawequal(value, err))
    ok, err = pcall(sel.fileno, { fileno = function() error("no fd here", 0) end }, "other")
    assert.is_false(ok)
    assert.are.equal("no fd here", err)
  end)
end)

describe("select.selectors and select.fileno", function()
  it("fileobj_to_fd gives the descriptor, or nil and select.fileno's message", function()
    assert.are.equal(0, selectors.fileobj_to_fd(io.stdin))
    assert.are.equal(6, selectors.fileobj_to_fd(6.0))
    local fd, msg = selectors.fileobj_to_fd(-3)
    assert.is_nil(fd)
    assert.are.equal(
      "bad argument #1 to 'fileobj_to_fd' (file descriptor cannot be a negative integer (-3))", msg)
  end)

  it("selectors raise select.fileno's messages under their method's name", function()
    for _, class in ipairs({ "SelectSelector", "PollSelector", "EpollSelector" }) do
      local s = selectors[class]()
      assert.has_error(function() s:register(-1, selectors.EVENT_READ) end,
        "bad argument #1 to 'register' (file descriptor cannot be a negative integer (-1))")
      assert.has_error(function() s:unregister({}) end,
        "bad argument #1 to 'unregister' (file descriptor expected, got table without getfd or fileno method)")
      assert.has_error(function() s:modify("x", selectors.EVENT_READ) end,
        "bad argument #1 to 'modify' (file descriptor expected, got string)")
      assert.has_error(function() s:get_key(-1) end,
        "bad argument #1 to 'get_key' (file descriptor cannot be a negative integer (-1))")
      s:close()
    end
  end)

  it("selectors still find a closed object by identity", function()
    local a, b = util.tcp_pair()
    local s = selectors.PollSelector()
    local key = s:register(a, selectors.EVENT_READ, "d")
    a:close()
    assert.has_error(function() sel.fileno(a) end)
    assert(rawequal(key, s:unregister(a)))
    s:close()
    b:close()
  end)
end)
