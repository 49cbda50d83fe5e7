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
//! A watched signal is blocked (pthread_sigmask) in every thread that adds a
//! registration for it, so that it is counted rather than acted on. Signal
//! masks are per thread, so the bookkeeping is too: each thread counts the
//! registrations it added per signal and remembers which signals it blocked
//! itself (those that were not blocked in it before). When a thread's last
//! registration of a signal goes, pending instances are consumed and the
//! signal is unblocked in that thread if it was the one that blocked it; a
//! thread whose own code had blocked the signal keeps it blocked. When that
//! last registration is dropped from another thread (a queue shared with
//! `from_fd`), the mask of the owner cannot be changed from there: the owner
//! unblocks it the next time it adds or drops a signal registration.
//! A process-directed signal still reaches any thread that does not block
//! it; a signal directed at one thread is read (and counted for every
//! queue) only by a wait in that thread, as signalfd reads only the caller's
//! own and the process's pending signals.
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
    /// The thread that added the registration (and blocked the signal).
    owner: Arc<ThreadMask>,
}

struct Hub {
    fd: Option<OwnedFd>,
    subs: Vec<Arc<Sub>>,
}

static HUB: Mutex<Hub> = Mutex::new(Hub {
    fd: None,
    subs: Vec::new(),
});

/// One thread's share of the signal masks: masks are per thread.
#[derive(Default)]
struct ThreadMask {
    state: Mutex<MaskState>,
}

struct MaskState {
    /// Registrations this thread added, per signal (index n-1).
    watchers: [u32; 64],
    /// Bit n-1 set: signal n was blocked in this thread by us and is
    /// unblocked when the thread's last registration of it goes.
    blocked_by_us: u64,
    /// Bit n-1 set: the last registration went from another thread; this
    /// thread unblocks signal n at its next subscribe or unsubscribe.
    unblock_later: u64,
}

impl Default for MaskState {
    fn default() -> Self {
        MaskState {
            watchers: [0; 64],
            blocked_by_us: 0,
            unblock_later: 0,
        }
    }
}

thread_local! {
    static THIS_THREAD: Arc<ThreadMask> = Arc::new(ThreadMask::default());
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// This thread's mask record (None while the thread is being torn down).
fn this_thread() -> Option<Arc<ThreadMask>> {
    THIS_THREAD.try_with(Arc::clone).ok()
}

impl ThreadMask {
    fn is_current(self: &Arc<Self>) -> bool {
        this_thread().is_some_and(|me| Arc::ptr_eq(&me, self))
    }

    /// Unblocks, in the calling thread (which must own `self`), the signals
    /// whose last registration was dropped from another thread.
    fn settle(&self) {
        let mut st = lock(&self.state);
        let mut later = std::mem::take(&mut st.unblock_later);
        drop(st);
        while later != 0 {
            let n = later.trailing_zeros() as libc::c_int + 1;
            later &= later - 1;
            let _ = set_thread_mask(libc::SIG_UNBLOCK, n);
        }
    }

    /// Counts one more registration of `signo` in this (the calling) thread,
    /// blocking the signal here on the first one.
    fn enter(&self, signo: libc::c_int) -> OsResult<()> {
        let i = (signo - 1) as usize;
        let mut st = lock(&self.state);
        if st.watchers[i] == 0 {
            if st.unblock_later & bit(signo) != 0 {
                // Still blocked by us: keep it so.
                st.unblock_later &= !bit(signo);
                st.blocked_by_us |= bit(signo);
            } else {
                let old = set_thread_mask(libc::SIG_BLOCK, signo)?;
                if !sys::sigismember(&old, signo) {
                    st.blocked_by_us |= bit(signo);
                }
            }
        }
        st.watchers[i] += 1;
        Ok(())
    }

    /// Counts one registration of `signo` fewer; on the thread's last one,
    /// unblocks the signal if we blocked it (now when called from the owner
    /// thread, else at the owner's next call).
    fn leave(self: &Arc<Self>, signo: libc::c_int) {
        let i = (signo - 1) as usize;
        let mut st = lock(&self.state);
        st.watchers[i] = st.watchers[i].saturating_sub(1);
        if st.watchers[i] != 0 || st.blocked_by_us & bit(signo) == 0 {
            return;
        }
        st.blocked_by_us &= !bit(signo);
        drop(st);
        if self.is_current() {
            let _ = set_thread_mask(libc::SIG_UNBLOCK, signo);
        } else {
            lock(&self.state).unblock_later |= bit(signo);
        }
    }
}

fn hub() -> MutexGuard<'static, Hub> {
    lock(&HUB)
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
    // A thread being torn down has no mask record left: nothing to watch from.
    let owner = this_thread().ok_or(OsError(libc::EAGAIN))?;
    owner.enter(signo)?;
    owner.settle();
    let mut h = hub();
    if !h.watches(signo) {
        let mask = sys::sigset(h.subs.iter().map(|s| s.signo).chain([signo]));
        if let Err(e) = h.set_mask(&mask) {
            drop(h);
            owner.leave(signo);
            return Err(e);
        }
    }
    let sub = Arc::new(Sub {
        signo,
        count: AtomicU64::new(0),
        notify,
        owner,
    });
    h.subs.push(Arc::clone(&sub));
    let fd = h.fd.as_ref().map_or(-1, |fd| fd.as_raw_fd());
    Ok((sub, fd))
}

fn unsubscribe(sub: &Arc<Sub>) {
    let signo = sub.signo;
    let mut h = hub();
    h.subs.retain(|s| !Arc::ptr_eq(s, sub));
    // Consume what is pending (process-directed, and directed at this
    // thread) before the signal can act again: counted for the remaining
    // watchers, if any, else dropped.
    h.drain();
    if !h.watches(signo) {
        if h.subs.is_empty() {
            h.fd = None;
            // Free the buffer too (see Kqueue::finish: statics outlive dlclose).
            h.subs = Vec::new();
        } else {
            let mask = h.mask();
            let _ = h.set_mask(&mask);
        }
    }
    drop(h);
    sub.owner.leave(signo);
    if let Some(me) = this_thread() {
        me.settle();
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

    enum Cmd {
        Add,
        Wait,
        Close,
        Mask,
        Fileno,
        Quit,
    }

    /// A thread owning one kqueue that watches `signo`, driven step by step.
    struct Worker {
        cmds: std::sync::mpsc::Sender<Cmd>,
        answers: std::sync::mpsc::Receiver<i64>,
        thread: std::thread::JoinHandle<()>,
        pthread: libc::pthread_t,
    }

    impl Worker {
        fn start(signo: libc::c_int, preblock: bool) -> Worker {
            let (cmds, rx) = std::sync::mpsc::channel();
            let (tx, answers) = std::sync::mpsc::channel();
            let thread = std::thread::spawn(move || {
                if preblock {
                    super::set_thread_mask(libc::SIG_BLOCK, signo).unwrap();
                }
                // SAFETY: pthread_self is this live thread.
                tx.send(unsafe { libc::pthread_self() } as i64).unwrap();
                let mut kq = None;
                for cmd in rx {
                    let answer = match cmd {
                        Cmd::Add => {
                            let q = Kqueue::new().unwrap();
                            apply(&q, &[kev(signo as u64, FILTER_SIGNAL, EV_ADD)]);
                            kq = Some(q);
                            0
                        }
                        Cmd::Wait => wait(kq.as_ref().unwrap(), 2000)
                            .first()
                            .map_or(-1, |e| e.data),
                        Cmd::Close => {
                            kq = None;
                            0
                        }
                        Cmd::Mask => blocked_here(signo) as i64,
                        Cmd::Fileno => kq.as_ref().unwrap().fileno() as i64,
                        Cmd::Quit => break,
                    };
                    tx.send(answer).unwrap();
                }
            });
            let pthread = answers.recv().unwrap() as libc::pthread_t;
            Worker {
                cmds,
                answers,
                thread,
                pthread,
            }
        }

        fn ask(&self, cmd: Cmd) -> i64 {
            self.cmds.send(cmd).unwrap();
            self.answers.recv().unwrap()
        }

        fn blocked(&self) -> bool {
            self.ask(Cmd::Mask) == 1
        }

        fn stop(self) {
            self.cmds.send(Cmd::Quit).unwrap();
            self.thread.join().unwrap();
        }
    }

    /// Masks are per thread: a thread whose own code blocked the signal keeps
    /// it blocked, a thread where we blocked it gets it back unblocked, each
    /// watching thread blocks it whichever watched first, and a signal sent
    /// to one thread is counted by both queues. (SIGUSR2: no other test of
    /// this binary uses it.)
    #[test]
    fn masks_are_restored_per_thread() {
        let sig = libc::SIGUSR2;
        let a = Worker::start(sig, true);
        let b = Worker::start(sig, false);
        for b_first in [true, false] {
            let (first, second) = if b_first { (&b, &a) } else { (&a, &b) };
            assert!(a.blocked() && !b.blocked(), "before (b_first {b_first})");
            first.ask(Cmd::Add);
            second.ask(Cmd::Add);
            assert!(
                a.blocked() && b.blocked(),
                "both watching (b_first {b_first})"
            );
            // SAFETY: b.pthread is a live thread (joined only at the end).
            assert_eq!(unsafe { libc::pthread_kill(b.pthread, sig) }, 0);
            assert_eq!(b.ask(Cmd::Wait), 1, "read by b");
            assert_eq!(a.ask(Cmd::Wait), 1, "counted for a too");
            first.ask(Cmd::Close);
            assert!(a.blocked(), "a keeps its own block");
            assert_eq!(b.blocked(), !b_first, "b blocked while it watches");
            second.ask(Cmd::Close);
            assert!(a.blocked(), "a keeps its own block at the end");
            assert!(!b.blocked(), "b unblocked at the end (b_first {b_first})");
        }
        a.stop();
        b.stop();
    }

    /// The last registration of a thread dropped from another thread (a
    /// queue shared through from_fd): the owner unblocks the signal at its
    /// next signal call.
    #[test]
    fn a_registration_dropped_elsewhere_unblocks_in_its_thread_later() {
        let sig = libc::SIGPWR;
        let owner = Worker::start(sig, false);
        owner.ask(Cmd::Add);
        assert!(owner.blocked());
        // Deleted through a second handle in this thread: no way to change
        // the owner's mask from here.
        let here = Kqueue::from_fd(owner.ask(Cmd::Fileno) as RawFd).unwrap();
        apply(&here, &[kev(sig as u64, FILTER_SIGNAL, EV_DELETE)]);
        drop(here);
        assert!(
            owner.blocked(),
            "owner's mask untouched from another thread"
        );
        assert!(!blocked_here(sig));
        // Added again by the owner: still blocked, the pending unblock is
        // cancelled; dropped by the owner: unblocked.
        owner.ask(Cmd::Add);
        assert!(owner.blocked());
        owner.ask(Cmd::Close);
        assert!(!owner.blocked(), "unblocked when the owner drops it");
        owner.stop();
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
