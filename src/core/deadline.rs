//! When a wait must end, and the time left for each attempt of it (PEP 475).
//!
//! A call interrupted by a signal is restarted (`retry_eintr`, sys.rs) with
//! the time that remains, so a signal never ends a wait early and never makes
//! it longer than asked.

use std::time::{Duration, Instant};

/// The one EINTR helper lives with the system calls (sys.rs).
pub use super::sys::retry_eintr;

/// The end of a wait: never, right away, or at an instant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Deadline {
    /// Wait until something happens.
    Forever,
    /// Do not wait at all (timeout 0): no clock read is needed.
    Immediate,
    /// Wait until this instant at the latest.
    At(Instant),
}

impl Deadline {
    /// A deadline `timeout` from now; `None` waits forever. A timeout too large
    /// to be represented as an instant is treated as forever.
    pub fn after(timeout: Option<Duration>) -> Deadline {
        match timeout {
            None => Deadline::Forever,
            Some(d) if d.is_zero() => Deadline::Immediate,
            Some(d) => match Instant::now().checked_add(d) {
                Some(at) => Deadline::At(at),
                None => Deadline::Forever,
            },
        }
    }

    /// Time left: `None` for forever, zero once the deadline has passed.
    pub fn remaining(&self) -> Option<Duration> {
        match *self {
            Deadline::Forever => None,
            Deadline::Immediate => Some(Duration::ZERO),
            Deadline::At(at) => Some(at.saturating_duration_since(Instant::now())),
        }
    }

    /// Time left in whole milliseconds for `poll(2)`/`epoll_wait(2)`, rounded up
    /// so that a wait never ends before the deadline; -1 means forever.
    pub fn remaining_ms(&self) -> libc::c_int {
        match *self {
            Deadline::Immediate => return 0,
            Deadline::Forever => return -1,
            Deadline::At(_) => {}
        }
        match self.remaining() {
            None => -1,
            Some(d) => {
                let ms = d.as_nanos().div_ceil(1_000_000);
                ms.min(libc::c_int::MAX as u128) as libc::c_int
            }
        }
    }

    /// Time left as a `timespec` for `ppoll(2)`; `None` means forever.
    pub fn remaining_timespec(&self) -> Option<libc::timespec> {
        self.remaining().map(|d| libc::timespec {
            tv_sec: d.as_secs().min(libc::time_t::MAX as u64) as libc::time_t,
            tv_nsec: d.subsec_nanos() as libc::c_long,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forever_and_immediate() {
        assert_eq!(Deadline::after(None), Deadline::Forever);
        assert_eq!(Deadline::after(None).remaining_ms(), -1);
        assert_eq!(Deadline::after(Some(Duration::ZERO)), Deadline::Immediate);
        assert_eq!(Deadline::Immediate.remaining_ms(), 0);
        assert!(Deadline::Forever.remaining_timespec().is_none());
    }

    #[test]
    fn milliseconds_round_up() {
        let d = Deadline::after(Some(Duration::from_micros(1500)));
        let ms = d.remaining_ms();
        assert!((1..=2).contains(&ms), "{ms}");
        let d = Deadline::after(Some(Duration::from_nanos(1)));
        assert!(d.remaining_ms() <= 1);
    }

    #[test]
    fn huge_timeouts_saturate() {
        let d = Deadline::after(Some(Duration::from_secs(u64::MAX / 4)));
        assert!(matches!(d, Deadline::Forever | Deadline::At(_)));
        let d = Deadline::after(Some(Duration::from_secs(10_000_000)));
        assert_eq!(d.remaining_ms(), libc::c_int::MAX);
    }

    #[test]
    fn passed_deadline_has_zero_left() {
        let d = Deadline::At(Instant::now() - Duration::from_millis(5));
        assert_eq!(d.remaining(), Some(Duration::ZERO));
        assert_eq!(d.remaining_ms(), 0);
    }
}
