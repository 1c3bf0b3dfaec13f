--! globals: [1, 2]
--! error: runtime
--! message: globals-json: expected a JSON object
return 1
