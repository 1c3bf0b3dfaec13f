--! log: a	1	nil	true	2.5
--! log: tbl
print("a", 1, nil, true, 2.5)
print(setmetatable({}, {__tostring = function() return "tbl" end}))
print("bad utf8 \255 replaced")
return "ok"
