-- Soak at spec size: 20,000 mixed operations on poll, epoll, kqueue and
-- selectors objects (scripts/soak.lua), with the process's descriptors, RSS
-- and Lua heap flat between the warm-up and the end. The full size:
--   SOAK_OPS=1000000 LUA_CPATH='build/lua54/?.so;;' LUA_PATH='lua/?.lua;;' lua5.4 scripts/soak.lua
local soak = dofile("scripts/soak.lua")

describe("soak", function()
  it("20,000 mixed operations leave descriptors, RSS and the Lua heap flat", function()
    local n = tonumber(os.getenv("SOAK_SPEC_OPS") or "") or 20000
    local before = soak.open_fds()
    local first, last = soak.run(n, 11)
    local ok, msg = soak.check(n, before, first, last)
    assert.is_true(ok, msg)
  end)
end)
