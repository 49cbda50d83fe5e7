//! Fork detection: a kqueue inherited through fork() shares its epoll set,
//! inotify instance and eventfds with the parent (Linux emulation), so using
//! it (or even tearing it down) would corrupt the parent's queue. BSD does not
//! inherit kqueues at all, so there the descriptor number may name something
//! else in the child. Either way an inherited queue is marked unusable.
//!
//! A pthread_atfork child handler bumps a generation counter; a queue made
//! in an earlier generation is in a forked child. That costs one atomic load
//! per check instead of a getpid() call.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Once;

static GENERATION: AtomicU64 = AtomicU64::new(0);
static HOOK: Once = Once::new();

extern "C" fn in_child() {
    // Only an atomic add: async-signal-safe, as a fork handler must be.
    GENERATION.fetch_add(1, Ordering::SeqCst);
}

/// The current fork generation (installs the fork handler on first use).
pub fn generation() -> u64 {
    HOOK.call_once(|| super::sys::atfork_child(in_child));
    GENERATION.load(Ordering::SeqCst)
}
