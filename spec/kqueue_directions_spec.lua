-- READ and WRITE registrations of one descriptor are independent: nothing
-- done to one (a change, or its own readiness) makes the other fire.
local sel = require "select"
local util = require "testutil"

local READ, WRITE = sel.KQ_FILTER_READ, sel.KQ_FILTER_WRITE
local ADD, DELETE, ENABLE, DISABLE = sel.KQ_EV_ADD, sel.KQ_EV_DELETE, sel.KQ_EV_ENABLE, sel.KQ_EV_DISABLE
local CLEAR = sel.KQ_EV_CLEAR

-- The filters of the events of one non-blocking call, as a sorted string.
local function filters(kq)
  local got = {}
  for _, ev in ipairs(assert(kq:control(nil, 8, 0))) do
    got[#got + 1] = ev.filter == READ and "READ" or ev.filter == WRITE and "WRITE" or tostring(ev.filter)
  end
  table.sort(got)
  return table.concat(got, " ")
end

describe("select.kqueue READ and WRITE of one descriptor", function()
  local kq, a, b
  before_each(function()
    kq = assert(sel.kqueue())
    a, b = util.tcp_pair()
  end)
  after_each(function()
    kq:close()
    a:close()
    b:close()
  end)

  it("leave a delivered EV_CLEAR READ alone whatever is done to WRITE", function()
    if util.on_libkqueue then
      pending("known difference of libkqueue: adding WRITE on a descriptor reports its EV_CLEAR "
        .. "READ again while data is unread")
    end
    assert(b:send("x"))
    assert(kq:control({ sel.kevent(a, READ, ADD + CLEAR) }, 0, 0))
    -- The byte may take a moment over TCP loopback.
    local first = assert(kq:control(nil, 8, 1))
    assert.equals(1, #first)
    assert.equals(READ, first[1].filter)
    for _, flags in ipairs({ ADD, DISABLE, ENABLE, ADD + CLEAR, DELETE }) do
      assert(kq:control({ sel.kevent(a, WRITE, flags) }, 0, 0))
      local got = filters(kq)
      assert.is_nil(got:find("READ"), "READ fired again after WRITE flags " .. flags .. ": " .. got)
    end
  end)

  it("do not take new data as a WRITE edge", function()
    if util.on_libkqueue then
      pending("known difference of libkqueue: data arriving on a socket is also reported as an "
        .. "edge of its EV_CLEAR WRITE registration")
    end
    assert(kq:control({ sel.kevent(a, WRITE, ADD + CLEAR), sel.kevent(a, READ, ADD + CLEAR) }, 0, 0))
    assert.equals("WRITE", filters(kq))
    assert.equals("", filters(kq))
    assert(b:send("y"))
    local evs = assert(kq:control(nil, 8, 1))
    assert.equals(1, #evs)
    assert.equals(READ, evs[1].filter)
    assert.equals("", filters(kq))
  end)
end)
