//! Cancelling a hook and its Run calls: [`CancelToken`].
//!
//! A token is cancelled once, from any thread. What runs under it notices
//! promptly: the sandbox checks it at every epoch tick (2 ms) and a local Run
//! call waits on its descriptor (an eventfd, readable once cancelled) beside
//! the command's pipes, then kills the command's process group and cgroup.
//! [`CancelToken::child`] makes a token that is cancelled with its parent
//! (and can be cancelled alone): the sandbox gives each hook a child of the
//! caller's token, so dropping one hook's future cancels that hook only.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};

/// A cancellation flag shared by everything one hook (or a group of hooks)
/// runs. Cheap to clone.
#[derive(Clone)]
pub struct CancelToken(Arc<Inner>);

struct Inner {
    cancelled: AtomicBool,
    /// Readable once cancelled, made when first asked for (most hooks make
    /// no Run call that waits on it). `None` inside where eventfd is
    /// unavailable: then waiters look at the flag between short sleeps.
    fd: OnceLock<Option<OwnedFd>>,
    children: Mutex<Vec<Weak<Inner>>>,
}

/// Make the token's descriptor readable.
fn signal(fd: &OwnedFd) {
    let one: u64 = 1;
    // SAFETY: writes 8 bytes from a valid u64 to our own eventfd.
    unsafe { libc::write(fd.as_raw_fd(), (&one as *const u64).cast(), 8) };
}

impl std::fmt::Debug for CancelToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CancelToken")
            .field("cancelled", &self.is_cancelled())
            .finish()
    }
}

impl Default for CancelToken {
    fn default() -> Self {
        CancelToken::new()
    }
}

impl CancelToken {
    /// A token not cancelled yet.
    pub fn new() -> CancelToken {
        CancelToken(Arc::new(Inner {
            cancelled: AtomicBool::new(false),
            fd: OnceLock::new(),
            children: Mutex::new(Vec::new()),
        }))
    }

    /// A token cancelled when this one is (or on its own).
    pub fn child(&self) -> CancelToken {
        let c = CancelToken::new();
        let mut children = self.0.children.lock().unwrap_or_else(|p| p.into_inner());
        children.retain(|w| w.strong_count() > 0);
        children.push(Arc::downgrade(&c.0));
        drop(children);
        if self.is_cancelled() {
            c.cancel();
        }
        c
    }

    /// Cancel it, and every child.
    pub fn cancel(&self) {
        cancel_inner(&self.0);
    }

    /// Whether it was cancelled.
    pub fn is_cancelled(&self) -> bool {
        self.0.cancelled.load(Ordering::SeqCst)
    }

    /// A descriptor that becomes readable once the token is cancelled (for
    /// `poll`), or `None` where there is none.
    pub fn fd(&self) -> Option<RawFd> {
        let mut made = false;
        let fd = self.0.fd.get_or_init(|| {
            made = true;
            // SAFETY: eventfd returns a new descriptor or -1.
            let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
            // SAFETY: a new descriptor nothing else owns.
            (fd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(fd) })
        });
        // A cancel that came before the descriptor existed could not signal
        // it: do it now. (The flag is set before a canceller looks for the
        // descriptor, so one of the two always signals.)
        if made
            && self.is_cancelled()
            && let Some(fd) = fd
        {
            signal(fd);
        }
        fd.as_ref().map(AsRawFd::as_raw_fd)
    }
}

fn cancel_inner(inner: &Arc<Inner>) {
    if inner.cancelled.swap(true, Ordering::SeqCst) {
        return;
    }
    if let Some(Some(fd)) = inner.fd.get() {
        signal(fd);
    }
    let children: Vec<Arc<Inner>> = inner
        .children
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .filter_map(Weak::upgrade)
        .collect();
    for c in children {
        cancel_inner(&c);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn children_follow_their_parent_not_the_other_way() {
        let parent = CancelToken::new();
        let a = parent.child();
        let b = parent.child();
        a.cancel();
        assert!(a.is_cancelled() && !b.is_cancelled() && !parent.is_cancelled());
        parent.cancel();
        assert!(b.is_cancelled());
        assert!(
            parent.child().is_cancelled(),
            "a child of a cancelled token starts cancelled"
        );
        let mut pfd = libc::pollfd {
            fd: b.fd().unwrap(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        assert_eq!(
            unsafe { libc::poll(&mut pfd, 1, 0) },
            1,
            "the descriptor is readable"
        );
    }
}
