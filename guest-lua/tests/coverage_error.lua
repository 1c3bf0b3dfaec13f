--! error: runtime
--! coverage: 4,5 / 4,5,6 / 
-- Coverage is reported when the hook fails too.
local t = nil
local y = t.field
return y
