//! BSD kqueue(2)/kevent(2) emulated on Linux, with FreeBSD's semantics.
//!
//! A queue is an epoll instance (its fd is the queue's `fileno`) plus a
//! registration table (registry.rs). Each filter lives in its own file and
//! maps onto a Linux mechanism:
//!
//! | filter | file | Linux |
//! |---|---|---|
//! | READ, WRITE | read.rs, write.rs (+ fds.rs, fdtable.rs) | the fd itself in epoll, one entry per direction |
//! | TIMER | timer.rs | timerfd |
//! | USER | user.rs | user-space flag + the queue's notify eventfd |
//! | SIGNAL | signal.rs | one process-wide signalfd |
//! | PROC | proc.rs | pidfd + waitid(WNOWAIT) |
//! | VNODE | vnode.rs | inotify |
//!
//! Every filter is a `Filter` (filter.rs), made by one row of specs.rs, and
//! goes through the same flag state machine and delivery (registry.rs).
//! READ and WRITE keep their registrations in the fd table instead of
//! boxing them, as the cheapest home for the commonest registration.
//!
//! Every kernel object registered in the epoll set carries a token (ctx.rs)
//! rather than an fd, so reports for deleted or reused descriptors are
//! recognised and dropped. The queue's eventfd ("notify") is readable while
//! events are pending that no other fd reports (USER triggers, signal counts,
//! always-ready files), so `fileno()` is readable while `control` would
//! return something.
//!
//! Several handles may share a queue (`from_fd`, like two descriptors of one
//! BSD kqueue); the last one to go releases everything.
//!
//! Module order. The modules form no import cycle; each imports only the
//! ones above it (besides `crate::core`, whose system calls are
//! `core::linux::sys`):
//!
//! 1. consts.rs: the BSD constants (FreeBSD's values).
//! 2. knote.rs: a registration's plain data (`Info`, `State`, `Ready`,
//!    `Collect`).
//! 3. fdtable.rs: the table of descriptor slots (`FdTable`), and what tells
//!    READ from WRITE (`Dir`, `FileKind`); sources.rs: the per-queue state
//!    of the other shared sources (`SignalWatch`, `Inotify`).
//! 4. ctx.rs: the queue's kernel side (`Ctx`: epoll sets, notify eventfd,
//!    tokens, released udata), owning the fd table and the shared sources'
//!    state.
//! 5. filter.rs: the `Filter` trait and `Spec`.
//! 6. fds.rs: the fd table's slots against epoll, and `FdFilter`, the
//!    filter READ and WRITE share.
//! 7. read.rs, write.rs, timer.rs, user.rs, signal.rs, proc.rs, vnode.rs:
//!    the filters.
//! 8. specs.rs: the filter number -> implementation table.
//! 9. registry.rs (with registry/delivery.rs): the registrations and the
//!    flag state machine; this file, the handles over it.

mod consts;
mod ctx;
mod fds;
mod fdtable;
mod filter;
mod knote;
mod later;
mod proc;
mod read;
mod registry;
mod signal;
mod sources;
mod specs;
mod timer;
mod user;
mod vnode;
mod write;

#[cfg(test)]
mod testkit;
#[cfg(test)]
mod tests;

pub use consts::*;
pub use later::{is_deferred, measure_deferred};

use std::fmt;
use std::mem::MaybeUninit;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use crate::core::deadline::Deadline;
use crate::core::error::{OsError, OsResult};
use crate::core::fork;
use crate::core::handles::{self, lock, Handles};
pub use crate::core::kevent::KEvent;
use crate::core::linux::sys;
use registry::Registry;

/// The state every handle on one queue shares.
struct Shared {
    /// Unique per queue for the life of the process (see `queue_id`).
    id: u64,
    /// The fork generation the queue was made in (see fork.rs).
    generation: u64,
    reg: Mutex<Registry>,
    /// Nothing is kept in user space that a call must deliver or hand back
    /// (no active registration, no async source, no released token): a
    /// polling call then has nothing to do unless the kernel reports
    /// something, which it asks before taking the lock. Set at the end of
    /// every call, under the lock.
    quiet: AtomicBool,
}

/// Every live handle, for `from_fd`.
static HANDLES: Handles<Shared> = Handles::new();

/// How many epoll reports one epoll_wait takes at most (a stack buffer).
const BATCH: usize = 128;

pub struct Kqueue {
    fd: OwnedFd,
    /// None only once `close` has run.
    shared: Option<Arc<Shared>>,
}

impl fmt::Debug for Kqueue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Kqueue")
            .field("fd", &self.fd.as_raw_fd())
            .finish()
    }
}

impl Kqueue {
    /// A new, empty queue; its fd is a close-on-exec epoll descriptor.
    pub fn new() -> OsResult<Kqueue> {
        let generation = fork::generation();
        let fd = sys::epoll_create()?;
        let reg = Registry::new(fd.as_raw_fd())?;
        let shared = Arc::new(Shared {
            id: handles::next_queue_id(),
            generation,
            reg: Mutex::new(reg),
            quiet: AtomicBool::new(true),
        });
        HANDLES.lock().add(fd.as_raw_fd(), &shared);
        Ok(Kqueue {
            fd,
            shared: Some(shared),
        })
    }

    /// A second handle on the queue whose `fileno()` is `fd` (EINVAL if `fd`
    /// is not a live queue of this process). It owns a duplicate of `fd` and
    /// shares the registrations: a change through either is seen by both.
    pub fn from_fd(fd: RawFd) -> OsResult<Kqueue> {
        let generation = fork::generation();
        let mut handles = HANDLES.lock();
        let shared = handles
            .find(fd)
            .filter(|s| s.generation == generation)
            .ok_or(OsError(libc::EINVAL))?;
        let dup = sys::dup_cloexec(fd)?;
        handles.add(dup.as_raw_fd(), &shared);
        drop(handles);
        Ok(Kqueue {
            fd: dup,
            shared: Some(shared),
        })
    }

    /// Readable (poll/select/epoll) while events are pending.
    pub fn fileno(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// Identifies the queue: equal for every handle on the same queue (from
    /// `from_fd`), never reused by another queue of this process.
    pub fn queue_id(&self) -> u64 {
        self.shared.as_ref().map_or(0, |s| s.id)
    }

    /// True in a child after fork(): the queue must not be used there.
    pub fn is_forked(&self) -> bool {
        self.shared
            .as_ref()
            .is_some_and(|s| s.generation != fork::generation())
    }

    fn live(&self) -> OsResult<&Shared> {
        match &self.shared {
            Some(s) if s.generation == fork::generation() => Ok(s),
            _ => Err(OsError(libc::EBADF)),
        }
    }

    /// kevent(2): applies `changes` in order, then collects up to `maxevents`
    /// events into `out` (cleared first), waiting until `deadline` for the
    /// first one. See docs/kqueue-emulation.md for the error-reporting rules; EINTR is retried
    /// with the time left.
    pub fn control(
        &self,
        changes: &[KEvent],
        out: &mut Vec<KEvent>,
        maxevents: usize,
        deadline: Deadline,
    ) -> OsResult<()> {
        self.run(changes, out, None, maxevents, deadline)
    }

    /// `control`, then `take_released` into `released`, under one lock.
    pub fn control_releasing(
        &self,
        changes: &[KEvent],
        out: &mut Vec<KEvent>,
        released: &mut Vec<u64>,
        maxevents: usize,
        deadline: Deadline,
    ) -> OsResult<()> {
        self.run(changes, out, Some(released), maxevents, deadline)
    }

    fn run(
        &self,
        changes: &[KEvent],
        out: &mut Vec<KEvent>,
        released: Option<&mut Vec<u64>>,
        maxevents: usize,
        deadline: Deadline,
    ) -> OsResult<()> {
        out.clear();
        let shared = self.live()?;
        let epfd = self.fd.as_raw_fd();
        // The polling call on a quiet queue (see `Shared::quiet`): the
        // kernel is asked first, and an idle call ends there, lock-free.
        // Reports read here are taken in under the lock, as those of a
        // blocking wait are (which also waits without the lock).
        let mut first_buf = [MaybeUninit::<libc::epoll_event>::uninit(); BATCH];
        let mut first = None;
        if changes.is_empty() && maxevents > 0 && shared.quiet.load(Ordering::Acquire) {
            let reports = sys::epoll_wait(epfd, &mut first_buf, || 0)?;
            if reports.is_empty() && deadline.remaining_ms() == 0 {
                return Ok(());
            }
            first = Some(reports);
        }
        let mut reg = lock(&shared.reg);
        reg.cx.epfd = epfd;
        // The ready polling call on a queue still quiet under the lock: the
        // first batch is taken in at once (with nothing waiting in user
        // space each READ or WRITE report goes straight out, see
        // `fds::take_report`), and when that leaves the queue quiet the
        // call ends here, as the loop below would end after that batch.
        let mut absorbed = None;
        if let Some(reports) = first {
            if !reports.is_empty() && reports.len() < BATCH && reg.quiet() {
                first = None;
                reg.begin_call();
                let before = out.len();
                let more = reg.absorb(reports, out, maxevents);
                if !more && !out.is_empty() && reg.quiet() {
                    return Ok(());
                }
                absorbed = Some((reports.len(), before, more));
            }
        }
        let reported = reg.apply_changes(changes, out, maxevents);
        if !matches!(reported, Ok(false)) || maxevents == 0 {
            reg.refresh_notify();
            if let Some(released) = released {
                reg.take_released(released);
            }
            shared.quiet.store(reg.quiet(), Ordering::Release);
            return reported.map(drop);
        }
        let mut buf = [MaybeUninit::<libc::epoll_event>::uninit(); BATCH];
        // Always a whole batch, whatever maxevents: reports beyond maxevents
        // wait on the active list. Leaving them in the kernel's ready list
        // instead let one EV_CLEAR state change be delivered twice (once from
        // the active list, once more from its report in a later call), and
        // let the notify eventfd's report, taking the only slot when
        // maxevents is 1, hide a ready fd from a call with timeout 0. Both
        // found by tests/kqueue_model.rs.
        if absorbed.is_none() {
            reg.begin_call();
        }
        let mut block = false;
        let result = loop {
            let (got, before, more) = if let Some(taken) = absorbed.take() {
                taken // the first batch, taken in above
            } else {
                let waited = if let Some(reports) = first.take() {
                    Ok(reports)
                } else if block {
                    // Wait without the lock, so that other threads can use the
                    // queue meanwhile (e.g. to trigger a USER event that wakes us).
                    reg.settle();
                    drop(reg);
                    let got = sys::epoll_wait(epfd, &mut buf, || deadline.remaining_ms());
                    reg = lock(&shared.reg);
                    reg.cx.epfd = epfd;
                    got
                } else {
                    sys::epoll_wait(epfd, &mut buf, || 0)
                };
                let reports = match waited {
                    Ok(reports) => reports,
                    Err(e) => break Err(e),
                };
                let (got, before) = (reports.len(), out.len());
                // An empty batch changes nothing (the idle call).
                (got, before, got > 0 && reg.absorb(reports, out, maxevents))
            };
            reg.scan(out, maxevents);
            if (got == BATCH || more) && out.len() > before && out.len() < maxevents {
                // More may be ready than one batch held: take another. (Only
                // after progress: the notify eventfd alone can fill a batch.)
                block = false;
                continue;
            }
            if block && got > 0 && out.is_empty() && reg.only_stray() {
                // Woken by nothing but an entry that outlived its
                // registration (see Registry::absorb): it would wake every
                // wait at once while its file is ready elsewhere, so the
                // next wait is a millisecond later instead of a busy loop.
                // A stale slot found meanwhile goes as after a timeout.
                reg.sweep(1);
                drop(reg);
                let ms = deadline.remaining_ms();
                if ms != 0 {
                    let pause = if ms < 0 { 1 } else { ms.min(1) };
                    std::thread::sleep(std::time::Duration::from_millis(pause as u64));
                }
                reg = lock(&shared.reg);
                reg.cx.epfd = epfd;
            }
            if !out.is_empty() || deadline.remaining_ms() == 0 {
                if block && out.is_empty() {
                    // A wait that timed out: an idle moment to look for a
                    // descriptor closed behind the queue's back.
                    reg.sweep(1);
                }
                break Ok(());
            }
            block = true;
        };
        reg.settle();
        if let Some(released) = released {
            reg.take_released(released);
        }
        shared.quiet.store(reg.quiet(), Ordering::Release);
        result
    }

    /// Moves the udata tokens no registration references any more into `out`.
    /// Tokens of events returned by a `control` call are still valid until
    /// this is called after it.
    pub fn take_released(&self, out: &mut Vec<u64>) {
        if let Ok(shared) = self.live() {
            lock(&shared.reg).take_released(out);
        }
    }

    /// Closes this handle and returns the tokens released so far; when it is
    /// the last handle on the queue, every registration is deleted and its
    /// token returned too. (Dropping does the same, discarding the tokens.)
    pub fn close(mut self) -> Vec<u64> {
        let mut tokens = Vec::new();
        self.finish(Some(&mut tokens));
        tokens
    }

    /// `tokens`: where to put released tokens (None from Drop: then tokens
    /// still takeable through another handle are left for it).
    fn finish(&mut self, tokens: Option<&mut Vec<u64>>) {
        let Some(shared) = self.shared.take() else {
            return;
        };
        if shared.generation != fork::generation() {
            // Forked child: the epoll set, eventfds and inotify instance are
            // the parent's too. Touch nothing; exec or exit will close them.
            std::mem::forget(shared);
            return;
        }
        let me = self.fd.as_raw_fd();
        let mut handles = HANDLES.lock();
        handles.remove(me, &shared);
        if Arc::strong_count(&shared) > 1 {
            // Other handles remain. Give up our share under the HANDLES lock,
            // so that two handles closing at once cannot both think the
            // other one is the last.
            if let Some(tokens) = tokens {
                lock(&shared.reg).take_released(tokens);
            }
            drop(shared);
            return;
        }
        drop(handles);
        let mut lost = Vec::new();
        lock(&shared.reg).teardown(tokens.unwrap_or(&mut lost));
    }
}

impl Drop for Kqueue {
    /// Closes this handle's fd; the last handle releases every timerfd,
    /// pidfd, inotify watch and signal subscription (restoring signal masks).
    fn drop(&mut self) {
        self.finish(None);
    }
}
