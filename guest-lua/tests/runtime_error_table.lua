--! error: runtime
--! message: error object is a table: {"code":7,"why":"x"}
error({code = 7, why = "x"})
