//! The poll set behind `select.poll()`: a `pollfd` array kept in step with the
//! registrations, so that `poll` on an unchanged set rebuilds nothing.
//!
//! CPython rebuilds its array from a dict after any change; here register,
//! modify and unregister edit the array in place (an fd -> slot index map keeps
//! that O(1)), so the array is never rebuilt at all.

use std::os::fd::RawFd;

use super::deadline::Deadline;
use super::error::{OsError, OsResult};
use super::fdmap::FdMap;
use super::sys::retry_eintr;

#[derive(Default)]
pub struct PollSet {
    fds: Vec<libc::pollfd>,
    slot: FdMap,
    /// How many entries the last `poll` reported ready.
    ready: usize,
}

impl PollSet {
    pub fn new() -> PollSet {
        PollSet::default()
    }

    pub fn len(&self) -> usize {
        self.fds.len()
    }

    pub fn is_empty(&self) -> bool {
        self.fds.is_empty()
    }

    /// Adds `fd`, or replaces its mask if it is already registered. ENOMEM
    /// (nothing changed) if the set cannot grow.
    pub fn register(&mut self, fd: RawFd, events: u16) -> OsResult<()> {
        let events = events as libc::c_short;
        match self.slot.get(fd) {
            Some(i) => self.fds[i].events = events,
            None => {
                if self.fds.try_reserve(1).is_err() || !self.slot.insert(fd, self.fds.len()) {
                    return Err(OsError(libc::ENOMEM));
                }
                self.fds.push(libc::pollfd {
                    fd,
                    events,
                    revents: 0,
                });
            }
        }
        self.ready = 0;
        Ok(())
    }

    /// Changes the mask of a registered fd; false if it is not registered.
    pub fn modify(&mut self, fd: RawFd, events: u16) -> bool {
        match self.slot.get(fd) {
            Some(i) => {
                self.fds[i].events = events as libc::c_short;
                self.ready = 0;
                true
            }
            None => false,
        }
    }

    /// Removes `fd`; false if it was not registered.
    pub fn unregister(&mut self, fd: RawFd) -> bool {
        let Some(i) = self.slot.remove(fd) else {
            return false;
        };
        self.fds.swap_remove(i);
        if let Some(moved) = self.fds.get(i) {
            // moved.fd is in the map already: this overwrites, never grows.
            self.slot.insert(moved.fd, i);
        }
        self.ready = 0;
        true
    }

    /// Waits until a registered fd is ready or the deadline passes, retrying
    /// after EINTR with the time left. Returns how many fds are ready.
    pub fn poll(&mut self, deadline: Deadline) -> OsResult<usize> {
        self.ready = 0;
        let n = retry_eintr(|| sys_poll(&mut self.fds, deadline))?;
        self.ready = n;
        Ok(n)
    }

    /// The `(fd, revents)` pairs the last `poll` reported, in array order.
    pub fn ready(&self) -> impl Iterator<Item = (RawFd, u16)> + '_ {
        self.fds
            .iter()
            .filter(|p| p.revents != 0)
            .take(self.ready)
            .map(|p| (p.fd, p.revents as u16))
    }

    /// How many entries the last `poll` reported ready.
    pub fn ready_count(&self) -> usize {
        self.ready
    }
}

/// One wait on `fds` with the deadline's time left (see sys.rs).
pub(crate) use super::sys::poll as sys_poll;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::testutil::{pipe, write_all};
    use std::os::fd::AsRawFd;
    use std::time::{Duration, Instant};

    #[test]
    fn register_modify_unregister_in_place() {
        let mut set = PollSet::new();
        set.register(3, 1).unwrap();
        set.register(4, 4).unwrap();
        set.register(3, 5).unwrap();
        assert_eq!(set.len(), 2);
        assert!(set.modify(4, 1));
        assert!(!set.modify(9, 1));
        assert!(set.unregister(3));
        assert!(!set.unregister(3));
        assert_eq!(set.len(), 1);
        assert_eq!(set.fds[0].fd, 4);
        assert_eq!(set.slot.get(4), Some(0));
    }

    #[test]
    fn reports_readable_pipe_only() {
        let (r1, _w1) = pipe();
        let (r2, w2) = pipe();
        let mut set = PollSet::new();
        set.register(r1.as_raw_fd(), libc::POLLIN as u16).unwrap();
        set.register(r2.as_raw_fd(), libc::POLLIN as u16).unwrap();
        assert_eq!(set.poll(Deadline::Immediate), Ok(0));
        write_all(&w2, b"x");
        assert_eq!(set.poll(Deadline::Immediate), Ok(1));
        let got: Vec<_> = set.ready().collect();
        assert_eq!(got, vec![(r2.as_raw_fd(), libc::POLLIN as u16)]);
    }

    #[test]
    fn closed_fd_is_pollnval() {
        let (r, w) = pipe();
        let fd = r.as_raw_fd();
        drop(r);
        let mut set = PollSet::new();
        set.register(fd, libc::POLLIN as u16).unwrap();
        assert_eq!(set.poll(Deadline::Immediate), Ok(1));
        assert_eq!(set.ready().next(), Some((fd, libc::POLLNVAL as u16)));
        drop(w);
    }

    #[test]
    fn timeout_is_kept() {
        let (r, _w) = pipe();
        let mut set = PollSet::new();
        set.register(r.as_raw_fd(), libc::POLLIN as u16).unwrap();
        let t = Instant::now();
        let n = set.poll(Deadline::after(Some(Duration::from_millis(30))));
        assert_eq!(n, Ok(0));
        assert!(t.elapsed() >= Duration::from_millis(30));
    }
}
