-- Floats keep a '.' or exponent; integers never get one. Checked through a
-- Run call echo (the stub returns the call's own JSON text, decoded).
local echo = RunBash{ command = "x", outputSchema = {}, v = {2.0, 2, 0.1, 1e21, -1.5e-7, 123456789012345678} }
local v = echo.v
assert(math.type(v[1]) == "float" and v[1] == 2.0)
assert(math.type(v[2]) == "integer" and v[2] == 2)
assert(v[3] == 0.1 and v[4] == 1e21 and v[5] == -1.5e-7)
assert(math.type(v[6]) == "integer" and v[6] == 123456789012345678)
return "ok"
