//! The per-queue state of the shared sources, descriptors several
//! registrations share (the process-wide signalfd, the queue's inotify
//! instance). The queue context (ctx.rs) owns it; signal.rs and vnode.rs
//! work it.

use std::collections::HashMap;
use std::os::fd::{OwnedFd, RawFd};

use crate::core::fdhash::FdHash;

/// A queue's view of the signal hub (signal.rs): the hub's signalfd is in the queue's epoll set while
/// the queue has signal registrations.
#[derive(Default)]
pub struct SignalWatch {
    pub(super) refs: usize,
    pub(super) token: u64,
    pub(super) fd: RawFd,
}

/// The queue's inotify instance, made on first use.
#[derive(Default)]
pub struct Inotify {
    pub(super) fd: Option<OwnedFd>,
    /// Watch descriptor -> registrations on that inode.
    pub(super) watches: HashMap<i32, Vec<u64>, FdHash>,
}
