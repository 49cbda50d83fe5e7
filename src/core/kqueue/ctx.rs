//! The kernel side of one queue that filters share: the epoll instance they
//! register in, the token table that maps `epoll_event.data` back to them,
//! and the per-queue helpers (fd table, inotify instance, signal watch).

use std::collections::HashMap;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::Arc;

use super::{fdtable::FdTable, signal::SignalWatch, sys, vnode::Inotify};
use crate::core::error::{OsError, OsResult};
use crate::core::fdhash::FdHash;

/// Reads a shared source (inotify, the signalfd) and says which
/// registrations it concerns: `(knote id, hint)` pairs.
pub type SourceFn = fn(&mut Ctx, &mut Vec<(u64, u32)>);

/// What an epoll token stands for. Tokens are never reused, so a report for
/// something deleted meanwhile (another thread, a stale epoll entry) finds
/// nothing and is dropped.
///
/// User fds (by far the most registrations) take no table entry: their
/// tokens carry the fd number (see `fd_token`), and fdtable::dispatch checks
/// the token against the fd's entry.
#[derive(Clone, Copy)]
pub enum Target {
    /// A resource owned by one registration (timerfd, pidfd).
    Knote(u64),
    /// A user fd: its READ and WRITE registrations share one epoll entry.
    Fd(RawFd),
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
    /// The notify eventfd is known to be readable: we wrote it and nobody
    /// has read it since.
    pub notify_set: bool,
    /// The notify eventfd may be readable without `notify_set` (epoll said
    /// so, or a signal subscription was just dropped): drain it at the next
    /// refresh.
    pub notify_stale: bool,
    targets: HashMap<u64, Target, FdHash>,
    next_token: u64,
    next_fd_token: u64,
    pub fds: FdTable,
    pub inotify: Inotify,
    pub signals: SignalWatch,
    /// Registrations a filter found dead; the registry removes them.
    pub doomed: Vec<u64>,
    /// Incremented for each batch of epoll reports, so that fd filters can
    /// tell a fresh report from an old one.
    pub round: u64,
}

const FD_TOKEN: u64 = 1 << 63;
const FD_SHIFT: u32 = 33;
const FD_NUMBER: u64 = (1 << 30) - 1;
const FD_COUNT: u64 = (1 << FD_SHIFT) - 1;

/// The notify eventfd's report: Registry::refresh_notify reads its state.
fn notify_source(cx: &mut Ctx, _: &mut Vec<(u64, u32)>) {
    if !cx.notify_set {
        cx.notify_stale = true;
    }
}

impl Ctx {
    pub fn new(epfd: RawFd) -> OsResult<Ctx> {
        let notify = Arc::new(sys::eventfd()?);
        let mut cx = Ctx {
            epfd,
            notify,
            notify_set: false,
            notify_stale: false,
            targets: HashMap::default(),
            next_token: 1,
            next_fd_token: 1,
            fds: FdTable::default(),
            inotify: Inotify::default(),
            signals: SignalWatch::default(),
            doomed: Vec::new(),
            round: 0,
        };
        let token = cx.add_target(Target::Source(notify_source));
        let fd = cx.notify.as_raw_fd();
        epoll_add(epfd, fd, libc::EPOLLIN as u32, token)?;
        Ok(cx)
    }

    /// A fresh token for `target`.
    pub fn add_target(&mut self, target: Target) -> u64 {
        let token = self.next_token;
        self.next_token += 1;
        self.targets.insert(token, target);
        token
    }

    /// A fresh token for the fd entry of `fd` (no table entry: the token
    /// says `Target::Fd(fd)` by itself). Its top bit marks it; the next 30
    /// bits hold the fd (Linux caps descriptors below 2^30, fs.nr_open); the
    /// low 33 bits count, so a token repeats only after 2^33 fd entries.
    pub fn fd_token(&mut self, fd: RawFd) -> u64 {
        let n = self.next_fd_token & FD_COUNT;
        self.next_fd_token += 1;
        FD_TOKEN | ((fd as u64 & FD_NUMBER) << FD_SHIFT) | n
    }

    pub fn forget_target(&mut self, token: u64) {
        self.targets.remove(&token);
    }

    pub fn target(&self, token: u64) -> Option<Target> {
        if token & FD_TOKEN != 0 {
            return Some(Target::Fd(((token >> FD_SHIFT) & FD_NUMBER) as RawFd));
        }
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

/// EPOLL_CTL_MOD, turning ENOENT into an ADD (the kernel dropped the entry
/// when the file was closed; the fd number now names a new file).
pub fn epoll_mod(epfd: RawFd, fd: RawFd, events: u32, token: u64) -> OsResult<()> {
    match sys::epoll_ctl(epfd, libc::EPOLL_CTL_MOD, fd, events, token) {
        Err(OsError(libc::ENOENT)) => sys::epoll_ctl(epfd, libc::EPOLL_CTL_ADD, fd, events, token),
        other => other,
    }
}

/// EPOLL_CTL_DEL; failures only mean the entry is already gone.
pub fn epoll_del(epfd: RawFd, fd: RawFd) {
    let _ = sys::epoll_ctl(epfd, libc::EPOLL_CTL_DEL, fd, 0, 0);
}
