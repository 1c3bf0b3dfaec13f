--! error: runtime
--! message: error object is nil
error()
