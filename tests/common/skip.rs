//! How a test that cannot run here says so: loudly on the terminal, past
//! the test harness's output capture (a skipped test's own prints would be
//! swallowed), and in the skip log that `cargo xtask test` reads to count
//! it as skipped, not passed (`LUNABOX_SKIP_LOG`).

use std::io::Write;

/// `test` cannot run here, because `why`.
pub fn skipped(test: &str, why: &str) {
    let line = format!("SKIPPED {test}: {why}");
    let _ = std::io::stderr().write_all(format!("\n*** {line} ***\n\n").as_bytes());
    if let Some(log) = std::env::var_os("LUNABOX_SKIP_LOG")
        && let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
    {
        let _ = f.write_all(format!("{line}\n").as_bytes());
    }
}
