//! `select.select` built on `poll(2)`, so that any descriptor number works:
//! there is no `FD_SETSIZE` (1024) limit as with `select(2)`.

use std::os::fd::RawFd;

use super::deadline::{retry_eintr, Deadline};
use super::error::{OsError, OsResult};
use super::pollset::sys_poll;

/// Which of the three lists an entry came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Interest {
    Read,
    Write,
    Except,
}

impl Interest {
    fn events(self) -> libc::c_short {
        match self {
            Interest::Read => libc::POLLIN,
            Interest::Write => libc::POLLOUT,
            Interest::Except => libc::POLLPRI,
        }
    }

    /// The `revents` bits that make an entry ready, as `select(2)` counts them:
    /// a hung-up or errored descriptor is readable (and writable on error).
    fn ready_bits(self) -> libc::c_short {
        match self {
            Interest::Read => libc::POLLIN | libc::POLLHUP | libc::POLLERR,
            Interest::Write => libc::POLLOUT | libc::POLLERR,
            Interest::Except => libc::POLLPRI,
        }
    }
}

/// One `select` call: entries pushed in list order, then `wait`. The buffer can
/// be reused across calls with `clear`.
#[derive(Default)]
pub struct Select {
    entries: Vec<(libc::pollfd, Interest)>,
    pfds: Vec<libc::pollfd>,
}

impl Select {
    pub fn new() -> Select {
        Select::default()
    }

    pub fn clear(&mut self) {
        self.entries.clear();
    }

    pub fn push(&mut self, fd: RawFd, interest: Interest) {
        let pfd = libc::pollfd {
            fd,
            events: interest.events(),
            revents: 0,
        };
        self.entries.push((pfd, interest));
    }

    /// Waits for any entry to be ready. A descriptor that is not open fails the
    /// whole call with EBADF, as `select(2)` does.
    pub fn wait(&mut self, deadline: Deadline) -> OsResult<usize> {
        self.pfds.clear();
        self.pfds.extend(self.entries.iter().map(|e| e.0));
        let n = retry_eintr(|| sys_poll(&mut self.pfds, deadline))?;
        if n > 0 && self.pfds.iter().any(|p| p.revents & libc::POLLNVAL != 0) {
            return Err(OsError(libc::EBADF));
        }
        for (entry, pfd) in self.entries.iter_mut().zip(&self.pfds) {
            entry.0.revents = pfd.revents;
        }
        Ok(n)
    }

    /// Whether entry `i` (in push order) is ready for what it was pushed for.
    pub fn is_ready(&self, i: usize) -> bool {
        let (pfd, interest) = &self.entries[i];
        pfd.revents & interest.ready_bits() != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::testutil::{pipe, raise_nofile_limit, socketpair, write_all};
    use std::os::fd::AsRawFd;
    use std::time::{Duration, Instant};

    #[test]
    fn read_write_readiness() {
        let (r, w) = pipe();
        let mut s = Select::new();
        s.push(r.as_raw_fd(), Interest::Read);
        s.push(w.as_raw_fd(), Interest::Write);
        assert_eq!(s.wait(Deadline::Immediate), Ok(1));
        assert!(!s.is_ready(0));
        assert!(s.is_ready(1));
        write_all(&w, b"abc");
        s.wait(Deadline::Immediate).unwrap();
        assert!(s.is_ready(0));
    }

    #[test]
    fn hangup_counts_as_readable() {
        let (a, b) = socketpair();
        drop(b);
        let mut s = Select::new();
        s.push(a.as_raw_fd(), Interest::Read);
        s.push(a.as_raw_fd(), Interest::Except);
        s.wait(Deadline::Immediate).unwrap();
        assert!(s.is_ready(0));
        assert!(!s.is_ready(1));
    }

    #[test]
    fn closed_descriptor_is_ebadf() {
        let (r, _w) = pipe();
        let fd = r.as_raw_fd();
        drop(r);
        let mut s = Select::new();
        s.push(fd, Interest::Read);
        assert_eq!(s.wait(Deadline::Immediate), Err(OsError(libc::EBADF)));
    }

    #[test]
    fn empty_set_sleeps_for_the_timeout() {
        let mut s = Select::new();
        let t = Instant::now();
        assert_eq!(
            s.wait(Deadline::after(Some(Duration::from_millis(20)))),
            Ok(0)
        );
        assert!(t.elapsed() >= Duration::from_millis(20));
    }

    #[test]
    fn descriptors_above_1024() {
        raise_nofile_limit(4096);
        let (r, w) = pipe();
        // SAFETY: F_DUPFD_CLOEXEC duplicates an open fd to the lowest free
        // number >= 1500; the result is closed below.
        let high = unsafe { libc::fcntl(r.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 1500) };
        assert!(high >= 1500, "could not dup above 1500");
        write_all(&w, b"x");
        let mut s = Select::new();
        s.push(high, Interest::Read);
        assert_eq!(s.wait(Deadline::Immediate), Ok(1));
        assert!(s.is_ready(0));
        // SAFETY: high was opened above and is closed once.
        unsafe { libc::close(high) };
    }
}
