-- Spec section 6: what a hook must not have.
for _, name in ipairs{"dofile", "loadfile", "require", "package"} do
  assert(_G[name] == nil, name)
end
assert(string.dump == nil and ("").dump == nil)
local os_keys = {}
for k in pairs(os) do os_keys[#os_keys + 1] = k end
table.sort(os_keys)
assert(table.concat(os_keys, ",") == "clock,date,difftime,time", table.concat(os_keys, ","))
local dbg = {}
for k in pairs(debug) do dbg[#dbg + 1] = k end
assert(#dbg == 1 and dbg[1] == "traceback")
assert(io.popen == nil and io.tmpfile == nil)
assert(type(io.open) == "function" and type(io.lines) == "function")
-- bytecode is rejected, text loads
local f, e = load("\27Lua\84\0\25\147\13\10\26\10")
assert(f == nil and e:find("binary chunk", 1, true), e)
local f2, e2 = load("\27Lua", "x", "b")
assert(f2 == nil and e2:find("binary", 1, true), e2)
assert(load("return 1 + 1")() == 2)
assert(loadstring("return ...")(5) == 5)
-- load keeps its env argument (also an explicit nil)
local env = { y = 3 }
assert(load("return y", "c", "t", env)() == 3)
local fnil = load("return x", "c", "t", nil)
assert(not pcall(fnil))
-- reader functions still work
local parts, i = {"return ", "4"}, 0
assert(load(function() i = i + 1 return parts[i] end)() == 4)
-- no environment variables or processes reachable
assert(os.getenv == nil and os.execute == nil and os.exit == nil and os.remove == nil)
return "ok"
