//! An epoll instance that owns its descriptor (close-on-exec, closed on drop)
//! and reuses one event buffer across waits.

use std::collections::HashSet;
use std::os::fd::{AsRawFd, RawFd};

use super::sys;
use crate::core::deadline::Deadline;
use crate::core::error::{OsError, OsResult};

/// Smallest event buffer of an unlimited wait.
const MIN_EVENTS: usize = 16;

/// Largest buffer kept between waits (48 KiB): a burst of more ready events,
/// or a large `maxevents`, gets a buffer for that wait only.
const KEEP_EVENTS: usize = 4096;

/// The kernel's limit on `maxevents` (`EP_MAX_EVENTS`): more is EINVAL,
/// checked before any buffer is allocated for it.
const MAX_EVENTS: usize = libc::c_int::MAX as usize / std::mem::size_of::<libc::epoll_event>();

pub struct Epoll {
    fd: sys::AdoptedFd,
    /// The last wait's events; its capacity is the buffer, allocated
    /// fallibly and never zero-filled (the kernel writes what it returns).
    events: Vec<libc::epoll_event>,
    /// How many events the last unlimited wait returned: sizes the next
    /// one's buffer, so a steady load needs one system call per wait. Not a
    /// count of registrations, which would grow with every descriptor closed
    /// without `unregister`.
    last_ready: usize,
}

impl Epoll {
    /// A new epoll instance; `cloexec` is forced on, as in Python.
    pub fn new() -> OsResult<Epoll> {
        sys::epoll_create().map(|fd| Epoll::wrap(fd.into()))
    }

    /// Takes ownership of an existing epoll descriptor, as Python's `fromfd`
    /// does: closing the object closes `fd`. EBADF if `fd` is not open.
    pub fn from_fd(fd: RawFd) -> OsResult<Epoll> {
        sys::check_fd(fd)?;
        // fd is open, and the caller hands its ownership over (the documented
        // contract of fromfd); it may still close it behind our back.
        Ok(Epoll::wrap(sys::AdoptedFd::new(fd)))
    }

    fn wrap(fd: sys::AdoptedFd) -> Epoll {
        Epoll {
            fd,
            events: Vec::new(),
            last_ready: 0,
        }
    }

    pub fn fileno(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    fn ctl(&self, op: libc::c_int, fd: RawFd, events: u32) -> OsResult<()> {
        sys::epoll_ctl(self.fd.as_raw_fd(), op, fd, events, fd as u32 as u64)
    }

    /// EPOLL_CTL_ADD: EEXIST if `fd` is already registered.
    pub fn register(&mut self, fd: RawFd, events: u32) -> OsResult<()> {
        self.ctl(libc::EPOLL_CTL_ADD, fd, events)
    }

    /// EPOLL_CTL_MOD: ENOENT if `fd` is not registered.
    pub fn modify(&mut self, fd: RawFd, events: u32) -> OsResult<()> {
        self.ctl(libc::EPOLL_CTL_MOD, fd, events)
    }

    /// EPOLL_CTL_DEL: ENOENT if `fd` is not registered.
    pub fn unregister(&mut self, fd: RawFd) -> OsResult<()> {
        self.ctl(libc::EPOLL_CTL_DEL, fd, 0)
    }

    /// Waits for events, up to `maxevents` (`None`: every ready event), and
    /// returns how many arrived; `ready` lists them. EINVAL for a
    /// `maxevents` beyond the kernel's limit, ENOMEM if its buffer cannot be
    /// allocated.
    #[inline]
    pub fn wait(&mut self, deadline: Deadline, maxevents: Option<usize>) -> OsResult<usize> {
        let cap = match maxevents {
            Some(n) if n > MAX_EVENTS => return Err(OsError(libc::EINVAL)),
            Some(n) => n.max(1),
            // One slot more than last time: a full buffer then means more
            // events are ready, and `drain` collects them.
            None => (self.last_ready + 1).clamp(MIN_EVENTS, KEEP_EVENTS),
        };
        // A buffer left large by a burst or a large maxevents goes now.
        if self.events.capacity() > cap.max(KEEP_EVENTS) {
            self.events = Vec::new();
        }
        self.events.clear();
        let mut n = self.wait_into(cap, deadline)?;
        if maxevents.is_none() {
            if n == cap {
                n = self.drain(n)?;
            }
            self.last_ready = n;
        }
        Ok(n)
    }

    /// One `epoll_wait` appending at most `len` events to `events`, retried
    /// after EINTR with the time left.
    #[inline]
    fn wait_into(&mut self, len: usize, deadline: Deadline) -> OsResult<usize> {
        let start = self.events.len();
        if self.events.capacity() - start < len && self.events.try_reserve_exact(len).is_err() {
            return Err(OsError(libc::ENOMEM));
        }
        let len = len.min(libc::c_int::MAX as usize);
        let epfd = self.fd.as_raw_fd();
        let buf = &mut self.events.spare_capacity_mut()[..len];
        let n = sys::epoll_wait(epfd, buf, || deadline.remaining_ms())?.len();
        // SAFETY: the kernel initialised the first n (<= len) spare slots.
        unsafe { self.events.set_len(start + n.min(len)) };
        Ok(n.min(len))
    }

    /// After an unlimited wait filled its whole buffer, collects the ready
    /// events that did not fit, without waiting. The kernel puts a reported
    /// level-triggered descriptor back at the end of its ready list, so the
    /// first event seen twice means every ready event has been collected.
    fn drain(&mut self, mut n: usize) -> OsResult<usize> {
        let mut seen: HashSet<u64> = HashSet::new();
        if seen.try_reserve(n * 2).is_err() {
            return Err(OsError(libc::ENOMEM));
        }
        seen.extend(self.events.iter().map(|e| e.u64));
        loop {
            let space = n.min(MAX_EVENTS - n).max(1);
            let m = self.wait_into(space, Deadline::Immediate)?;
            if seen.try_reserve(m).is_err() {
                return Err(OsError(libc::ENOMEM));
            }
            let mut kept = n;
            let mut repeated = false;
            for j in n..n + m {
                let ev = self.events[j];
                if seen.insert(ev.u64) {
                    self.events[kept] = ev;
                    kept += 1;
                } else {
                    repeated = true;
                }
            }
            self.events.truncate(kept);
            n = kept;
            if repeated || m < space {
                return Ok(n);
            }
        }
    }

    /// Releases a buffer larger than what is kept between waits, once the
    /// last wait's events have been read.
    #[inline]
    pub fn trim(&mut self) {
        if self.events.capacity() > KEEP_EVENTS {
            self.events = Vec::new();
        }
    }

    /// How many events the last `wait` reported.
    pub fn ready_count(&self) -> usize {
        self.events.len()
    }

    /// The `(fd, events)` pairs of the last `wait`.
    pub fn ready(&self) -> impl ExactSizeIterator<Item = (RawFd, u32)> + '_ {
        self.events.iter().map(|e| {
            let ev = *e;
            (ev.u64 as u32 as RawFd, ev.events)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::error::OsError;
    use crate::core::testutil::{pipe, write_all};

    const IN: u32 = libc::EPOLLIN as u32;

    #[test]
    fn register_twice_is_eexist_and_missing_is_enoent() {
        let (r, _w) = pipe();
        let mut ep = Epoll::new().unwrap();
        ep.register(r.as_raw_fd(), IN).unwrap();
        assert_eq!(ep.register(r.as_raw_fd(), IN), Err(OsError(libc::EEXIST)));
        ep.unregister(r.as_raw_fd()).unwrap();
        assert_eq!(ep.unregister(r.as_raw_fd()), Err(OsError(libc::ENOENT)));
        assert_eq!(ep.modify(r.as_raw_fd(), IN), Err(OsError(libc::ENOENT)));
    }

    #[test]
    fn reports_ready_fds() {
        let (r, w) = pipe();
        let mut ep = Epoll::new().unwrap();
        ep.register(r.as_raw_fd(), IN).unwrap();
        assert_eq!(ep.wait(Deadline::Immediate, None), Ok(0));
        write_all(&w, b"hi");
        assert_eq!(ep.wait(Deadline::Immediate, None), Ok(1));
        assert_eq!(ep.ready().collect::<Vec<_>>(), vec![(r.as_raw_fd(), IN)]);
    }

    #[test]
    fn all_ready_events_come_back_without_a_limit() {
        let pipes: Vec<_> = (0..100).map(|_| pipe()).collect();
        let mut ep = Epoll::new().unwrap();
        for (r, w) in &pipes {
            ep.register(r.as_raw_fd(), IN).unwrap();
            write_all(w, b"x");
        }
        assert_eq!(ep.wait(Deadline::Immediate, None), Ok(100));
        assert_eq!(ep.wait(Deadline::Immediate, Some(7)), Ok(7));
    }

    #[test]
    fn every_ready_event_of_a_shared_queue_comes_back() {
        let pipes: Vec<_> = (0..50).map(|_| pipe()).collect();
        let mut ep = Epoll::new().unwrap();
        for (r, w) in &pipes {
            ep.register(r.as_raw_fd(), IN).unwrap();
            write_all(w, b"x");
        }
        // A second object on the same queue that registered nothing itself.
        // SAFETY: dup of an open fd; the new fd is owned by `shared` alone.
        let dup = unsafe { libc::dup(ep.fileno()) };
        let mut shared = Epoll::from_fd(dup).unwrap();
        for _ in 0..3 {
            assert_eq!(shared.wait(Deadline::Immediate, None), Ok(50));
            let mut fds: Vec<_> = shared.ready().map(|(fd, _)| fd).collect();
            fds.sort_unstable();
            fds.dedup();
            assert_eq!(fds.len(), 50);
        }
        assert_eq!(shared.wait(Deadline::Immediate, Some(7)), Ok(7));
    }

    #[test]
    fn exactly_as_many_ready_as_registered_needs_one_call() {
        let pipes: Vec<_> = (0..20).map(|_| pipe()).collect();
        let mut ep = Epoll::new().unwrap();
        for (r, w) in &pipes {
            ep.register(r.as_raw_fd(), IN | libc::EPOLLET as u32)
                .unwrap();
            write_all(w, b"x");
        }
        assert_eq!(ep.wait(Deadline::Immediate, None), Ok(20));
        // edge-triggered: reported once
        assert_eq!(ep.wait(Deadline::Immediate, None), Ok(0));
    }

    #[test]
    fn descriptor_is_cloexec() {
        let ep = Epoll::new().unwrap();
        // SAFETY: F_GETFD only reads the flags of an open fd.
        let flags = unsafe { libc::fcntl(ep.fileno(), libc::F_GETFD) };
        assert_eq!(flags & libc::FD_CLOEXEC, libc::FD_CLOEXEC);
    }
}
