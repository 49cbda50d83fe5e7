-- The module's constants: Python's names and Linux values (POLL*, EPOLL*,
-- PIPE_BUF) and the BSD kqueue constants with FreeBSD's values (doc/select.luadoc, the constant sections).
local sel = require "select"
local util = require "testutil"

-- Python 3.11 on Linux (x86-64 / arm64): `import select; select.POLLIN`, ...
local LINUX = {
  POLLIN = 0x001,
  POLLPRI = 0x002,
  POLLOUT = 0x004,
  POLLERR = 0x008,
  POLLHUP = 0x010,
  POLLNVAL = 0x020,
  POLLRDNORM = 0x040,
  POLLRDBAND = 0x080,
  POLLWRNORM = 0x100,
  POLLWRBAND = 0x200,
  POLLMSG = 0x400,
  POLLRDHUP = 0x2000,
  EPOLLIN = 0x001,
  EPOLLPRI = 0x002,
  EPOLLOUT = 0x004,
  EPOLLERR = 0x008,
  EPOLLHUP = 0x010,
  EPOLLRDNORM = 0x040,
  EPOLLRDBAND = 0x080,
  EPOLLWRNORM = 0x100,
  EPOLLWRBAND = 0x200,
  EPOLLMSG = 0x400,
  EPOLLRDHUP = 0x2000,
  EPOLLEXCLUSIVE = 268435456, -- 1 << 28
  EPOLLONESHOT = 1073741824, -- 1 << 30
  EPOLLET = 2147483648, -- 1 << 31, positive as in Python
  EPOLL_CLOEXEC = 524288, -- O_CLOEXEC, 0o2000000
  PIPE_BUF = 4096,
}

-- FreeBSD's values, listed in doc/select.luadoc.
local KQUEUE = {
  KQ_FILTER_READ = -1,
  KQ_FILTER_WRITE = -2,
  KQ_FILTER_AIO = -3,
  KQ_FILTER_VNODE = -4,
  KQ_FILTER_PROC = -5,
  KQ_FILTER_SIGNAL = -6,
  KQ_FILTER_TIMER = -7,
  KQ_FILTER_USER = -11,
  KQ_EV_ADD = 0x1,
  KQ_EV_DELETE = 0x2,
  KQ_EV_ENABLE = 0x4,
  KQ_EV_DISABLE = 0x8,
  KQ_EV_ONESHOT = 0x10,
  KQ_EV_CLEAR = 0x20,
  KQ_EV_RECEIPT = 0x40,
  KQ_EV_DISPATCH = 0x80,
  KQ_EV_SYSFLAGS = 0xF000,
  KQ_EV_FLAG1 = 0x2000,
  KQ_EV_ERROR = 0x4000,
  KQ_EV_EOF = 0x8000,
  KQ_NOTE_LOWAT = 0x1,
  KQ_NOTE_DELETE = 0x1,
  KQ_NOTE_WRITE = 0x2,
  KQ_NOTE_EXTEND = 0x4,
  KQ_NOTE_ATTRIB = 0x8,
  KQ_NOTE_LINK = 0x10,
  KQ_NOTE_RENAME = 0x20,
  KQ_NOTE_REVOKE = 0x40,
  KQ_NOTE_EXIT = 0x80000000,
  KQ_NOTE_FORK = 0x40000000,
  KQ_NOTE_EXEC = 0x20000000,
  KQ_NOTE_PCTRLMASK = 0xf0000000,
  KQ_NOTE_PDATAMASK = 0x000fffff,
  KQ_NOTE_TRACK = 0x1,
  KQ_NOTE_TRACKERR = 0x2,
  KQ_NOTE_CHILD = 0x4,
  KQ_NOTE_SECONDS = 0x1,
  KQ_NOTE_MSECONDS = 0x2,
  KQ_NOTE_USECONDS = 0x4,
  KQ_NOTE_NSECONDS = 0x8,
  KQ_NOTE_TRIGGER = 0x01000000,
  KQ_NOTE_FFNOP = 0,
  KQ_NOTE_FFAND = 0x40000000,
  KQ_NOTE_FFOR = 0x80000000,
  KQ_NOTE_FFCOPY = 0xc0000000,
  KQ_NOTE_FFCTRLMASK = 0xc0000000,
  KQ_NOTE_FFLAGSMASK = 0x00ffffff,
}

local function sorted_names(t)
  local names = {}
  for name in pairs(t) do
    names[#names + 1] = name
  end
  table.sort(names)
  return names
end

local function check_all(expected)
  for _, name in ipairs(sorted_names(expected)) do
    local value = sel[name]
    assert(value ~= nil, "select." .. name .. " is missing")
    assert(type(value) == "number", "select." .. name .. " is a " .. type(value))
    assert(util.is_integer(value), "select." .. name .. " is not an integer: " .. tostring(value))
    assert(value == expected[name],
      string.format("select.%s is %s, expected %s", name, tostring(value), tostring(expected[name])))
  end
end

describe("constants", function()
  it("has every POLL*, EPOLL* and PIPE_BUF constant with Python's Linux value", function()
    check_all(LINUX)
  end)

  it("has every KQ_* constant with FreeBSD's value", function()
    check_all(KQUEUE)
  end)

  it("has the values the kernel actually uses for poll events", function()
    -- A listening socket with nothing pending is not readable; a connected
    -- socket with nothing sent is writable: POLLOUT is the kernel's bit.
    local a, b = util.tcp_pair()
    local p = sel.poll()
    p:register(a, sel.POLLIN + sel.POLLOUT)
    local ev = p:poll(0)
    assert.are.equal(1, #ev)
    assert.are.equal(sel.POLLOUT, ev[1][2])
    b:send("x")
    util.sleep(0.05)
    ev = p:poll(0)
    assert.are.equal(sel.POLLIN + sel.POLLOUT, ev[1][2])
    a:close()
    b:close()
  end)

  it("has the values the kernel actually uses for epoll events", function()
    local a, b = util.tcp_pair()
    local ep = sel.epoll()
    ep:register(a, sel.EPOLLIN + sel.EPOLLOUT)
    local ev = ep:poll(0)
    assert.are.equal(sel.EPOLLOUT, ev[1][2])
    b:send("x")
    util.sleep(0.05)
    ev = ep:poll(0)
    assert.are.equal(sel.EPOLLIN + sel.EPOLLOUT, ev[1][2])
    ep:close()
    a:close()
    b:close()
  end)

  it("defines no POLL*, EPOLL* or KQ_* name beyond Python's and the reference's", function()
    for name, value in pairs(sel) do
      if name:match("^POLL") or name:match("^EPOLL") or name:match("^KQ_") then
        assert(LINUX[name] ~= nil or KQUEUE[name] ~= nil, "unexpected constant select." .. name)
        assert(type(value) == "number", name .. " is not a number")
      end
    end
  end)
end)
