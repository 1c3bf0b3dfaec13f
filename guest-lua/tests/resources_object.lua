assert(resources["a.sh"] == "echo a\n")
assert(resources["dir/b.txt"] == "bee")
assert(resources["missing"] == nil and resources.missing == nil)
assert(resources[1] == nil)
local names = {}
for k, v in pairs(resources) do names[#names + 1] = k .. "=" .. #v end
assert(table.concat(names, ",") == "a.sh=7,dir/b.txt=3", table.concat(names, ","))
local ok, e = pcall(function() resources.x = 1 end)
assert(not ok and e:find("read-only", 1, true))
assert(tostring(resources) == "resources")
assert(getmetatable(resources) == false)
return "ok"
