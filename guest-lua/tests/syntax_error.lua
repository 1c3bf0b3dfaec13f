--! error: syntax
--! message: syntax_error.lua:4:
local x = 1
local y = = 2
