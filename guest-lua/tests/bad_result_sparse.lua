--! error: bad-result
--! message: value["odd key"]: sparse array
return { ["odd key"] = { [1] = 1, [3] = 3 } }
