-- Turns the raw result lines of one bench/run.sh run into the Markdown report:
-- tables with ratios against the raw C baseline of the same run, W5, memory,
-- and the targets as MET / NOT MET.
--
--   lua5.4 bench/lua/report.lua RAWFILE > report.md
--   lua5.4 bench/lua/report.lua RAWFILE C1 > report.md   (only the C1 rows)
--
-- Raw lines (tab separated): "R workload impl param value", "N note",
-- "M key value" (metadata written by run.sh).

local raw = assert(arg[1], "usage: report.lua RAWFILE")

-- data[w][impl][param] = every round's figure, reduced to their median below.
local data, notes, seen_note, meta, meta_order = {}, {}, {}, {}, {}
for line in io.lines(raw) do
  local f = {}
  for field in (line .. "\t"):gmatch("([^\t]*)\t") do f[#f + 1] = field end
  if f[1] == "R" and #f >= 5 then
    local w, impl, param, value = f[2], f[3], f[4], f[5]
    data[w] = data[w] or {}
    data[w][impl] = data[w][impl] or {}
    local list = data[w][impl][param] or {}
    data[w][impl][param] = list
    list[#list + 1] = tonumber(value) or value
  elseif f[1] == "N" then
    if not seen_note[f[2]] then
      seen_note[f[2]] = true
      notes[#notes + 1] = f[2]
    end
  elseif f[1] == "M" then
    if not meta[f[2]] then meta_order[#meta_order + 1] = f[2] end
    meta[f[2]] = f[3]
  end
end

-- Median over rounds; a text figure ("n/a (...)") wins over numbers.
for _, impls in pairs(data) do
  for _, params in pairs(impls) do
    for param, list in pairs(params) do
      local nums, text = {}, nil
      for _, v in ipairs(list) do
        if type(v) == "number" then nums[#nums + 1] = v else text = v end
      end
      if text or #nums == 0 then
        params[param] = text
      else
        table.sort(nums)
        local m = #nums
        params[param] = m % 2 == 1 and nums[(m + 1) / 2] or (nums[m / 2] + nums[m / 2 + 1]) / 2
      end
    end
  end
end

local function get(w, impl, param)
  local t = data[w] and data[w][impl]
  return t and t[param]
end

local out = {}
local function say(...)
  out[#out + 1] = table.concat({ ... })
end

local TAGS = { "lua54", "luajit" }
local TAG_NAME = { lua54 = "Lua 5.4", luajit = "LuaJIT" }

local NAMES = {
  ["c.select"] = "C select(2)",
  ["c.poll"] = "C poll(2)",
  ["c.epoll"] = "C epoll_wait(2)",
  ["py.select"] = "CPython select.select",
  ["py.poll"] = "CPython poll.poll",
  ["py.epoll"] = "CPython epoll.poll",
  ["py.selectors"] = "CPython selectors.DefaultSelector",
  ["luasocket.select"] = "luasocket socket.select (Lua 5.4)",
  ["luaposix.poll"] = "luaposix posix.poll (Lua 5.3)",
  ["luv.poll"] = "luv uv.new_poll + uv.run (Lua 5.4)",
  ["cqueues.poll"] = "cqueues poll + cq:step (Lua 5.4)",
}
local OURS = {
  select = "select.select (integer fds)",
  select_obj = "select.select (luasocket objects)",
  poll = "poll():poll",
  poll_reuse = "poll():poll, reused results table",
  epoll = "epoll():poll",
  epoll_reuse = "epoll():poll, reused results table",
  epoll_read = "epoll():poll, then evs[i][1], evs[i][2] read",
  kqueue_read = "kqueue():control, then ev.ident, ev.filter, ev.udata read",
  kqueue = "kqueue():control",
  selectors = "selectors.DefaultSelector",
}
local OURS_ORDER = {
  "select", "select_obj", "poll", "poll_reuse", "epoll", "epoll_reuse", "epoll_read",
  "kqueue", "kqueue_read", "selectors",
}
-- bench/c/luafloor.c: the same select.select and poll/epoll methods as a
-- bare C binding (luaL_checkudata self, no other checks), under each interpreter.
local FLOORS = {
  floor_select = "C binding floor: select.select in plain C",
  floor_poll = "C binding floor: p:poll() in plain C",
  floor_epoll = "C binding floor: ep:poll() in plain C",
}
local FLOOR_ORDER = { "floor_select", "floor_poll", "floor_epoll" }

local function name(impl)
  if NAMES[impl] then return NAMES[impl] end
  local tag, api = impl:match("^([^.]+)%.(.+)$")
  if FLOORS[api] then return string.format("%s [%s]", FLOORS[api], TAG_NAME[tag] or tag) end
  return string.format("**ours %s [%s]**", OURS[api] or api, TAG_NAME[tag] or tag)
end

-- The raw C figure an implementation is compared with.
local function family(impl)
  local api = impl:match("%.([^.]+)$")
  if impl == "luasocket.select" or api == "select" or api == "select_obj" or api == "floor_select" then
    return "select"
  end
  local ours_poll = (api == "poll" or api == "poll_reuse" or api == "floor_poll") and impl:match("^lua")
  if impl == "luaposix.poll" or impl == "py.poll" or impl == "c.poll" or ours_poll then
    return "poll"
  end
  return "epoll"
end

local function baseline(w, impl, param)
  local fam = family(impl)
  if fam == "select" then
    local v = get(w, "c.select", param)
    if type(v) == "number" then return v, "" end
    return get(w, "c.poll", param), "†"
  end
  return get(w, "c." .. fam, param), ""
end

local function group(n)
  local s = string.format("%d", math.floor(n + 0.5))
  local r
  repeat
    s, r = s:gsub("^(%d+)(%d%d%d)", "%1,%2")
  until r == 0
  return s
end

local function fmt_num(v)
  if v >= 100 then return group(v) end
  return string.format("%.1f", v)
end

-- "value (ratio×)" for a time (ratio = this / C) or a rate (ratio = this / C).
local function cell(w, impl, param)
  local v = get(w, impl, param)
  if v == nil then return "–" end
  if type(v) ~= "number" then return v end
  local b, mark = baseline(w, impl, param)
  if type(b) ~= "number" or b == 0 then return fmt_num(v) end
  return string.format("%s (%.2f×%s)", fmt_num(v), v / b, mark)
end

-- Implementations present in a workload, peers first, then ours per tag.
local function rows(w)
  local order = {
    "c.select", "c.poll", "c.epoll",
    "py.select", "py.poll", "py.epoll", "py.selectors",
    "luasocket.select", "luaposix.poll", "luv.poll", "cqueues.poll",
  }
  for _, tag in ipairs(TAGS) do
    for _, api in ipairs(FLOOR_ORDER) do order[#order + 1] = tag .. "." .. api end
    for _, api in ipairs(OURS_ORDER) do order[#order + 1] = tag .. "." .. api end
  end
  local r = {}
  for _, impl in ipairs(order) do
    if data[w] and data[w][impl] then r[#r + 1] = impl end
  end
  return r
end

local function table_of(w, params, heads)
  say("| implementation | ", table.concat(heads, " | "), " |")
  say("|---", string.rep("|---:", #heads), "|")
  for _, impl in ipairs(rows(w)) do
    local cells = {}
    for i, p in ipairs(params) do cells[i] = cell(w, impl, p) end
    say("| ", name(impl), " | ", table.concat(cells, " | "), " |")
  end
  say("")
end

---------------------------------------------------------------------------
-- Header

say("# lua-select benchmark results")
say("")
for _, k in ipairs(meta_order) do
  say("- ", k, ": ", meta[k])
end
say("")
say("Times are process CPU time (user + system) per call, the median of several batches;")
say("the ratio in brackets is this figure divided by the raw C figure of the same run")
say("(select rows: C select(2); poll rows: C poll(2); epoll, kqueue, selectors, luv, cqueues rows:")
say("C epoll_wait(2)). † marks a select row compared with C poll(2) because select(2) cannot")
say("take descriptors >= 1024. For W3 (a rate) the ratio is this rate / the C rate, so below 1 is slower.")
say("Descriptors are AF_UNIX stream socket pairs, both ends registered; see bench/README.md.")
say("\"C binding floor\" rows are bench/c/luafloor.c: select.select and the poll/epoll methods written")
say("as a bare C binding (luaL_checkudata for self, nothing else checked), run by the same Lua loop: the")
say("least a Lua C function can cost for the call, the system call and new result tables.")
say("")
for _, n in ipairs(notes) do say("> note: ", n) end
if #notes > 0 then say("") end

local W1_N = { "1", "10", "100", "1000", "10000" }
local function w1params(kind)
  local p, h = {}, {}
  for i, n in ipairs(W1_N) do
    p[i] = n .. ":" .. kind
    h[i] = "N=" .. group(tonumber(n))
  end
  return p, h
end

say("## W1 idle-set overhead: ns per call, timeout 0, none ready")
say("")
table_of("W1", w1params("idle"))
say("## W1 idle-set overhead: ns per call, timeout 0, one of N ready")
say("")
table_of("W1", w1params("one"))
say("## W2 all ready: ns per call including building the result")
say("")
say("cqueues: one unit is one wake-up of every ready coroutine (cq:step hands out a few dozen events per call).")
say("")
table_of("W2", { "100", "1000" }, { "N=100", "N=1,000" })
say("## W3 ping-pong: round trips per second (K socket pairs, a token bouncing in each)")
say("")
say("Each API in its natural loop; Lua reads and writes with luasocket (receive(1)/send), Python with")
say("os.read/os.write, C with read(2)/write(2). Ratio = rate / C rate.")
say("")
table_of("W3", { "1", "64", "512" }, { "K=1", "K=64", "K=512" })
say("## W4 registration churn: ns per register + unregister pair")
say("")
say("kqueue: kq:control({EV_ADD}, 0, 0) + kq:control({EV_DELETE}, 0, 0) with prebuilt kevents.")
say("C poll(2) keeps an fd-indexed pollfd array (no system call), so poll ratios are large by nature.")
say("")
table_of("W4", { "0", "1000" }, { "set empty", "1,000 others registered" })

---------------------------------------------------------------------------
-- W5

say("## W5 kqueue emulation vs our epoll (kqueue / epoll; time ratio for W1, rate ratio for W3)")
say("")
local any_kq = false
for _, tag in ipairs(TAGS) do
  if data.W1 and data.W1[tag .. ".kqueue"] then any_kq = true end
end
if not any_kq then
  say("Not measured: select.kqueue was absent from the built module.")
  say("")
else
  local heads, params = {}, {}
  for _, n in ipairs(W1_N) do
    heads[#heads + 1] = "W1 N=" .. group(tonumber(n)) .. " idle"
    params[#params + 1] = { "W1", n .. ":idle" }
  end
  heads[#heads + 1] = "W1 N=1,000 one"
  params[#params + 1] = { "W1", "1000:one" }
  heads[#heads + 1] = "W1 N=1,000 one, fields read"
  params[#params + 1] = { "W1", "1000:one", "_read" }
  for _, k in ipairs({ "1", "64", "512" }) do
    heads[#heads + 1] = "W3 K=" .. k
    params[#params + 1] = { "W3", k }
  end
  say("| interpreter | ", table.concat(heads, " | "), " |")
  say("|---", string.rep("|---:", #heads), "|")
  for _, tag in ipairs(TAGS) do
    local cells = {}
    for i, p in ipairs(params) do
      local v = p[3] or ""
      local a, b = get(p[1], tag .. ".kqueue" .. v, p[2]), get(p[1], tag .. ".epoll" .. v, p[2])
      cells[i] = (type(a) == "number" and type(b) == "number") and string.format("%.2f", a / b) or "–"
    end
    say("| ", TAG_NAME[tag], " | ", table.concat(cells, " | "), " |")
    local paired = data.P8 and data.P8[tag .. ".kqueue/epoll"]
    if paired then
      for i, p in ipairs(params) do
        local v = not p[3] and paired[p[1] .. " " .. p[2]]
        cells[i] = type(v) == "number" and string.format("%.2f", v) or "–"
      end
      say("| ", TAG_NAME[tag], ", in alternation | ", table.concat(cells, " | "), " |")
    end
  end
  say("")
  say("Rows \"in alternation\": the two APIs measured batch by batch in one process")
  say("(`ours.lua pair`), each batch on a fresh object, the order swapped every batch;")
  say("median of the rounds' ratios. T8 is judged on these rows.")
  say("")
end

---------------------------------------------------------------------------
-- C1

local C1_TAGS = { "lua51", "lua54", "luajit" }
local C1_NAME = { lua51 = "Lua 5.1", lua54 = "Lua 5.4", luajit = "LuaJIT" }
local c1_verdict
if data.C1 then
  say("## C1 select.compat.socket_select vs luasocket's socket.select (ns per call)")
  say("")
  say("Idle connected sockets (both ends of N/2 connections), timeout 0, in one process: for")
  say("each N and kind of socket, the two functions are measured one after the other on the")
  say("same sockets. Ratio: compat / socket.select (below 1: compat is faster).")
  say("")
  say("| interpreter | N | sockets | socket.select | compat.socket_select | ratio |")
  say("|---|---:|---|---:|---:|---:|")
  local all_ok, any = true, false
  for _, tag in ipairs(C1_TAGS) do
    for _, n in ipairs({ "10", "100", "1000" }) do
      for _, kind in ipairs({ "tcp", "unix" }) do
        local param = n .. ":" .. kind
        local a = get("C1", "luasocket.select@" .. tag, param)
        local b = get("C1", "compat.socket_select@" .. tag, param)
        if type(a) == "number" and type(b) == "number" then
          any = true
          if b > a then all_ok = false end
          say(string.format("| %s | %s | %s | %s | %s | %.2f |", C1_NAME[tag], group(tonumber(n)),
            kind == "tcp" and "TCP" or "AF_UNIX", fmt_num(a), fmt_num(b), b / a))
        end
      end
    end
  end
  say("")
  if any then c1_verdict = all_ok end
end

---------------------------------------------------------------------------
-- Memory

say("## Memory: bytes of process memory (RSS) per registered descriptor")
say("")
say("The hard open-file limit here keeps the count below 65,536: M descriptors (both ends of")
say("M/2 socket pairs) are registered in one object, and the RSS growth per descriptor is")
say("extrapolated linearly to 65,536. Kernel memory (epoll items) is not in RSS: it is the")
say("kernel's own. \"Lua heap\" is the part of it that collectgarbage(\"count\") sees.")
say("")
say("| object | M | RSS bytes / descriptor | Lua heap bytes / descriptor | extrapolated to 65,536 |")
say("|---|---:|---:|---:|---:|")
for _, tag in ipairs(TAGS) do
  for _, kind in ipairs({ "poll", "epoll", "kqueue" }) do
    local impl = tag .. "." .. kind
    local m, b, h = get("MEM", impl, "n"), get("MEM", impl, "bytes"), get("MEM", impl, "heap")
    if type(b) == "number" then
      say(string.format("| ours %s [%s] | %s | %.1f | %.1f | %s KiB |", kind, TAG_NAME[tag], group(m), b, h,
        group(b * 65536 / 1024)))
    elseif b then
      say(string.format("| ours %s [%s] | – | %s | – | – |", kind, TAG_NAME[tag], b))
    end
  end
end
say("")

---------------------------------------------------------------------------
-- Targets

local targets = {}
local function target(id, tag, ok, detail)
  local status
  if ok == nil then
    status = "NOT MEASURED"
  elseif ok then
    status = "MET"
  else
    status = "NOT MET"
  end
  targets[#targets + 1] = string.format("- %s [%s] **%s**: %s", id, TAG_NAME[tag], status, detail)
end

local function num(v)
  return type(v) == "number" and v or nil
end

local function ns(v)
  return v and (fmt_num(v) .. " ns") or "not measured"
end

-- A check is {ok = true | false | nil (not measured), what = text}.
-- Returns the verdict (false if any failed, else nil if any is unmeasured,
-- else true) and a text naming the failures and the gaps.
local function verdict(checks, summary)
  local fails, gaps = {}, {}
  for _, c in ipairs(checks) do
    if c.ok == false then
      fails[#fails + 1] = c.what
    elseif c.ok == nil and c.what then
      gaps[#gaps + 1] = c.what
    end
  end
  local text = summary or ""
  local function add(label, list)
    if #list > 0 then
      text = text .. (text ~= "" and "; " or "") .. label .. table.concat(list, "; ")
    end
  end
  add("failing: ", fails)
  add("not measured: ", gaps)
  if text == "" then text = "every compared figure" end
  if #fails > 0 then return false, text end
  if #gaps > 0 then return nil, text end
  return true, text
end

-- `mine` beats `theirs` (W3: higher rate; elsewhere: lower time). A peer that
-- cannot run (n/a) is skipped; a missing figure of ours is a gap.
local function faster(w, mine, theirs, param, what, plabel)
  local a, b = num(get(w, mine, param)), num(get(w, theirs, param))
  local label = string.format("%s (%s%s)", what, plabel or "", param)
  if not b then return {} end
  if not a then return { ok = nil, what = label } end
  local ok
  if w == "W3" then ok = a >= b else ok = a < b end
  return { ok = ok, what = string.format("%s %s vs %s", label, fmt_num(a), fmt_num(b)) }
end

local function ratio_check(w, mine, base, param, limit, what)
  local a, c = num(get(w, mine, param)), num(get(w, base, param))
  if not (a and c) then return { ok = nil, what = what } end
  return { ok = a <= limit * c, what = string.format("%s %.2f× (limit %.1f×)", what, a / c, limit) }
end

-- "LABEL F vs CPython P": a C binding floor figure beside CPython's, or nil
-- when either is missing. Where the floor loses too, no Lua binding can win
-- (the cost is the Lua C API's).
local function floor_vs_py(w, floor_impl, py_impl, param, label)
  local fl, py = num(get(w, floor_impl, param)), num(get(w, py_impl, param))
  if fl and py then return string.format("%s %s vs CPython %s", label, ns(fl), ns(py)) end
end

-- A target's summary from a list of floor_vs_py texts (nil if empty).
local function floor_summary(list)
  return #list > 0 and "C binding floor: " .. table.concat(list, ", ") or nil
end

for _, tag in ipairs(TAGS) do
  local o = function(api) return tag .. "." .. api end

  -- T1
  do
    local checks = {
      ratio_check("W1", o("epoll"), "c.epoll", "1000:idle", 1.5, "vs C epoll_wait"),
      faster("W1", o("epoll"), "py.epoll", "1000:idle", "vs CPython"),
    }
    local c = num(get("W1", "c.epoll", "1000:idle"))
    local fl = num(get("W1", o("floor_epoll"), "1000:idle"))
    target("T1 epoll:poll(0), N=1,000 idle: ≤ 1.5× C epoll_wait and faster than CPython", tag,
      verdict(checks, string.format("ours %s, C %s, CPython %s, C binding floor %s%s",
        ns(num(get("W1", o("epoll"), "1000:idle"))), ns(c), ns(num(get("W1", "py.epoll", "1000:idle"))),
        ns(fl), (fl and c) and string.format(" (%.2f× C)", fl / c) or "")))
    local reuse = {
      ratio_check("W1", o("epoll_reuse"), "c.epoll", "1000:idle", 1.5, "vs C epoll_wait"),
      faster("W1", o("epoll_reuse"), "py.epoll", "1000:idle", "vs CPython"),
    }
    target("T1, opt-in allocation-free form (ep:poll(0, nil, results))", tag, verdict(reuse))
  end
  -- T2
  do
    local checks = {
      ratio_check("W1", o("poll"), "c.poll", "1:idle", 1.3, "N=1 idle vs C poll"),
      ratio_check("W1", o("poll"), "c.poll", "1000:idle", 1.3, "N=1,000 idle vs C poll"),
    }
    for _, n in ipairs(W1_N) do
      for _, kind in ipairs({ "idle", "one" }) do
        checks[#checks + 1] = faster("W1", o("poll"), "py.poll", n .. ":" .. kind, "vs CPython")
      end
    end
    local summary = {}
    for i = 1, 2 do
      if checks[i].ok ~= nil then summary[#summary + 1] = checks[i].what end
    end
    local fl, c = num(get("W1", o("floor_poll"), "1:idle")), num(get("W1", "c.poll", "1:idle"))
    if fl and c then
      summary[#summary + 1] = string.format("C binding floor N=1 idle %.2f× C poll", fl / c)
    end
    -- One ready means one {fd, events} table: what the floor pays for it.
    summary[#summary + 1] = floor_vs_py("W1", o("floor_poll"), "py.poll", "1:one", "C binding floor N=1 one ready")
    target("T2 poll:poll(0): N=1 and N=1,000 idle ≤ 1.3× C poll; faster than CPython at every N", tag,
      verdict(checks, table.concat(summary, ", ")))
  end
  -- T3
  do
    local checks = {}
    for _, w in ipairs({ "W1", "W2" }) do
      local params = w == "W1" and { "100:idle", "100:one", "1000:idle", "1000:one" } or { "100", "1000" }
      for _, p in ipairs(params) do
        checks[#checks + 1] = faster(w, o("select"), "py.select", p, w .. " vs CPython")
        checks[#checks + 1] = faster(w, o("select_obj"), "luasocket.select", p, w .. " objects vs luasocket")
      end
    end
    local floor = {}
    for _, w in ipairs({ "W1", "W2" }) do
      for _, p in ipairs(w == "W1" and { "100:idle", "1000:idle" } or { "100", "1000" }) do
        floor[#floor + 1] = floor_vs_py(w, o("floor_select"), "py.select", p, w .. " " .. p)
      end
    end
    target("T3 select.select on 100 and 1,000 fds faster than CPython select.select and luasocket socket.select",
      tag, verdict(checks, floor_summary(floor)))
  end
  -- T4
  do
    local checks = {
      faster("W2", o("poll"), "py.poll", "1000", "poll vs CPython"),
      faster("W2", o("epoll"), "py.epoll", "1000", "epoll vs CPython"),
    }
    local floor = {}
    for _, api in ipairs({ "poll", "epoll" }) do
      floor[#floor + 1] = floor_vs_py("W2", o("floor_" .. api), "py." .. api, "1000", api)
    end
    target("T4 W2 N=1,000 faster than CPython (poll and epoll)", tag, verdict(checks, floor_summary(floor)))
    local reuse = {
      faster("W2", o("poll_reuse"), "py.poll", "1000", "poll (reused results) vs CPython"),
      faster("W2", o("epoll_reuse"), "py.epoll", "1000", "epoll (reused results) vs CPython"),
    }
    target("T4, opt-in allocation-free form: W2 N=1,000 faster than CPython (poll and epoll)", tag,
      verdict(reuse))
  end
  -- T5
  do
    local checks = {}
    for _, k in ipairs({ "1", "64", "512" }) do
      checks[#checks + 1] = faster("W3", o("epoll"), "luv.poll", k, "epoll vs luv", "K=")
      checks[#checks + 1] = faster("W3", o("epoll"), "cqueues.poll", k, "epoll vs cqueues", "K=")
      local kq, ep = num(get("W3", o("kqueue"), k)), num(get("W3", o("epoll"), k))
      if kq and ep then
        checks[#checks + 1] = { ok = kq >= 0.8 * ep, what = string.format("kqueue/epoll (K=%s) %.2f", k, kq / ep) }
      else
        checks[#checks + 1] = { ok = nil, what = "kqueue/epoll (K=" .. k .. ")" }
      end
    end
    target("T5 W3 epoll ≥ luv and ≥ cqueues; kqueue ≥ 0.8× our epoll", tag, verdict(checks))
    local reuse = {}
    for _, k in ipairs({ "1", "64", "512" }) do
      reuse[#reuse + 1] = faster("W3", o("epoll_reuse"), "luv.poll", k, "epoll (reused results) vs luv", "K=")
      reuse[#reuse + 1] = faster("W3", o("epoll_reuse"), "cqueues.poll", k, "epoll (reused results) vs cqueues", "K=")
    end
    target("T5, opt-in allocation-free form (ep:poll(nil, nil, results)): epoll ≥ luv and ≥ cqueues", tag,
      verdict(reuse))
  end
  -- T6
  do
    local checks = {}
    for _, p in ipairs({ "0", "1000" }) do
      checks[#checks + 1] = faster("W4", o("poll"), "py.poll", p, "poll", "others=")
      checks[#checks + 1] = faster("W4", o("epoll"), "py.epoll", p, "epoll", "others=")
      if get("W4", o("selectors"), p) then
        checks[#checks + 1] = faster("W4", o("selectors"), "py.selectors", p, "selectors", "others=")
      end
    end
    target("T6 W4 register/unregister faster than CPython", tag, verdict(checks))
  end
  -- T7
  do
    local checks = {}
    for _, kind in ipairs({ "poll", "epoll", "kqueue" }) do
      local b = num(get("MEM", o(kind), "bytes"))
      if b then
        checks[#checks + 1] = { ok = b <= 64, what = string.format("%s %.1f B", kind, b) }
      else
        checks[#checks + 1] = { ok = nil, what = kind }
      end
    end
    local parts = {}
    for _, c in ipairs(checks) do
      if c.ok ~= nil then parts[#parts + 1] = c.what end
    end
    target("T7 ≤ 64 bytes per registered descriptor (RSS, extrapolated to 65,536)", tag,
      verdict(checks, table.concat(parts, ", ")))
  end
  -- T8: the kqueue emulation against our epoll, in the same run: from the
  -- rows measured in alternation (P8) when the run has them, else from the
  -- two APIs' own rows.
  do
    local checks = {}
    local paired = data.P8 and data.P8[o("kqueue/epoll")]
    local function ratio(w, p, limit, what, rate)
      local r
      if paired then
        r = num(paired[w .. " " .. p])
      else
        local kq, ep = num(get(w, o("kqueue"), p)), num(get(w, o("epoll"), p))
        r = kq and ep and kq / ep
      end
      if not r then
        checks[#checks + 1] = { ok = nil, what = what }
        return
      end
      local ok = rate and r >= limit or (not rate and r <= limit)
      checks[#checks + 1] = { ok = ok, what = string.format("%s %.2f", what, r) }
    end
    for _, n in ipairs({ "1", "10", "100", "1000", "10000" }) do
      ratio("W1", n .. ":idle", 1.1, "W1 idle N=" .. n)
    end
    ratio("W1", "1000:one", 1.3, "W1 one ready N=1,000")
    ratio("W2", "1000", 2, "W2 N=1,000")
    for _, k in ipairs({ "1", "64", "512" }) do
      ratio("W3", k, 0.9, "W3 K=" .. k, true)
    end
    local parts = {}
    for _, c in ipairs(checks) do
      if c.ok ~= nil then parts[#parts + 1] = c.what end
    end
    target("T8 kqueue / our epoll: W1 idle ≤ 1.1, W1 one ready ≤ 1.3, W2 N=1,000 ≤ 2 (time); W3 ≥ 0.9 (rate)"
      .. (paired and ", measured in alternation" or ""),
      tag, verdict(checks, table.concat(parts, ", ")))
  end
end

say("## Targets")
say("")
for _, t in ipairs(targets) do say(t) end
if data.C1 then
  say(string.format("- C1 compat.socket_select no slower than socket.select at every N, Lua 5.1, 5.4 and LuaJIT **%s**",
    c1_verdict == nil and "NOT MEASURED" or (c1_verdict and "MET" or "NOT MET")))
end
say("")

-- `report.lua RAWFILE C1` (BENCH_ONLY=compat): the header and the C1 section only.
if arg[2] == "C1" then
  local kept, keep = {}, true
  for _, line in ipairs(out) do
    if line:match("^## ") then keep = line:match("^## C1 ") ~= nil end
    if line:match("^## W1 ") and #kept > 0 then keep = false end
    if keep or line:match("^%- C1 ") then kept[#kept + 1] = line end
  end
  out = kept
end

io.write(table.concat(out, "\n"), "\n")
