//! The `lunabox` command: a thin client of the library (see `cli`).

fn main() -> std::process::ExitCode {
    // Errors inside wasmtime (every Lua `error` unwinding through wasm is one)
    // capture a Rust backtrace when RUST_BACKTRACE is set, which makes them
    // 15-20x slower. Library backtraces are never shown by lunabox, so turn
    // them off unless asked for explicitly; panics still honour
    // RUST_BACKTRACE.
    if std::env::var_os("RUST_LIB_BACKTRACE").is_none() {
        // SAFETY: first thing in main, before any other thread exists.
        unsafe { std::env::set_var("RUST_LIB_BACKTRACE", "0") };
    }
    lunabox::cli::main()
}
