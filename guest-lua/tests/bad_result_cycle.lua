--! error: bad-result
--! message: value.a.b: table contains itself
local t = { a = {} }
t.a.b = t
return t
