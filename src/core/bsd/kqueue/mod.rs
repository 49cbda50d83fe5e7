//! `Kqueue` over the kernel's kqueue(2)/kevent(2), with the Rust interface of
//! the Linux emulation (`crate::core::linux::kqueue`): the same type and
//! method names and the same token protocol (tokens.rs), so the Lua binding
//! works unchanged on either.
//!
//! Several handles may share a queue (`from_fd`, a duplicate of the
//! descriptor: one kernel queue); they share one token table and one id.

mod consts;
mod sys;
mod tokens;

pub use crate::core::kevent::KEvent;
pub use consts::{EV_ADD, FILTER_READ};

/// The kernel measures every event's `data` itself: none is ever deferred
/// (the Linux emulation defers READ's and WRITE's, see its later.rs).
#[inline]
pub fn is_deferred(_ev: &KEvent) -> bool {
    false
}

/// Nothing to measure (see `is_deferred`).
#[inline]
pub fn measure_deferred(_ev: &mut KEvent) {}

use std::fmt;
use std::os::fd::{AsRawFd, IntoRawFd, OwnedFd, RawFd};
use std::sync::{Arc, Mutex};

use crate::core::deadline::Deadline;
use crate::core::error::{OsError, OsResult};
use crate::core::fork;
use crate::core::handles::{self, lock, Handles};
use crate::core::sys::retry_eintr;
use tokens::Tokens;

/// The state every handle on one queue shares.
struct Shared {
    /// Unique per queue for the life of the process (see `queue_id`).
    id: u64,
    /// The fork generation the queue was made in (see core/fork.rs).
    generation: u64,
    tokens: Mutex<Tokens>,
}

/// Every live handle, for `from_fd`.
static HANDLES: Handles<Shared> = Handles::new();

/// The most events one call asks the kernel for beyond its changes' count:
/// `maxevents` may be up to 2^31-1, and the buffer is allocated per call.
const MAX_BATCH: usize = 4096;

pub struct Kqueue {
    /// None only once the handle is finished (closed, or dropped in a
    /// forked child, where the number may now name another file).
    fd: Option<OwnedFd>,
    shared: Option<Arc<Shared>>,
}

impl fmt::Debug for Kqueue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Kqueue")
            .field("fd", &self.fileno())
            .finish()
    }
}

impl Kqueue {
    /// A new, empty queue (close-on-exec).
    pub fn new() -> OsResult<Kqueue> {
        let fd = sys::kqueue()?;
        Ok(Self::with_shared(fd, None))
    }

    fn with_shared(fd: OwnedFd, shared: Option<Arc<Shared>>) -> Kqueue {
        let shared = shared.unwrap_or_else(|| {
            Arc::new(Shared {
                id: handles::next_queue_id(),
                generation: fork::generation(),
                tokens: Mutex::new(Tokens::default()),
            })
        });
        HANDLES.lock().add(fd.as_raw_fd(), &shared);
        Kqueue {
            fd: Some(fd),
            shared: Some(shared),
        }
    }

    /// A second handle on the queue whose descriptor is `fd`: a close-on-exec
    /// duplicate of it (the kernel's queue is shared). EBADF/EINVAL-style
    /// errors are the kernel's when `fd` is not a kqueue.
    pub fn from_fd(fd: RawFd) -> OsResult<Kqueue> {
        let generation = fork::generation();
        let known = HANDLES
            .lock()
            .find(fd)
            .filter(|s| s.generation == generation);
        if known.is_none() {
            // Not one of ours: ask the kernel whether it is a queue at all.
            let mut none = Vec::new();
            sys::kevent(fd, &[], &mut none, Some(zero()))?;
        }
        let dup = sys::dup_cloexec(fd)?;
        Ok(Self::with_shared(dup, known))
    }

    /// The queue's descriptor (readable while events are pending); -1 once
    /// closed.
    pub fn fileno(&self) -> RawFd {
        self.fd.as_ref().map_or(-1, |fd| fd.as_raw_fd())
    }

    /// Identifies the queue: equal for every handle on the same queue (from
    /// `from_fd`), never reused by another queue of this process.
    pub fn queue_id(&self) -> u64 {
        self.shared.as_ref().map_or(0, |s| s.id)
    }

    /// True in a child after fork(): the queue is not inherited there.
    pub fn is_forked(&self) -> bool {
        self.shared
            .as_ref()
            .is_some_and(|s| s.generation != fork::generation())
    }

    fn live(&self) -> OsResult<(RawFd, &Shared)> {
        match (&self.fd, &self.shared) {
            (Some(fd), Some(s)) if s.generation == fork::generation() => Ok((fd.as_raw_fd(), s)),
            _ => Err(OsError(libc::EBADF)),
        }
    }

    /// kevent(2): applies `changes`, then collects up to `maxevents` events
    /// into `out` (cleared first), waiting until `deadline` for the first.
    /// Errors and error entries are the kernel's; EINTR is retried with the
    /// time left (the changes were applied before the wait).
    pub fn control(
        &self,
        changes: &[KEvent],
        out: &mut Vec<KEvent>,
        maxevents: usize,
        deadline: Deadline,
    ) -> OsResult<()> {
        let mut released = Vec::new();
        self.control_releasing(changes, out, &mut released, maxevents, deadline)
    }

    /// `control`, then `take_released` into `released`.
    pub fn control_releasing(
        &self,
        changes: &[KEvent],
        out: &mut Vec<KEvent>,
        released: &mut Vec<u64>,
        maxevents: usize,
        deadline: Deadline,
    ) -> OsResult<()> {
        out.clear();
        let (fd, shared) = self.live()?;
        let raw: Vec<sys::RawEvent> = changes.iter().map(sys::to_raw).collect();
        let room = maxevents.min(MAX_BATCH.max(changes.len()));
        let mut got = Vec::with_capacity(room);
        let mut first = true;
        let result = retry_eintr(|| {
            let sent: &[sys::RawEvent] = if first { &raw } else { &[] };
            let r = sys::kevent(fd, sent, &mut got, deadline.remaining_timespec());
            if matches!(r, Err(OsError(libc::EINTR))) {
                // The changes were applied: a retry only waits.
                first = false;
            }
            r
        })
        .map(drop);
        out.extend(got.iter().map(sys::from_raw));
        let mut tokens = lock(&shared.tokens);
        match &result {
            Ok(()) => tokens.record(changes, Some(out)),
            // EINTR happens in the wait, after every change was applied.
            Err(_) if !first => tokens.record(changes, Some(&[])),
            Err(_) => tokens.record(changes, None),
        }
        tokens.take_released(released);
        result
    }

    /// Moves the udata tokens no registration references any more into `out`.
    /// Tokens of events returned by a `control` call are still valid until
    /// this is called after it.
    pub fn take_released(&self, out: &mut Vec<u64>) {
        if let Ok((_, shared)) = self.live() {
            lock(&shared.tokens).take_released(out);
        }
    }

    /// Closes this handle and returns the tokens released so far; when it is
    /// the last handle on the queue, every token is returned too (the kernel
    /// drops the registrations with the queue's last descriptor).
    pub fn close(mut self) -> Vec<u64> {
        let mut tokens = Vec::new();
        self.finish(Some(&mut tokens));
        tokens
    }

    fn finish(&mut self, tokens: Option<&mut Vec<u64>>) {
        let (Some(fd), Some(shared)) = (self.fd.take(), self.shared.take()) else {
            return;
        };
        if shared.generation != fork::generation() {
            // Forked child: BSD does not inherit kqueues, so the number is
            // closed or names something else now. Touch nothing.
            let _ = fd.into_raw_fd();
            std::mem::forget(shared);
            return;
        }
        let me = fd.as_raw_fd();
        let mut handles = HANDLES.lock();
        handles.remove(me, &shared);
        drop(fd);
        let last = Arc::strong_count(&shared) == 1;
        drop(handles);
        let mut t = lock(&shared.tokens);
        match tokens {
            Some(out) if last => t.teardown(out),
            Some(out) => t.take_released(out),
            None => {}
        }
    }
}

/// A zero timeout.
fn zero() -> libc::timespec {
    libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    }
}

impl Drop for Kqueue {
    /// Closes this handle's descriptor.
    fn drop(&mut self) {
        self.finish(None);
    }
}
