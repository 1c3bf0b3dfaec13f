//! The native baseline the sandbox benches measure against: a fresh mlua
//! state holding what a hook's state holds.

/// A fresh native state with the libraries a hook gets (toolkit-format.md
/// section 6: base, string, table, math, utf8, coroutine, os, io and debug;
/// no package), the ones the sandbox's snapshot holds.
pub fn fresh_state() -> mlua::Lua {
    use mlua::StdLib;
    let libs = StdLib::STRING
        | StdLib::TABLE
        | StdLib::MATH
        | StdLib::UTF8
        | StdLib::COROUTINE
        | StdLib::OS
        | StdLib::IO
        | StdLib::DEBUG;
    // SAFETY: mlua calls `debug` unsafe because a script could use it to
    // break mlua's invariants; the benches run only their own chunks.
    unsafe { mlua::Lua::unsafe_new_with(libs, mlua::LuaOptions::default()) }
}
