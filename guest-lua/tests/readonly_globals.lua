--! globals: {"parameters": {"port": 5432, "list": [1]}, "config": {"path": "/data"}, "source": {"guid": "g1"}}
--! result: {"port": 5433, "list": [1, 2], "extra": true}
assert(sourceConfig == config and config.path == "/data")
assert(source.guid == "g1")
local ok, e = pcall(function() parameters = {} end)
assert(not ok and e:find("`parameters` is provided by the engine and is read-only", 1, true), e)
assert(e:match("^readonly_globals.lua:%d+:"), e)
local ok2, e2 = pcall(function() config = nil end)
assert(not ok2 and e2:find("`config` is provided by the engine", 1, true))
local ok3, e3 = pcall(function() _G.source = 1 end)
assert(not ok3)
local ok4, e4 = pcall(function() resources = nil end)
assert(not ok4 and e4:find("`resources`", 1, true))
-- the _G metatable is hidden and fixed
assert(getmetatable(_G) == false)
assert(not pcall(setmetatable, _G, {}))
-- ordinary globals still work
newGlobal = 5
assert(newGlobal == 5 and rawget(_G, "newGlobal") == 5)
-- tables stay mutable (upgrade hooks modify parameters and return it)
parameters.port = parameters.port + 1
table.insert(parameters.list, 2)
parameters.extra = true
return parameters
