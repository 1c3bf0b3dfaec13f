--! result: null
local x = 1
