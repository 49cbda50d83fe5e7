-- Nothing leaks: creating and dropping many poll and epoll objects, and many
-- select/poll calls (successful, failing and raising), leave the process's
-- open descriptors where they were and its memory flat.
local sel = require "select"
local util = require "testutil"

-- Memory growth allowed over a measured run (kB). A leak of even 50 bytes
-- per operation would exceed it on every measured run below.
local RSS_SLACK_KB = 2048

-- Runs `round` once to warm up (allocator pools, table sizes), then
-- `rounds` more times, and returns the RSS growth (kB) over those.
local function rss_growth(rounds, round)
  round()
  util.full_gc()
  local before = util.rss_kb()
  for _ = 1, rounds do
    round()
    util.full_gc()
  end
  return util.rss_kb() - before
end

describe("no leaks", function()
  local a, b

  before_each(function()
    a, b = util.tcp_pair()
    util.full_gc()
  end)

  after_each(function()
    a:close()
    b:close()
  end)

  it("10,000 poll objects created and dropped", function()
    local fds = util.count_fds()
    local growth = rss_growth(3, function()
      for i = 1, 10000 do
        local p = sel.poll()
        p:register(a)
        p:register(b, sel.POLLIN)
        p:poll(0)
        if i % 1000 == 0 then
          collectgarbage() -- keeps the peak (and so the RSS) low
        end
      end
    end)
    assert.are.equal(fds, util.count_fds())
    assert.is_true(growth < RSS_SLACK_KB, "RSS grew by " .. growth .. " kB")
  end)

  it("10,000 epoll objects dropped to the garbage collector", function()
    local fds = util.count_fds()
    local growth = rss_growth(2, function()
      for i = 1, 10000 do
        local ep = sel.epoll()
        ep:register(a)
        ep:poll(0)
        if i % 1000 == 0 then
          collectgarbage()
        end
      end
    end)
    util.full_gc()
    assert.are.equal(fds, util.count_fds())
    assert.is_true(growth < RSS_SLACK_KB, "RSS grew by " .. growth .. " kB")
  end)

  it("10,000 epoll objects closed explicitly, and 10,000 wrapped with fromfd", function()
    local fds = util.count_fds()
    for _ = 1, 10000 do
      local ep = sel.epoll()
      ep:register(b)
      ep:close()
    end
    assert.are.equal(fds, util.count_fds())
    for _ = 1, 10000 do
      local ep = sel.epoll()
      local fd = ep:fileno()
      -- hand the descriptor over without closing it: ep2 owns it from here
      local ep2 = sel.epoll.fromfd(fd)
      ep2:register(a)
      ep2:close()
      -- (ep's own close now hits a closed number; nothing was opened since)
      ep:close()
    end
    util.full_gc()
    assert.are.equal(fds, util.count_fds())
  end)

  it("100,000 select.select calls", function()
    local fds = util.count_fds()
    local dead = util.dead_fd()
    local obj = { fileno = function() return a:getfd() end }
    local growth = rss_growth(1, function()
      for i = 1, 100000 do
        local k = i % 4
        if k == 0 then
          sel.select({ a, b }, { a, obj }, { b }, 0)
        elseif k == 1 then
          assert(sel.select({ dead }, nil, nil, 0) == nil) -- EBADF
        elseif k == 2 then
          assert(not pcall(sel.select, { a, -1 }, {}, {}, 0)) -- raises
        else
          assert(not pcall(sel.select, {}, { { getfd = function() error("x") end } }, {}, 0))
        end
      end
    end)
    assert.are.equal(fds, util.count_fds())
    assert.is_true(growth < RSS_SLACK_KB, "RSS grew by " .. growth .. " kB")
  end)

  it("100,000 poll calls (and registrations, modifications, errors)", function()
    local fds = util.count_fds()
    local p = sel.poll()
    p:register(a)
    local dead = util.dead_fd()
    p:register(dead) -- POLLNVAL every time
    local growth = rss_growth(1, function()
      for i = 1, 100000 do
        local k = i % 5
        if k == 0 then
          assert(#p:poll(0) == 2)
        elseif k == 1 then
          p:register(b, sel.POLLIN)
          p:poll(0)
        elseif k == 2 then
          p:unregister(b)
          assert(p:modify(b, 1) == nil) -- ENOENT, returned
        elseif k == 3 then
          assert(not pcall(p.unregister, p, b)) -- raises
        else
          assert(not pcall(p.poll, p, "x")) -- raises
        end
      end
    end)
    assert.are.equal(fds, util.count_fds())
    assert.is_true(growth < RSS_SLACK_KB, "RSS grew by " .. growth .. " kB")
  end)

  it("100,000 epoll poll calls (and failed registrations)", function()
    local fds = util.count_fds()
    local ep = sel.epoll()
    ep:register(a)
    local growth = rss_growth(1, function()
      for i = 1, 100000 do
        if i % 2 == 0 then
          assert(#ep:poll(0) == 1)
        else
          assert(ep:register(a) == nil) -- EEXIST, returned
        end
      end
    end)
    ep:close()
    assert.are.equal(fds, util.count_fds())
    assert.is_true(growth < RSS_SLACK_KB, "RSS grew by " .. growth .. " kB")
  end)
end)
