local sel = require "select"

describe("require 'select'", function()
  it("returns the module table", function()
    assert.is_table(sel)
    assert.is_function(sel.select)
    assert.is_function(sel.poll)
    assert.is_table(sel.epoll)
  end)

  it("leaves the global select builtin untouched", function()
    assert.are.equal(3, select("#", 1, 2, 3))
    assert.are.equal("b", (select(2, "a", "b")))
  end)

  it("requires again to the same table", function()
    assert.are.equal(sel, require "select")
  end)
end)
