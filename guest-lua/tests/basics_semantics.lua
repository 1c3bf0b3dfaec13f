-- Lua semantics intact in the sandbox: error values, pcall/xpcall,
-- coroutines (yield inside pcall), stack overflow, standard libraries.
local ok, err = pcall(error, {code = 7})
assert(not ok and type(err) == "table" and err.code == 7)

local ok2, err2 = pcall(error, setmetatable({}, {__tostring = function() return "custom" end}))
assert(not ok2 and tostring(err2) == "custom")

local ok3, tb = xpcall(function() error("boom") end, debug.traceback)
assert(not ok3 and tb:find("boom", 1, true) and tb:find("stack traceback", 1, true))

-- error with level 2 points at the caller
local function check(x) if not x then error("bad x", 2) end end
local ok4, e4 = pcall(function() check(false) end)
assert(e4:match("^basics_semantics.lua:%d+: bad x$"), e4)

-- errors from C functions and from table.sort comparators
local ok5, e5 = pcall(string.rep)
assert(not ok5 and e5:find("bad argument", 1, true))
local ok6, e6 = pcall(table.sort, {3, 2, 1}, function(a, b) error("cmp") end)
assert(not ok6 and e6:find("cmp", 1, true))

-- coroutines: yield across pcall, errors across resume, close
local co = coroutine.create(function(a)
  local ok, e = pcall(function()
    local b = coroutine.yield(a + 1)
    error("after " .. b)
  end)
  coroutine.yield(e)
  return "done"
end)
local _, v1 = coroutine.resume(co, 1)
assert(v1 == 2)
local _, v2 = coroutine.resume(co, "x")
assert(v2:find("after x", 1, true))
local _, v3 = coroutine.resume(co)
assert(v3 == "done" and coroutine.status(co) == "dead")
local co2 = coroutine.create(function() error({tag = "E"}) end)
local okr, er = coroutine.resume(co2)
assert(not okr and er.tag == "E")
local co3 = coroutine.create(function() coroutine.yield() end)
coroutine.resume(co3)
assert(coroutine.close(co3) == true)
local gen = coroutine.wrap(function() for i = 1, 3 do coroutine.yield(i) end end)
assert(gen() == 1 and gen() == 2 and gen() == 3)

-- stack overflow is a catchable Lua error (Lua stack and C stack)
local function rec(n) return 1 + rec(n + 1) end
local oks, es = pcall(rec, 1)
assert(not oks and es:find("stack overflow", 1, true), es)
local function crec() return pcall(crec) end
local okc = pcall(crec)
local deep = string.rep("(", 300) .. "1" .. string.rep(")", 300)
local okp, ep = load("return " .. deep)
assert(okp == nil and ep:find("overflow", 1, true) or type(okp) == "function")

-- deep gsub recursion needs the 1 MiB stack
local s = string.rep("a", 100000)
assert(#s:gsub("a", "b") == 100000)
assert(("x"):rep(3, ",") == "x,x,x")

-- libraries
assert(string.format("%5.2f|%d|%s|%q", 3.14159, 42, "s", "a\n") == " 3.14|42|s|\"a\\\n\"")
assert(("hello world"):find("o w") == 5)
assert(("key=val"):match("(%w+)=(%w+)") == "key")
local t = {5, 2, 8, 1}
table.sort(t)
assert(table.concat(t, ",") == "1,2,5,8")
table.insert(t, 1, 0)
assert(table.remove(t) == 8 and #t == 4)
assert(select("#", table.unpack({1, 2, 3})) == 3)
assert(unpack == table.unpack and loadstring == load)
assert(math.floor(3.7) == 3 and math.type(1) == "integer" and math.type(1.0) == "float")
assert(math.maxinteger == 9223372036854775807 and 7 // 2 == 3 and 7 / 2 == 3.5)
local r = math.random(1, 10)
assert(r >= 1 and r <= 10)
assert(utf8.char(72, 0x20AC) == "H\u{20AC}" and utf8.len("h\u{20AC}") == 2)
for p, c in utf8.codes("ab") do assert(c == 97 or c == 98) end
assert(type(os.time()) == "number" and os.time() > 1600000000)
assert(os.time({year = 2020, month = 1, day = 1, hour = 0}) > 0)
assert(os.date("!%Y-%m-%d", 0) == "1970-01-01")
assert(os.difftime(10, 4) == 6.0)
assert(type(os.clock()) == "number" and os.clock() >= 0)
assert(collectgarbage("count") > 0)
assert(tostring(nil) == "nil" and tonumber("0x10") == 16 and tonumber("  5  ") == 5)
local big = {}
for i = 1, 500 do big[i] = (i * 7919) % 1000 end
table.sort(big) -- large sorts use a random pivot
for i = 2, 500 do assert(big[i - 1] <= big[i]) end
-- goto, integer division, bitwise ops (5.4)
assert(5 & 3 == 1 and 5 | 3 == 7 and 1 << 4 == 16)
do goto skip end
error("goto failed")
::skip::
return "ok"
