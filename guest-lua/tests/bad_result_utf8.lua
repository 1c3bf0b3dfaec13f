--! error: bad-result
--! message: not valid UTF-8
return { s = "\255" }
