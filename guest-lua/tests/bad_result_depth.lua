--! error: bad-result
--! message: nested deeper than 100 levels
local t = {}
local cur = t
for i = 1, 300 do cur.x = {} cur = cur.x end
return t
