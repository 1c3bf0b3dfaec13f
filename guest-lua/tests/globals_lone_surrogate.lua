--! globals: {"s": "\ud800x"}
--! error: runtime
--! message: globals-json: high surrogate \u escape without its low half at line 1, column
return 1
