-- Methods called on something that is not a selector raise at once (no wait).
local selectors = require "select.selectors"
local util = require "testutil"

describe("selector methods on a bad self", function()
  for _, name in ipairs{"SelectSelector", "PollSelector", "EpollSelector", "KqueueSelector"} do
    it(name .. ":select raises instead of waiting", function()
      local s = selectors[name]()
      local t = util.gettime()
      for _, bad in ipairs{"x", 5, false} do
        local ok, err = pcall(s.select, bad, 2)
        assert.is_false(ok)
        assert.are.equal("string", type(err))
        assert.matches("bad self", err, 1, true)
      end
      assert.is_true(util.gettime() - t < 1)
      local ok, err = pcall(s.register, "x", 0, selectors.EVENT_READ)
      assert.is_false(ok)
      assert.matches("bad self", err, 1, true)
      s:close()
    end)
  end
end)
