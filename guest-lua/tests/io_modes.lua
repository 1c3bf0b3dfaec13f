--! result: "ok"
-- The file operations of guest-lua/src/wasip1.c, through Lua's io library:
-- modes, positions, appends, writes larger than one stream write, end of
-- file, errors, and stdio that goes nowhere.

-- "w" creates and truncates; "a" appends wherever the position is.
local f = assert(io.open("/modes.txt", "w"))
assert(f:write("0123456789"))
assert(f:close())
f = assert(io.open("/modes.txt", "w"))
assert(f:write("abc"))
f:close()
f = assert(io.open("/modes.txt", "a"))
assert(f:write("def"))
f:close()
f = assert(io.open("/modes.txt", "r"))
assert(f:read("a") == "abcdef")
f:close()

-- "r+" overwrites in place; seek to the start, the end and back.
f = assert(io.open("/modes.txt", "r+"))
assert(f:seek("set", 2) == 2)
assert(f:write("XY"))
assert(f:seek("cur") == 4)
assert(f:seek("end") == 6)
assert(f:seek("set", 0) == 0)
assert(f:read("a") == "abXYef")
assert(f:read(1) == nil) -- end of file
assert(f:seek("end", -2) == 4)
assert(f:read("a") == "ef")
f:close()

-- More than one 4 KiB stream write, read back whole and by lines.
local big = {}
for i = 1, 3000 do big[#big + 1] = string.format("line %04d", i) end
f = assert(io.open("/big.txt", "w"))
assert(f:write(table.concat(big, "\n"), "\n"))
f:close()
f = assert(io.open("/big.txt", "rb"))
local all = f:read("a")
assert(#all == 3000 * 10, #all)
assert(f:seek("end") == #all)
f:close()
local n = 0
for l in io.lines("/big.txt") do
  n = n + 1
  assert(l == big[n], l)
end
assert(n == 3000)

-- "a+" reads from anywhere and still appends at the end, where the
-- position is after the write.
f = assert(io.open("/modes.txt", "a+"))
assert(f:write("gh"))
assert(f:flush())
assert(f:seek("cur") == 8, f:seek("cur"))
assert(f:seek("set", 0) == 0)
assert(f:read("a") == "abXYefgh")
assert(f:seek("set", 1) == 1)
assert(f:write("ij"))
assert(f:flush())
assert(f:seek("cur") == 10)
assert(f:seek("set", 0) == 0)
assert(f:read("a") == "abXYefghij")
f:close()

-- Errors name the cause.
local h, err = io.open("/missing/file.txt", "r")
assert(h == nil and err:find("No such file or directory", 1, true), err)
h, err = io.open("/nothere.txt")
assert(h == nil and err:find("No such file or directory", 1, true), err)
local d = io.open("/", "r")
if d then
  local v, e = d:read("a")
  assert(v == nil and e:find("directory", 1, true), tostring(e))
  d:close()
end

-- stdout and stderr take writes and keep nothing; stdin is empty.
assert(io.write("dropped\n"))
assert(io.stderr:write("dropped too\n"))
assert(io.read("l") == nil)
return "ok"
