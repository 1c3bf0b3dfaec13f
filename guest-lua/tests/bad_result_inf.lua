--! error: bad-result
--! message: value[2]: inf
return { 1, math.huge }
