--! error: bad-result
--! message: value.x: NaN cannot
return { x = 0/0 }
