-- Finalizers may run while a value is being encoded (the encoder allocates);
-- ones that remove keys from the table being encoded must not corrupt the
-- encoder (it keeps its own references to the keys). Encoded here through a
-- Run call, which the harness echoes back.
local t = {}
for i = 1, 20000 do t["key" .. i] = { n = i, s = "value" .. i } end
local armed, fired = false, 0
collectgarbage("stop")
for i = 1, 200 do
  setmetatable({}, {__gc = function()
    if not armed then return end
    fired = fired + 1
    local k = next(t)
    if k then t[k].s = nil; t[k] = nil end
  end})
end
armed = true
collectgarbage("restart")
collectgarbage("incremental", 100, 100, 0)
local text = RunBash{ command = "x", simulate = "echo-text", t = t }
armed = false
-- Every key that arrives is one of ours, with its own value (a key removed
-- mid-encode arrives as null). Bug found by this test: keys listed before
-- the table shrank came out as "" with null.
assert(not text:find('"":', 1, true), "an empty key was encoded")
local seen = 0
for k, n in text:gmatch('"key(%d+)":{"n":(%d+)') do
  assert(k == n, k)
  seen = seen + 1
end
assert(fired > 0 and seen > 0 and seen <= 20000)
return "ok"
