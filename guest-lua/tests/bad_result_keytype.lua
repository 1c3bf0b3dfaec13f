--! error: bad-result
--! message: value: table has a boolean key
return { [true] = 1 }
