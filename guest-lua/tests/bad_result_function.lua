--! error: bad-result
--! message: value.items[3]: a function cannot be represented in JSON
return { items = {1, 2, print} }
