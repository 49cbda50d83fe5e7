//! EVFILT_TIMER on a timerfd (CLOCK_MONOTONIC). `data` on add is the period
//! in the unit NOTE_SECONDS/MSECONDS/USECONDS/NSECONDS names (milliseconds by
//! default); the event's `data` is the number of expirations since the last
//! report, which is exactly what reading a timerfd returns.

use std::os::fd::{AsRawFd, OwnedFd};

use super::consts::*;
use super::ctx::{self, Ctx, Target};
use super::filter::Filter;
use super::knote::{Collect, Info, Ready};
use crate::core::error::{OsError, OsResult};
use crate::core::kevent::KEvent;
use crate::core::linux::sys;

const UNITS: u32 = NOTE_SECONDS | NOTE_MSECONDS | NOTE_USECONDS | NOTE_NSECONDS;

pub struct Timer {
    fd: OwnedFd,
    token: u64,
    /// In the epoll set (only while enabled: a disabled timer keeps running
    /// and its expirations add up, as on FreeBSD, but it does not wake us).
    in_epoll: bool,
}

pub fn attach(cx: &mut Ctx, kn: &Info, kev: &KEvent) -> OsResult<Box<dyn Filter>> {
    let period = period_ns(kev, kn.has(EV_ONESHOT))?;
    let fd = sys::timerfd_create()?;
    start(&fd, period, kn.has(EV_ONESHOT))?;
    let token = cx.add_target(Target::Knote(kn.id));
    Ok(Box::new(Timer {
        fd,
        token,
        in_epoll: false,
    }))
}

/// The period in nanoseconds. Negative is EINVAL; so are several units at
/// once and flags this emulation does not implement (NOTE_ABSTIME). A
/// periodic timer of 0 runs every unit, as on FreeBSD.
fn period_ns(kev: &KEvent, oneshot: bool) -> OsResult<u128> {
    if kev.data < 0 || kev.fflags & !UNITS != 0 {
        return Err(OsError(libc::EINVAL));
    }
    let unit: u128 = match kev.fflags & UNITS {
        0 | NOTE_MSECONDS => 1_000_000,
        NOTE_SECONDS => 1_000_000_000,
        NOTE_USECONDS => 1_000,
        NOTE_NSECONDS => 1,
        _ => return Err(OsError(libc::EINVAL)),
    };
    let count = if kev.data == 0 && !oneshot {
        1
    } else {
        kev.data as u128
    };
    Ok(count * unit)
}

fn timespec(ns: u128) -> libc::timespec {
    let secs = (ns / 1_000_000_000).min(libc::time_t::MAX as u128);
    libc::timespec {
        tv_sec: secs as libc::time_t,
        tv_nsec: (ns % 1_000_000_000) as libc::c_long,
    }
}

/// (Re)starts the timer; setting a timerfd also zeroes its expiration count,
/// which is what FreeBSD does when a timer is modified.
fn start(fd: &OwnedFd, ns: u128, oneshot: bool) -> OsResult<()> {
    // A zero it_value would disarm the timerfd: a 0 timer fires at once.
    let first = timespec(ns.max(1));
    let every = if oneshot { timespec(0) } else { first };
    let spec = libc::itimerspec {
        it_interval: every,
        it_value: first,
    };
    sys::timerfd_settime(fd, &spec)
}

impl Filter for Timer {
    fn modify(&mut self, _cx: &mut Ctx, kn: &Info, kev: &KEvent) -> OsResult<()> {
        let period = period_ns(kev, kn.has(EV_ONESHOT))?;
        start(&self.fd, period, kn.has(EV_ONESHOT))
    }

    fn arm(&mut self, cx: &mut Ctx, kn: &Info) -> OsResult<bool> {
        let fd = self.fd.as_raw_fd();
        ctx::watch_own_fd(cx.epfd, fd, self.token, kn.enabled, &mut self.in_epoll)?;
        Ok(false)
    }

    fn collect(&mut self, _cx: &mut Ctx, _kn: &Info) -> Collect {
        match sys::read_u64(self.fd.as_raw_fd()) {
            Ok(Some(n)) if n > 0 => Collect::Ready(Ready {
                data: n.min(i64::MAX as u64) as i64,
                ..Ready::default()
            }),
            _ => Collect::NotReady,
        }
    }

    fn detach(&mut self, cx: &mut Ctx, _kn: &Info) {
        cx.forget_target(self.token);
        ctx::unwatch_own_fd(cx.epfd, self.fd.as_raw_fd(), &mut self.in_epoll);
        // The timerfd itself closes when the registration is dropped.
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::super::testkit::*;
    use super::super::*;

    #[test]
    fn periodic_counts_expirations_in_milliseconds_by_default() {
        let kq = Kqueue::new().unwrap();
        apply(&kq, &[kevd(1, FILTER_TIMER, EV_ADD, 0, 10)]);
        std::thread::sleep(Duration::from_millis(55));
        assert!(readable(kq.fileno()));
        let evs = wait(&kq, 0);
        assert_eq!(evs.len(), 1);
        assert_eq!((evs[0].ident, evs[0].filter), (1, FILTER_TIMER));
        assert!(evs[0].data >= 3, "expirations: {}", evs[0].data);
        let evs = wait(&kq, 1000);
        assert!(evs.len() == 1 && evs[0].data >= 1);
    }

    #[test]
    fn oneshot_fires_once_and_is_gone() {
        let kq = Kqueue::new().unwrap();
        apply(&kq, &[kevd(2, FILTER_TIMER, EV_ADD | EV_ONESHOT, 0, 5)]);
        let evs = wait(&kq, 1000);
        assert_eq!((evs.len(), evs[0].data), (1, 1));
        assert!(wait(&kq, 30).is_empty());
        let out = try_apply(&kq, &[kev(2, FILTER_TIMER, EV_DELETE)]).unwrap();
        assert_eq!(out[0].data, libc::ENOENT as i64);
    }

    #[test]
    fn units_follow_the_notes() {
        for (unit, amount) in [
            (NOTE_MSECONDS, 40),
            (NOTE_USECONDS, 40_000),
            (NOTE_NSECONDS, 40_000_000),
            (NOTE_SECONDS, 1),
        ] {
            let kq = Kqueue::new().unwrap();
            let t = Instant::now();
            apply(
                &kq,
                &[kevd(1, FILTER_TIMER, EV_ADD | EV_ONESHOT, unit, amount)],
            );
            assert!(wait(&kq, 10).is_empty(), "unit {unit:#x} fired early");
            assert_eq!(wait(&kq, 3000).len(), 1, "unit {unit:#x}");
            let floor = if unit == NOTE_SECONDS { 990 } else { 39 };
            assert!(
                t.elapsed() >= Duration::from_millis(floor),
                "unit {unit:#x}"
            );
        }
    }

    #[test]
    fn bad_periods_are_einval() {
        let kq = Kqueue::new().unwrap();
        let out = try_apply(
            &kq,
            &[
                kevd(1, FILTER_TIMER, EV_ADD, 0, -5),
                kevd(2, FILTER_TIMER, EV_ADD, NOTE_SECONDS | NOTE_USECONDS, 5),
            ],
        )
        .unwrap();
        assert_eq!(out.len(), 2);
        assert!(out.iter().all(|e| e.data == libc::EINVAL as i64));
    }

    #[test]
    fn modify_restarts_and_disable_keeps_counting() {
        let kq = Kqueue::new().unwrap();
        apply(&kq, &[kevd(1, FILTER_TIMER, EV_ADD, NOTE_SECONDS, 1000)]);
        apply(&kq, &[kevd(1, FILTER_TIMER, EV_ADD | EV_DISABLE, 0, 10)]);
        std::thread::sleep(Duration::from_millis(45));
        assert!(wait(&kq, 0).is_empty());
        assert!(!readable(kq.fileno()));
        apply(&kq, &[kev(1, FILTER_TIMER, EV_ENABLE)]);
        let evs = wait(&kq, 0);
        assert!(evs.len() == 1 && evs[0].data >= 3, "{evs:?}");
    }
}
