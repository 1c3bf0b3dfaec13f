--! error: bad-result
--! message: value: table mixes array items
return { 1, 2, x = 3 }
