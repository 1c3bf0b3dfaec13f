-- Run functions: call encoding, return values, errors.
--! log: Run none
local echo = RunBash{ command = "echo", variables = { PORT = 5432, DEBUG = true, F = 1.5, S = "s" }, outputSchema = { type = "object" } }
assert(echo.command == "echo" and echo.variables.PORT == 5432 and echo.variables.DEBUG == true)
assert(echo.outputSchema.type == "object")
-- no outputSchema: nothing returned
assert(select("#", RunCommand{ command = "true" }) == 0)
print("Run none")
-- each function is present
for _, name in ipairs{"RunBash", "RunCommand", "RunExpect", "RunPowerShell", "RunSync"} do
  assert(type(_G[name]) == "function", name)
end
assert(RunSync{ sourceDirectory = "/x", excludePaths = {"a", "b"}, outputSchema = {} }.excludePaths[2] == "b")
-- exit failure: a table error with fields and __tostring
local ok, e = pcall(function() RunBash{ command = "exit 3", simulate = "exit", exitCode = 3 } end)
assert(not ok and type(e) == "table", tostring(e))
assert(e.exitCode == 3 and e.stdout == "some output" and e.stderr == "some error")
assert(tostring(e):match("^run_shims.lua:%d+: RunBash failed"), tostring(e))
assert(e.message == tostring(e))
-- called straight from pcall (a C function) there is no Lua position
local okd, ed = pcall(RunBash, { command = "exit 3", simulate = "exit", exitCode = 3 })
assert(not okd and tostring(ed) == "RunBash failed with exit code 3", tostring(ed))
-- bad-call / bad-output / unavailable: string errors with the caller's position
for _, kind in ipairs{"bad-call", "bad-output", "unavailable"} do
  local ok2, e2 = pcall(function() RunBash{ command = "x", simulate = kind } end)
  assert(not ok2 and type(e2) == "string" and e2:match("^run_shims.lua:%d+: "), e2)
end
-- wrong arguments
local ok3, e3 = pcall(function() RunBash("echo hi") end)
assert(not ok3 and e3:find("RunBash expects one table argument", 1, true) and e3:find("got string", 1, true), e3)
assert(e3:match("^run_shims.lua:%d+:"), e3)
local ok4, e4 = pcall(function() RunBash() end)
assert(not ok4 and e4:find("got no argument", 1, true))
local ok5, e5 = pcall(function() RunBash({}, {}) end)
assert(not ok5 and e5:find("more than one argument", 1, true))
-- a call table that cannot be JSON names the path and the position
local ok6, e6 = pcall(function() RunBash{ command = "x", variables = { F = print } } end)
assert(not ok6 and e6:match("^run_shims.lua:%d+: RunBash{...}.variables.F: a function cannot be represented in JSON"), e6)
return "ok"
