//! EVFILT_SIGNAL: ident = signal number, data = deliveries since the last
//! report (always EV_CLEAR behaviour, as on BSD).
//!
//! One process-wide dispatcher (the hub) owns a single signalfd whose mask is
//! every signal some registration watches, in any queue. Whoever reads it
//! first counts each delivery for every registration of that signal and
//! signals their queues' notify eventfds, so two queues watching SIGUSR1 both
//! see every SIGUSR1 (per-queue signalfds would compete for one pending
//! signal). Each queue watching signals also has the signalfd in its epoll set
//! so that a wait wakes up when one arrives.
//!
//! A watched signal is blocked (pthread_sigmask, in the thread that adds the
//! first registration) so that it is counted rather than acted on; when the
//! last registration goes, pending instances are consumed and the signal is
//! unblocked again if it was not blocked before. Signal masks are per thread:
//! a process-directed signal still reaches any other thread that does not
//! block it.
//!
//! Lock order: a queue's lock, then the hub's. The hub never takes a queue
//! lock; it only bumps atomic counts and writes eventfds.

use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use super::ctx::{self, Ctx, Target};
use super::filter::Filter;
use super::knote::{Collect, Info, Ready};
use crate::core::error::{OsError, OsResult};
use crate::core::kevent::KEvent;
use crate::core::linux::sys;

/// One registration's subscription to the hub.
pub struct Sub {
    signo: libc::c_int,
    count: AtomicU64,
    notify: Arc<OwnedFd>,
}

struct Hub {
    fd: Option<OwnedFd>,
    subs: Vec<Arc<Sub>>,
    /// Bit n-1 set: signal n was blocked by us and is unblocked at the end.
    blocked_by_us: u64,
}

static HUB: Mutex<Hub> = Mutex::new(Hub {
    fd: None,
    subs: Vec::new(),
    blocked_by_us: 0,
});

fn hub() -> MutexGuard<'static, Hub> {
    HUB.lock().unwrap_or_else(|e| e.into_inner())
}

fn bit(signo: libc::c_int) -> u64 {
    1u64 << (signo - 1)
}

fn set_thread_mask(how: libc::c_int, signo: libc::c_int) -> OsResult<libc::sigset_t> {
    sys::pthread_sigmask(how, Some(&sys::sigset([signo])))
}

impl Hub {
    fn watches(&self, signo: libc::c_int) -> bool {
        self.subs.iter().any(|s| s.signo == signo)
    }

    fn mask(&self) -> libc::sigset_t {
        sys::sigset(self.subs.iter().map(|s| s.signo))
    }

    /// Points the signalfd at `mask`, creating it if needed.
    fn set_mask(&mut self, mask: &libc::sigset_t) -> OsResult<()> {
        match &self.fd {
            Some(fd) => sys::signalfd_set(fd, mask),
            None => {
                self.fd = Some(sys::signalfd_create(mask)?);
                Ok(())
            }
        }
    }

    /// Reads every pending watched signal and counts it for each subscriber.
    fn drain(&mut self) {
        let Some(fd) = &self.fd else { return };
        const N: usize = 16;
        // SAFETY: signalfd_siginfo is plain data; zeroes are a valid value.
        let mut buf: [libc::signalfd_siginfo; N] = unsafe { std::mem::zeroed() };
        loop {
            let n = sys::read_signalfd(fd, &mut buf);
            if n == 0 {
                return; // EAGAIN: nothing more pending
            }
            for info in &buf[..n] {
                let signo = info.ssi_signo as libc::c_int;
                for sub in self.subs.iter().filter(|s| s.signo == signo) {
                    // Count first, then wake: refresh_notify reads the count
                    // after draining the eventfd, so no wake-up is lost.
                    sub.count.fetch_add(1, Ordering::SeqCst);
                    sys::write_u64(sub.notify.as_raw_fd(), 1);
                }
            }
        }
    }
}

/// The signal numbers a registration may watch: SIGKILL and SIGSTOP cannot
/// be caught, and glibc reserves the two below SIGRTMIN for its threads.
fn signal_number(ident: u64) -> OsResult<libc::c_int> {
    let signo = libc::c_int::try_from(ident).map_err(|_| OsError(libc::EINVAL))?;
    let (rtmin, rtmax) = sys::sigrt_range();
    let reserved = signo >= 32 && signo < rtmin;
    if signo < 1 || signo > rtmax || signo > 64 || reserved {
        return Err(OsError(libc::EINVAL));
    }
    if signo == libc::SIGKILL || signo == libc::SIGSTOP {
        return Err(OsError(libc::EINVAL));
    }
    Ok(signo)
}

/// Adds a subscriber; returns it and the hub's signalfd.
fn subscribe(signo: libc::c_int, notify: Arc<OwnedFd>) -> OsResult<(Arc<Sub>, RawFd)> {
    let mut h = hub();
    if !h.watches(signo) {
        let old = set_thread_mask(libc::SIG_BLOCK, signo)?;
        let was_blocked = sys::sigismember(&old, signo);
        let mask = sys::sigset(h.subs.iter().map(|s| s.signo).chain([signo]));
        if let Err(e) = h.set_mask(&mask) {
            if !was_blocked {
                let _ = set_thread_mask(libc::SIG_UNBLOCK, signo);
            }
            return Err(e);
        }
        if !was_blocked {
            h.blocked_by_us |= bit(signo);
        }
    }
    let sub = Arc::new(Sub {
        signo,
        count: AtomicU64::new(0),
        notify,
    });
    h.subs.push(Arc::clone(&sub));
    let fd = h.fd.as_ref().map_or(-1, |fd| fd.as_raw_fd());
    Ok((sub, fd))
}

fn unsubscribe(sub: &Arc<Sub>) {
    let mut h = hub();
    h.subs.retain(|s| !Arc::ptr_eq(s, sub));
    let signo = sub.signo;
    if h.watches(signo) {
        return;
    }
    // Consume what is pending before the signal can act again.
    h.drain();
    if h.subs.is_empty() {
        h.fd = None;
        // Free the buffer too (see Kqueue::finish: statics outlive dlclose).
        h.subs = Vec::new();
    } else {
        let mask = h.mask();
        let _ = h.set_mask(&mask);
    }
    if h.blocked_by_us & bit(signo) != 0 {
        h.blocked_by_us &= !bit(signo);
        let _ = set_thread_mask(libc::SIG_UNBLOCK, signo);
    }
}

/// The epoll source: the hub's signalfd is readable.
fn drain_source(_cx: &mut Ctx, _hits: &mut Vec<(u64, u32)>) {
    hub().drain();
}

fn watch(cx: &mut Ctx, hub_fd: RawFd) -> OsResult<()> {
    if cx.signals.refs == 0 {
        let token = cx.add_target(Target::Source(drain_source));
        if let Err(e) = ctx::epoll_add(cx.epfd, hub_fd, libc::EPOLLIN as u32, token) {
            cx.forget_target(token);
            return Err(e);
        }
        cx.signals.token = token;
        cx.signals.fd = hub_fd;
    }
    cx.signals.refs += 1;
    Ok(())
}

fn unwatch(cx: &mut Ctx) {
    if cx.signals.refs == 0 {
        return;
    }
    cx.signals.refs -= 1;
    if cx.signals.refs == 0 {
        ctx::epoll_del(cx.epfd, cx.signals.fd);
        let token = cx.signals.token;
        cx.forget_target(token);
    }
}

pub struct Signal {
    sub: Arc<Sub>,
}

pub fn attach(cx: &mut Ctx, kn: &Info, _kev: &KEvent) -> OsResult<Box<dyn Filter>> {
    let signo = signal_number(kn.ident)?;
    let (sub, fd) = subscribe(signo, Arc::clone(&cx.notify))?;
    if let Err(e) = watch(cx, fd) {
        unsubscribe(&sub);
        return Err(e);
    }
    Ok(Box::new(Signal { sub }))
}

impl Filter for Signal {
    fn modify(&mut self, _cx: &mut Ctx, _kn: &Info, _kev: &KEvent) -> OsResult<()> {
        Ok(())
    }

    fn arm(&mut self, _cx: &mut Ctx, kn: &Info) -> OsResult<bool> {
        Ok(kn.enabled && self.pending())
    }

    fn collect(&mut self, _cx: &mut Ctx, _kn: &Info) -> Collect {
        match self.sub.count.swap(0, Ordering::SeqCst) {
            0 => Collect::NotReady,
            n => Collect::Ready(Ready {
                data: n.min(i64::MAX as u64) as i64,
                ..Ready::default()
            }),
        }
    }

    fn is_async(&self) -> bool {
        true
    }

    fn pending(&self) -> bool {
        self.sub.count.load(Ordering::SeqCst) > 0
    }

    fn detach(&mut self, cx: &mut Ctx, _kn: &Info) {
        unwatch(cx);
        unsubscribe(&self.sub);
    }
}

#[cfg(test)]
mod tests {
    use super::super::testkit::*;
    use super::super::*;

    /// Sends `signo` to this thread only (cargo runs tests in threads, and a
    /// blocked mask is per thread).
    fn raise_here(signo: libc::c_int) {
        // SAFETY: pthread_self is this live thread.
        assert_eq!(
            unsafe { libc::pthread_kill(libc::pthread_self(), signo) },
            0
        );
    }

    fn blocked_here(signo: libc::c_int) -> bool {
        let mut old = crate::core::linux::sys::sigset([]);
        // SAFETY: a null new set only reads the current mask into old.
        unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, std::ptr::null(), &mut old) };
        // SAFETY: old is a valid sigset_t.
        unsafe { libc::sigismember(&old, signo) == 1 }
    }

    /// One test, so that no other test of this binary watches SIGUSR1.
    #[test]
    fn deliveries_are_counted_for_every_queue_watching() {
        let usr1 = libc::SIGUSR1;
        assert!(!blocked_here(usr1));
        let kq1 = Kqueue::new().unwrap();
        let kq2 = Kqueue::new().unwrap();
        let add = KEvent {
            udata: 3,
            ..kev(usr1 as u64, FILTER_SIGNAL, EV_ADD)
        };
        apply(&kq1, &[add]);
        apply(&kq2, &[add]);
        assert!(blocked_here(usr1), "watched signals are blocked");
        assert!(wait(&kq1, 0).is_empty());

        raise_here(usr1);
        let evs = wait(&kq1, 1000);
        assert_eq!(evs.len(), 1);
        assert_eq!(
            (evs[0].ident, evs[0].filter, evs[0].data, evs[0].udata),
            (usr1 as u64, FILTER_SIGNAL, 1, 3)
        );
        // The first queue read the signal; the second one counted it too.
        assert!(readable(kq2.fileno()));
        assert_eq!(wait(&kq2, 0)[0].data, 1);
        assert!(wait(&kq1, 0).is_empty(), "EV_CLEAR behaviour");

        // Counted while disabled, reported once enabled.
        apply(&kq1, &[kev(usr1 as u64, FILTER_SIGNAL, EV_DISABLE)]);
        raise_here(usr1);
        assert_eq!(wait(&kq2, 1000)[0].data, 1);
        assert!(wait(&kq1, 0).is_empty());
        apply(&kq1, &[kev(usr1 as u64, FILTER_SIGNAL, EV_ENABLE)]);
        assert_eq!(wait(&kq1, 0)[0].data, 1);

        // A pending signal is consumed, not acted on, when the last
        // registration goes, and the mask is restored.
        raise_here(usr1);
        apply(&kq1, &[kev(usr1 as u64, FILTER_SIGNAL, EV_DELETE)]);
        assert!(blocked_here(usr1), "kq2 still watches");
        drop(kq2);
        assert!(!blocked_here(usr1));
    }

    #[test]
    fn uncatchable_and_invalid_numbers_are_einval() {
        let kq = Kqueue::new().unwrap();
        let bad = [
            0,
            libc::SIGKILL as u64,
            libc::SIGSTOP as u64,
            32,
            65,
            1 << 40,
        ];
        let changes: Vec<_> = bad.iter().map(|&s| kev(s, FILTER_SIGNAL, EV_ADD)).collect();
        let out = try_apply(&kq, &changes).unwrap();
        assert_eq!(out.len(), bad.len());
        assert!(out.iter().all(|e| e.data == libc::EINVAL as i64), "{out:?}");
    }
}
