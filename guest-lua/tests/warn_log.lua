--! log: shown 1 2
-- warn() is off by default (as in Lua) and goes to the log once turned on.
warn("hidden")
warn("@on")
warn("shown ", "1 ", "2")
warn("@off")
warn("hidden again")
return "ok"
