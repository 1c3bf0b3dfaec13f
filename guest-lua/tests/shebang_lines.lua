#!/usr/bin/env lua -- a leading '#' line is skipped; line numbers stay right
--! error: runtime
--! message: shebang_lines.lua:4: on line four
error("on line four")
