--! globals: {"a": 1,}
--! error: runtime
--! message: globals-json: expected a string key in object at line 1, column 9
return 1
