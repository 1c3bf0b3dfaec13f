--! result: {"a": [1], "b": [1]}
local shared = {1}
return { a = shared, b = shared }
