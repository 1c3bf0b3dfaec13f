--! compile-only
--! result: null
error("compile-only must not run this")
