--! coverage: 6,7,8,12,13,14,15,16 / 6,7,8,9,12,13,14,15,16 / 7,12
--! result: 1
-- With the coverage option: the lines that ran, the lines with code, and
-- each Run call's line (a multi-line call counts at its first line; a
-- local function's definition counts at its `end`).
local x = 1
local r = RunBash{ command = "true" }
if x == 2 then
  x = 3
end
local function f(n)
  return RunBash{
    command = "echo " .. n }
end
f(1)
return x
