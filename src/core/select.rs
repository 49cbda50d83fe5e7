//! `select.select` built on `poll(2)`, so that any descriptor number works:
//! there is no `FD_SETSIZE` (1024) limit as with `select(2)`. On macOS, whose
//! poll(2) rejects terminals and devices, on select(2) with sets sized to the
//! highest descriptor instead (select_darwin.rs).

use std::os::fd::RawFd;

use super::deadline::Deadline;
use super::error::{OsError, OsResult};
#[cfg(not(target_os = "macos"))]
use super::pollset::sys_poll;
#[cfg(target_os = "macos")]
use super::select_darwin::sys_select as sys_poll;
use super::sys::retry_eintr;

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
}

/// For an entry's `events` (what [`Interest::events`] gave it; the kernel never
/// changes it, so it records the interest and no second array is needed): the
/// `revents` bits that make it ready, as `select(2)` counts them (a hung-up or
/// errored descriptor is readable, and writable on error), and the index of
/// its interest.
fn readiness(events: libc::c_short) -> (libc::c_short, usize) {
    match events {
        libc::POLLIN => (libc::POLLIN | libc::POLLHUP | libc::POLLERR, 0),
        libc::POLLOUT => (libc::POLLOUT | libc::POLLERR, 1),
        _ => (libc::POLLPRI, 2),
    }
}

/// One `select` call: entries pushed in list order, then `wait`. The buffer can
/// be reused across calls with `clear`.
#[derive(Default)]
pub struct Select {
    /// Handed to the kernel as is: one entry per pushed descriptor. After
    /// `wait`, an entry's `revents` is non-zero exactly when it is ready.
    pfds: Vec<libc::pollfd>,
    /// Ready entries per interest (in `Interest` order) after `wait`.
    counts: [usize; 3],
}

impl Select {
    pub fn new() -> Select {
        Select::default()
    }

    pub fn clear(&mut self) {
        self.pfds.clear();
        self.counts = [0; 3];
    }

    /// Makes room for `n` more entries; false if the memory is not there.
    pub fn try_reserve(&mut self, n: usize) -> bool {
        self.pfds.try_reserve(n).is_ok()
    }

    /// Adds an entry (after `try_reserve`, pushes up to its count never
    /// allocate).
    #[inline]
    pub fn push(&mut self, fd: RawFd, interest: Interest) {
        self.pfds.push(libc::pollfd {
            fd,
            events: interest.events(),
            revents: 0,
        });
    }

    /// Waits for any entry to be ready; returns how many entries are (0 on
    /// timeout). A descriptor that is not open fails the whole call with EBADF,
    /// as `select(2)` does.
    pub fn wait(&mut self, deadline: Deadline) -> OsResult<usize> {
        self.counts = [0; 3];
        let n = retry_eintr(|| sys_poll(&mut self.pfds, deadline))?;
        // poll counts the entries with any revents, so the scan can stop at
        // the n-th of them: with one ready descriptor among many, it ends there.
        let mut left = n;
        for p in self.pfds.iter_mut() {
            if left == 0 {
                break;
            }
            if p.revents == 0 {
                continue;
            }
            left -= 1;
            if p.revents & libc::POLLNVAL != 0 {
                self.counts = [0; 3];
                return Err(OsError(libc::EBADF));
            }
            // Keep only the bits that count, so that readers of the entries
            // need test nothing but revents != 0.
            let (bits, k) = readiness(p.events);
            p.revents &= bits;
            if p.revents != 0 {
                self.counts[k] += 1;
            }
        }
        Ok(self.counts.iter().sum())
    }

    /// How many entries pushed with `interest` the last `wait` found ready.
    pub fn ready_count(&self, interest: Interest) -> usize {
        self.counts[readiness(interest.events()).1]
    }

    /// The positions, relative to `from`, of the entries from `from` on that
    /// the last `wait` found ready, ascending.
    pub fn ready_from(&self, from: usize) -> impl Iterator<Item = usize> + '_ {
        self.pfds
            .get(from..)
            .unwrap_or_default()
            .iter()
            .enumerate()
            .filter(|(_, p)| p.revents != 0)
            .map(|(i, _)| i)
    }

    /// The descriptor of entry `i` (in push order).
    pub fn fd_at(&self, i: usize) -> Option<RawFd> {
        self.pfds.get(i).map(|p| p.fd)
    }

    /// Whether entry `i` (in push order) is ready for what it was pushed for.
    #[cfg(test)]
    fn is_ready(&self, i: usize) -> bool {
        self.pfds[i].revents != 0
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
    fn counts_and_positions_per_list() {
        let (r, w) = pipe();
        write_all(&w, b"x");
        let (idle, _w2) = pipe();
        let mut s = Select::new();
        // Read list [idle, r, r], write list [w, idle], except list [r].
        for fd in [idle.as_raw_fd(), r.as_raw_fd(), r.as_raw_fd()] {
            s.push(fd, Interest::Read);
        }
        s.push(w.as_raw_fd(), Interest::Write);
        s.push(idle.as_raw_fd(), Interest::Write);
        s.push(r.as_raw_fd(), Interest::Except);
        assert_eq!(s.wait(Deadline::Immediate), Ok(3));
        assert_eq!(s.ready_count(Interest::Read), 2);
        assert_eq!(s.ready_count(Interest::Write), 1);
        assert_eq!(s.ready_count(Interest::Except), 0);
        let read: Vec<_> = s.ready_from(0).take(2).collect();
        assert_eq!(read, vec![1, 2]);
        assert_eq!(s.ready_from(3).next(), Some(0));
        s.clear();
        assert_eq!(s.wait(Deadline::Immediate), Ok(0));
        assert_eq!(s.ready_count(Interest::Read), 0);
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
