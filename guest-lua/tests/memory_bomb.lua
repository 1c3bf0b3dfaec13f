--! memory: 33554432
--! error: memory
local t = {}
for i = 1, 1e9 do t[i] = string.rep("x", 1000) .. i end
