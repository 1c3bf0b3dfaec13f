--! compile-only
--! error: syntax
--! message: compile_only_syntax.lua:4: unfinished string
local s = "abc
