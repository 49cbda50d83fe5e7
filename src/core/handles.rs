//! The process's live kqueue handles, by descriptor, for `from_fd`: the same
//! bookkeeping for both kqueue backends (the Linux emulation and the kernel's
//! kqueue). Each entry names a handle's descriptor and, weakly, the state the
//! handles of one queue share; an entry left under a number whose handle is
//! gone belongs to a descriptor closed behind its handle's back.

use std::os::fd::RawFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};

/// Locks ignoring poisoning: the state stays consistent between calls, and
/// nothing here may panic (Drop especially).
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A new queue id: unique for the life of the process, never 0.
pub fn next_queue_id() -> u64 {
    static NEXT_QUEUE: AtomicU64 = AtomicU64::new(1);
    NEXT_QUEUE.fetch_add(1, Ordering::Relaxed)
}

/// The table of one backend's handles.
pub struct Handles<T> {
    list: Mutex<Vec<(RawFd, Weak<T>)>>,
}

/// The table, locked.
pub struct Locked<'a, T>(MutexGuard<'a, Vec<(RawFd, Weak<T>)>>);

impl<T> Handles<T> {
    pub const fn new() -> Handles<T> {
        Handles {
            list: Mutex::new(Vec::new()),
        }
    }

    pub fn lock(&self) -> Locked<'_, T> {
        Locked(lock(&self.list))
    }
}

impl<T> Default for Handles<T> {
    fn default() -> Self {
        Handles::new()
    }
}

impl<T> Locked<'_, T> {
    /// The shared state of the live handle whose descriptor is `fd`.
    pub fn find(&self, fd: RawFd) -> Option<Arc<T>> {
        self.0
            .iter()
            .find(|(f, _)| *f == fd)
            .and_then(|(_, weak)| weak.upgrade())
    }

    /// Records `fd` as a handle on `shared`, replacing a stale entry under
    /// the same number.
    pub fn add(&mut self, fd: RawFd, shared: &Arc<T>) {
        self.0.retain(|(f, _)| *f != fd);
        self.0.push((fd, Arc::downgrade(shared)));
    }

    /// Forgets the handle `fd` on `shared`. The table's buffer goes with the
    /// last entry: a buffer kept by a static is lost for good when Lua
    /// unloads the module (valgrind: "definitely lost").
    pub fn remove(&mut self, fd: RawFd, shared: &Arc<T>) {
        self.0
            .retain(|(f, weak)| !(*f == fd && weak.as_ptr() == Arc::as_ptr(shared)));
        if self.0.is_empty() {
            *self.0 = Vec::new();
        }
    }
}
