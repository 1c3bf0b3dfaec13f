//! SIGTERM and SIGINT for the `lunabox` command.
//!
//! Both are blocked in every thread and taken by one thread with
//! `sigwait`, so nothing runs in a signal handler. By default the first one
//! stops lunabox: no new Run call starts, every running call's process
//! group (and cgroup, where there is one) is killed, the call files are
//! removed, and lunabox exits with 128 + the signal (an interrupted job is
//! marked so by the next command's recovery). The daemon asks instead for a
//! graceful first signal ([`graceful`]): it sets the daemon's stop flag, and
//! a second signal stops lunabox as above. Commands lunabox starts get the
//! default signal mask back (the standard library resets it at spawn).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock};

/// Where a graceful first signal goes.
fn graceful_flag() -> &'static Mutex<Option<&'static AtomicBool>> {
    static F: OnceLock<Mutex<Option<&'static AtomicBool>>> = OnceLock::new();
    F.get_or_init(Mutex::default)
}

/// The next SIGTERM/SIGINT sets `flag` instead of stopping lunabox; the one
/// after that stops it.
pub fn graceful(flag: &'static AtomicBool) {
    *graceful_flag().lock().unwrap_or_else(|p| p.into_inner()) = Some(flag);
}

fn set() -> libc::sigset_t {
    // SAFETY: sigset_t is plain data; sigemptyset/sigaddset initialize it.
    unsafe {
        let mut s: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut s);
        libc::sigaddset(&mut s, libc::SIGINT);
        libc::sigaddset(&mut s, libc::SIGTERM);
        s
    }
}

/// Block SIGTERM and SIGINT and start the thread that takes them. Call
/// first thing, before any other thread exists (they inherit the mask).
pub fn install() {
    let s = set();
    // SAFETY: s is an initialized signal set; no old mask is asked for.
    unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &s, std::ptr::null_mut()) };
    let spawned = std::thread::Builder::new()
        .name("lunabox-signals".into())
        .stack_size(256 * 1024)
        .spawn(move || {
            loop {
                let mut sig: libc::c_int = 0;
                // SAFETY: s is an initialized set of blocked signals.
                if unsafe { libc::sigwait(&s, &mut sig) } != 0 {
                    continue;
                }
                let flag = graceful_flag()
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .take();
                if let Some(flag) = flag {
                    flag.store(true, Ordering::SeqCst);
                    continue;
                }
                stop(sig);
            }
        });
    if let Err(e) = spawned {
        // Without the thread the signals would be ignored: unblock them.
        // SAFETY: as above.
        unsafe { libc::pthread_sigmask(libc::SIG_UNBLOCK, &s, std::ptr::null_mut()) };
        tracing::warn!("cannot start the signal thread ({e}); SIGTERM will not clean up Run calls");
    }
}

fn stop(sig: libc::c_int) -> ! {
    let name = if sig == libc::SIGINT {
        "SIGINT"
    } else {
        "SIGTERM"
    };
    let killed = lunabox_run::executors::contain::stop_all();
    lunabox_engine::jobs::abandon_open_jobs(&format!("stopped: lunabox was sent {name}"));
    if killed > 0 {
        eprintln!(
            "lunabox: stopped by {name}; killed {killed} running command(s) and removed their files"
        );
    } else {
        eprintln!("lunabox: stopped by {name}");
    }
    std::process::exit(128 + sig);
}
