//! The kernel side of one queue that filters share: the epoll instance they
//! register in, the token table that maps `epoll_event.data` back to them,
//! and the per-queue helpers (fd table, inotify instance, signal watch).
//!
//! User descriptors have one epoll entry per direction, so that READ and
//! WRITE of one descriptor are as independent as on BSD: READ entries are in
//! the queue's own epoll set, WRITE entries in a second one (`wset`), itself
//! in the first under the token `WSET`, read when it reports.
//!
//! Tokens come in three kinds: `NOTIFY` (the queue's own eventfd), `WSET`, fd tokens
//! (the top bit set: a descriptor number and its slot's generation, decoded
//! by fdtable.rs without any table), and small numbers from `add_target`
//! for everything else (timerfds, pidfds, the shared sources).

use std::collections::HashMap;

use crate::core::fdhash::FdHash;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::Arc;

use super::fdtable::FdTable;
use super::sources::{Inotify, SignalWatch};
use crate::core::error::{OsError, OsResult};
use crate::core::linux::sys;

/// Reads a shared source (inotify, the signalfd) and says which
/// registrations it concerns: `(knote id, hint)` pairs.
pub type SourceFn = fn(&mut Ctx, &mut Vec<(u64, u32)>);

/// What an epoll token stands for. Tokens are never reused, so a report for
/// something deleted meanwhile (another thread, a stale epoll entry) finds
/// nothing and is dropped.
#[derive(Clone, Copy)]
pub enum Target {
    /// A resource owned by one registration (timerfd, pidfd).
    Knote(u64),
    /// A descriptor shared by several registrations.
    Source(SourceFn),
}

pub struct Ctx {
    /// The epoll descriptor of the handle doing the current call; -1 during
    /// teardown, when the epoll instance is already gone.
    pub epfd: RawFd,
    /// Readable while the queue has events no kernel fd reports by itself
    /// (see Registry::refresh_notify); shared with the signal hub.
    pub notify: Arc<OwnedFd>,
    /// The epoll set of the WRITE entries (see the header).
    pub wset: OwnedFd,
    targets: HashMap<u64, Target, FdHash>,
    next_token: u64,
    pub fds: FdTable,
    pub inotify: Inotify,
    pub signals: SignalWatch,
    /// Descriptors whose fd slot was found stale (closed, or the number now
    /// names another file): the registry drops their registrations.
    pub doomed: Vec<RawFd>,
    /// udata tokens no registration references any more (for
    /// `Kqueue::take_released`).
    pub released: Vec<u64>,
    /// Incremented for each batch of epoll reports, so that fd filters can
    /// tell a fresh report from an old one.
    pub round: u64,
    /// The clock (`sys::coarse_ms`) for the current batch of epoll
    /// reports, read at its first use; 0 until then.
    pub now_ms: u32,
}

/// The token of the queue's notify eventfd. Its state is read by
/// Registry::refresh_notify, not through a target.
pub const NOTIFY: u64 = 1;
/// The token of `wset` in the queue's epoll set.
pub const WSET: u64 = 2;

impl Ctx {
    /// The clock for the current batch of reports, read once per batch.
    #[inline]
    pub fn now_ms(&mut self) -> u32 {
        if self.now_ms == 0 {
            self.now_ms = sys::coarse_ms();
        }
        self.now_ms
    }

    pub fn new(epfd: RawFd) -> OsResult<Ctx> {
        let notify = Arc::new(sys::eventfd()?);
        let wset = sys::epoll_create()?;
        let cx = Ctx {
            epfd,
            notify,
            wset,
            targets: HashMap::default(),
            next_token: WSET + 1,
            fds: FdTable::default(),
            inotify: Inotify::default(),
            signals: SignalWatch::default(),
            doomed: Vec::new(),
            released: Vec::new(),
            round: 0,
            now_ms: 0,
        };
        let fd = cx.notify.as_raw_fd();
        epoll_add(epfd, fd, libc::EPOLLIN as u32, NOTIFY)?;
        epoll_add(epfd, cx.wset.as_raw_fd(), libc::EPOLLIN as u32, WSET)?;
        Ok(cx)
    }

    /// The epoll set holding the entries of direction `dir` (READ 0, WRITE
    /// 1); -1 during teardown.
    pub fn set(&self, dir: usize) -> RawFd {
        if dir == 0 || self.epfd < 0 {
            self.epfd
        } else {
            self.wset.as_raw_fd()
        }
    }

    /// A registration's udata token is no longer referenced.
    pub fn release(&mut self, udata: u64) {
        if udata != 0 {
            self.released.push(udata);
        }
    }

    /// A fresh token for `target`.
    pub fn add_target(&mut self, target: Target) -> u64 {
        let token = self.next_token;
        self.next_token += 1;
        self.targets.insert(token, target);
        token
    }

    pub fn forget_target(&mut self, token: u64) {
        self.targets.remove(&token);
    }

    pub fn target(&self, token: u64) -> Option<Target> {
        self.targets.get(&token).copied()
    }
}

/// EPOLL_CTL_ADD, turning EEXIST into a MOD (the entry survived from an
/// earlier registration of the same open file).
pub fn epoll_add(epfd: RawFd, fd: RawFd, events: u32, token: u64) -> OsResult<()> {
    match sys::epoll_ctl(epfd, libc::EPOLL_CTL_ADD, fd, events, token) {
        Err(OsError(libc::EEXIST)) => sys::epoll_ctl(epfd, libc::EPOLL_CTL_MOD, fd, events, token),
        other => other,
    }
}

/// Puts a registration's own descriptor (a timerfd, a pidfd) in the epoll
/// set while `enabled`, and takes it out otherwise; `in_epoll` records which.
pub fn watch_own_fd(
    epfd: RawFd,
    fd: RawFd,
    token: u64,
    enabled: bool,
    in_epoll: &mut bool,
) -> OsResult<()> {
    if enabled && !*in_epoll {
        epoll_add(epfd, fd, libc::EPOLLIN as u32, token)?;
        *in_epoll = true;
    } else if !enabled {
        unwatch_own_fd(epfd, fd, in_epoll);
    }
    Ok(())
}

/// Takes a registration's own descriptor out of the epoll set if
/// `watch_own_fd` put it there.
pub fn unwatch_own_fd(epfd: RawFd, fd: RawFd, in_epoll: &mut bool) {
    if *in_epoll {
        epoll_del(epfd, fd);
        *in_epoll = false;
    }
}

/// EPOLL_CTL_DEL; failures only mean the entry is already gone.
pub fn epoll_del(epfd: RawFd, fd: RawFd) {
    let _ = sys::epoll_ctl(epfd, libc::EPOLL_CTL_DEL, fd, 0, 0);
}

/// Whether `fd` still names the file it was put in the epoll set with, at no
/// cost to that entry: the kernel finds an entry by (the file `fd` names now,
/// `fd`), so EPOLL_CTL_ADD fails with EEXIST, changing nothing, exactly when
/// it does. EBADF: `fd` is closed. Otherwise the number names another file
/// (ENOENT); an entry added for it by this probe is taken out at once (its
/// token, 0, names nothing, should another thread see it meanwhile).
pub fn probe(epfd: RawFd, fd: RawFd) -> OsResult<()> {
    match sys::epoll_ctl(epfd, libc::EPOLL_CTL_ADD, fd, 0, 0) {
        Err(OsError(libc::EEXIST)) => Ok(()),
        Err(OsError(libc::EBADF)) => Err(OsError(libc::EBADF)),
        Ok(()) => {
            epoll_del(epfd, fd);
            Err(OsError(libc::ENOENT))
        }
        Err(_) => Err(OsError(libc::ENOENT)),
    }
}
