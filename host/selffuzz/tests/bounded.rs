//! A bounded fuzz run of every target (seeded, a few seconds each), as
//! part of `cargo test`. `LUNABOX_SELFFUZZ_TIME` (e.g. `20s`) sets the time
//! per target, `LUNABOX_SELFFUZZ_TARGET` picks one, `LUNABOX_SELFFUZZ_SEED`
//! the seed (default: a fixed one, so CI runs are repeatable); `cargo
//! xtask selffuzz` sets them. Crashing inputs are saved under
//! `target/selffuzz-crashes/<target>/`; copy one into `corpus/<target>/`
//! to make it a regression test.

use std::time::Duration;

use lunabox_selffuzz::{TARGETS, driver};

fn env_duration(name: &str, default: Duration) -> Duration {
    match std::env::var(name) {
        Ok(v) => humantime_like(&v)
            .unwrap_or_else(|| panic!("{name}={v}: not a duration like 20s or 500ms")),
        Err(_) => default,
    }
}

/// `20s`, `500ms`, `2m`.
fn humantime_like(v: &str) -> Option<Duration> {
    let (num, unit) = v.split_at(v.find(|c: char| !c.is_ascii_digit())?);
    let n: u64 = num.parse().ok()?;
    match unit {
        "ms" => Some(Duration::from_millis(n)),
        "s" => Some(Duration::from_secs(n)),
        "m" => Some(Duration::from_secs(n * 60)),
        _ => None,
    }
}

#[test]
fn every_target_survives_a_bounded_run() {
    let time = env_duration("LUNABOX_SELFFUZZ_TIME", Duration::from_secs(3));
    let only = std::env::var("LUNABOX_SELFFUZZ_TARGET").ok();
    let seed = std::env::var("LUNABOX_SELFFUZZ_SEED")
        .ok()
        .map(|s| s.parse().expect("LUNABOX_SELFFUZZ_SEED is a number"))
        .unwrap_or(0x5e1f);
    let crash_dir =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/selffuzz-crashes");
    // The sandbox compiles its guest once per process: not part of a
    // target's time.
    let _ = lunabox_selffuzz::runtime();
    let mut crashes = Vec::new();
    let mut ran = 0;
    for t in TARGETS
        .iter()
        .filter(|t| only.as_deref().is_none_or(|o| o == t.name))
    {
        let opts = driver::Options {
            time,
            seed,
            crash_dir: Some(crash_dir.clone()),
            ..driver::Options::default()
        };
        let r = driver::run(*t, &opts);
        ran += 1;
        eprintln!(
            "selffuzz {:<15} {:>8} execs in {:>6.2?} = {:>9.1} execs/s, slowest {:?}, {} crashes",
            r.target,
            r.execs,
            r.elapsed,
            r.execs_per_sec(),
            r.slowest,
            r.crashes.len()
        );
        for c in r.crashes {
            eprintln!("  crash saved at {:?}:\n{}", c.saved, c.message);
            crashes.push((r.target, c.saved));
        }
    }
    assert!(ran > 0, "no target is called {only:?}");
    assert!(crashes.is_empty(), "crashes: {crashes:?}");
}
