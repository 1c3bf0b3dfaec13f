--! memory: 33554432
-- A memory error inside pcall is catchable; afterwards the hook goes on.
local ok, e = pcall(function() local s = string.rep("x", 64 * 1024 * 1024) return #s end)
assert(not ok and e == "not enough memory", e)
return "ok"
