-- The opt-in allocation-free form: poll, epoll.poll and kqueue.control fill a
-- results table the caller passes in, reusing what it holds.
local sel = require "select"
local util = require "testutil"

local function check_pairs(out, want_fds)
  local got = {}
  for i, ev in ipairs(out) do got[i] = ev[1] end
  table.sort(got)
  table.sort(want_fds)
  assert.are.same(want_fds, got)
end

describe("results table reuse", function()
  for _, kind in ipairs{"poll", "epoll"} do
    it(kind .. " refills the caller's array, reusing its pair tables", function()
      local a1, b1 = util.tcp_pair()
      local a2, b2 = util.tcp_pair()
      local p = sel[kind]()
      local IN = kind == "poll" and sel.POLLIN or sel.EPOLLIN
      p:register(b1, IN)
      p:register(b2, IN)
      local function wait(out)
        if kind == "poll" then return p:poll(1000, out) end
        return p:poll(1, -1, out)
      end
      a1:send("x"); a2:send("y")
      local out = {}
      assert.are.equal(out, wait(out))
      check_pairs(out, {b1:getfd(), b2:getfd()})
      local first = out[1]
      assert.are.equal(2, #out)
      assert(b2:receive(1))
      -- one ready now: the array shrinks, the first pair table is reused
      assert.are.equal(out, wait(out))
      assert.are.equal(1, #out)
      assert.is_nil(out[2])
      assert.are.equal(first, out[1])
      assert.are.equal(b1:getfd(), out[1][1])
      assert.is_true(out[1][2] > 0)
      -- a junk entry is replaced by a pair table
      out[1] = "junk"
      wait(out)
      assert.is_table(out[1])
      -- nothing ready: emptied
      assert(b1:receive(1))
      if kind == "poll" then p:poll(0, out) else p:poll(0, -1, out) end
      assert.are.equal(0, #out)
      assert.is_nil(next(out))
      assert.has_error(function() p:poll(0, "nope") end)
      if kind == "epoll" then p:close() end
      a1:close(); b1:close(); a2:close(); b2:close()
    end)
  end

  for _, kind in ipairs{"poll", "epoll"} do
    it(kind .. " returns the caller's array when more arguments follow it", function()
      local a, b = util.tcp_pair()
      local p = sel[kind]()
      p:register(b, kind == "poll" and sel.POLLIN or sel.EPOLLIN)
      local function wait(out, extra)
        if kind == "poll" then return p:poll(0, out, extra) end
        return p:poll(0, -1, out, extra)
      end
      local out = {}
      -- idle, into an empty array: the one-length-check path
      assert.are.equal(out, wait(out, "extra"))
      assert.is_nil(next(out))
      a:send("x")
      assert.are.equal(out, wait(out, {}))
      assert.are.equal(1, #out)
      assert.are.equal(b:getfd(), out[1][1])
      assert(b:receive(1))
      -- idle again: the old pair is cleared, the array still returned
      assert.are.equal(out, wait(out, 42))
      assert.is_nil(next(out))
      if kind == "epoll" then p:close() end
      a:close(); b:close()
    end)
  end

  for _, kind in ipairs{"poll", "epoll"} do
    it(kind .. " refills many pairs exactly as a new array holds them", function()
      local pairs_ = util.tcp_pairs(40)
      local p = sel[kind]()
      local IN = kind == "poll" and sel.POLLIN or sel.EPOLLIN
      for _, pr in ipairs(pairs_) do
        p:register(pr[2], IN)
        pr[1]:send("x")
      end
      local function wait(out)
        if kind == "poll" then return p:poll(0, out) end
        return p:poll(0, -1, out)
      end
      local function sorted(list)
        local copy = {}
        for i, ev in ipairs(list) do copy[i] = { ev[1], ev[2] } end
        table.sort(copy, function(x, y) return x[1] < y[1] end)
        return copy
      end
      local out = {}
      for round = 1, 3 do
        local tables = {}
        for i, ev in ipairs(out) do tables[i] = ev end
        assert.are.equal(out, wait(out))
        assert.are.equal(40, #out)
        assert.are.same(sorted(wait()), sorted(out))
        if round > 1 then
          for i = 1, 40 do assert.are.equal(tables[i], out[i]) end
        end
      end
      -- 23 fewer ready: the tail goes, whatever the batch boundaries.
      for i = 1, 23 do assert(pairs_[i][2]:receive(1)) end
      wait(out)
      assert.are.equal(17, #out)
      assert.is_nil(out[18])
      assert.are.same(sorted(wait()), sorted(out))
      if kind == "epoll" then p:close() end
      for _, pr in ipairs(pairs_) do pr[1]:close(); pr[2]:close() end
    end)
  end

  it("kqueue.control refills kevents in place, udata included", function()
    local kq = sel.kqueue()
    local u = {}
    assert(kq:control({
      sel.kevent(1, sel.KQ_FILTER_USER, sel.KQ_EV_ADD, 0, 0, u),
      sel.kevent(2, sel.KQ_FILTER_USER, sel.KQ_EV_ADD),
    }, 0))
    assert(kq:control({sel.kevent(1, sel.KQ_FILTER_USER, 0, sel.KQ_NOTE_TRIGGER),
      sel.kevent(2, sel.KQ_FILTER_USER, 0, sel.KQ_NOTE_TRIGGER)}, 0))
    local out = {}
    assert.are.equal(out, kq:control(nil, 4, 0, out))
    assert.are.equal(2, #out)
    local evs = {out[1], out[2]}
    local by_ident = {}
    for _, ev in ipairs(out) do by_ident[ev.ident] = ev end
    assert.are.equal(u, by_ident[1].udata)
    assert.is_nil(by_ident[2].udata)
    assert(kq:control({sel.kevent(2, sel.KQ_FILTER_USER, sel.KQ_EV_DELETE)}, 0))
    kq:control(nil, 4, 0, out)
    assert.are.equal(1, #out)
    assert.is_nil(out[2])
    assert.are.equal(evs[1], out[1])  -- the same kevent object, refilled
    assert.are.equal(1, out[1].ident)
    assert.are.equal(u, out[1].udata)
    kq:close()
  end)
end)
