//! The `lunabox` command: a thin client of the library (see `cli`).

fn main() -> std::process::ExitCode {
    lunabox::cli::main()
}
