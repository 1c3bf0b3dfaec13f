-- io works in the scratch directory (preopened by the host as "/") only.
local f = assert(io.open("/out.txt", "w"))
f:write("line1\n", 42, "\n")
f:close()
local g = assert(io.open("out.txt", "r"))
assert(g:read("l") == "line1" and g:read("n") == 42)
g:close()
local n = 0
for l in io.lines("/out.txt") do n = n + 1 end
assert(n == 2)
local h, err = io.open("/etc/passwd")
assert(h == nil and type(err) == "string", err)
local h2, err2 = io.open("../../etc/passwd")
assert(h2 == nil and type(err2) == "string", err2)
local h3 = io.open("/../etc/passwd")
assert(h3 == nil)
return "ok"
