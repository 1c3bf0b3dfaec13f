--! error: run-failed
--! message: RunCommand failed with exit code 7
local x = 1
RunCommand{ command = "false", simulate = "exit", exitCode = 7 }
return x
