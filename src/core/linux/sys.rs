//! The Linux-only system calls of the core (epoll, eventfd, timerfd,
//! signalfd and the signal mask, pidfd and waitid, inotify, and the socket
//! and ioctl queries the READ/WRITE filters measure with), wrapped once so
//! that epoll.rs and the kqueue filters read as logic: each wrapper turns
//! `-1 and errno` into an `OsError`. The portable wrappers (`core::sys`) are
//! re-exported, so a Linux module names one `sys`.

use std::ffi::CStr;
use std::mem::MaybeUninit;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

pub use crate::core::sys::*;

use crate::core::error::{cvt, OsError, OsResult};

pub fn epoll_create() -> OsResult<OwnedFd> {
    // SAFETY: epoll_create1 takes only flags and returns a new fd or -1.
    cvt(unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) }).map(own)
}

/// One `epoll_ctl`; `token` goes into `epoll_event.data` (ignored for DEL).
pub fn epoll_ctl(epfd: RawFd, op: libc::c_int, fd: RawFd, events: u32, token: u64) -> OsResult<()> {
    let mut ev = libc::epoll_event { events, u64: token };
    // SAFETY: ev is a valid epoll_event the kernel only reads; bad fds are
    // reported through errno.
    cvt(unsafe { libc::epoll_ctl(epfd, op, fd, &mut ev) }).map(drop)
}

/// `epoll_wait` into `buf`, which need not be initialised (the kernel only
/// writes it), retried on EINTR with the timeout `timeout_ms()` gives each
/// time; returns the entries filled.
pub fn epoll_wait(
    epfd: RawFd,
    buf: &mut [MaybeUninit<libc::epoll_event>],
    timeout_ms: impl Fn() -> libc::c_int,
) -> OsResult<&[libc::epoll_event]> {
    let len = buf.len().min(libc::c_int::MAX as usize) as libc::c_int;
    let n = retry_eintr(|| {
        // SAFETY: buf has at least `len` writable epoll_event slots
        // (MaybeUninit<T> has T's layout).
        cvt(unsafe { libc::epoll_wait(epfd, buf.as_mut_ptr().cast(), len, timeout_ms()) })
    })?;
    // SAFETY: the kernel initialised the first n (<= len) entries.
    Ok(unsafe { std::slice::from_raw_parts(buf.as_ptr().cast(), n as usize) })
}

/// Milliseconds of the monotonic clock, wrapping, never 0: read without a
/// system call from CLOCK_MONOTONIC_COARSE, which moves once per kernel
/// tick (1 to 10 ms).
pub fn coarse_ms() -> u32 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: ts is a writable timespec; the coarse clock always exists.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC_COARSE, &mut ts) };
    let ms = (ts.tv_sec as u64).wrapping_mul(1000) + ts.tv_nsec as u64 / 1_000_000;
    (ms as u32).max(1)
}

/// A non-blocking, close-on-exec eventfd starting at 0.
pub fn eventfd() -> OsResult<OwnedFd> {
    // SAFETY: eventfd takes an initial value and flags, returns a new fd or -1.
    cvt(unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) }).map(own)
}

/// A non-blocking, close-on-exec timerfd on the monotonic clock.
pub fn timerfd_create() -> OsResult<OwnedFd> {
    // SAFETY: timerfd_create takes a clock id and flags, returns a new fd or -1.
    cvt(unsafe {
        libc::timerfd_create(
            libc::CLOCK_MONOTONIC,
            libc::TFD_NONBLOCK | libc::TFD_CLOEXEC,
        )
    })
    .map(own)
}

/// Arms (or, with a zero `it_value`, disarms) a timerfd, relative to now.
pub fn timerfd_settime(fd: &OwnedFd, spec: &libc::itimerspec) -> OsResult<()> {
    // SAFETY: spec is a valid itimerspec; the old value is not requested.
    cvt(unsafe { libc::timerfd_settime(fd.as_raw_fd(), 0, spec, std::ptr::null_mut()) }).map(drop)
}

/// A signal set holding `signos` (signal numbers already checked valid).
pub fn sigset(signos: impl IntoIterator<Item = libc::c_int>) -> libc::sigset_t {
    // SAFETY: sigset_t is plain data; sigemptyset then initialises it.
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: set is a valid sigset_t to clear.
    unsafe { libc::sigemptyset(&mut set) };
    for s in signos {
        // SAFETY: set is valid and s a signal number the caller checked.
        unsafe { libc::sigaddset(&mut set, s) };
    }
    set
}

pub fn sigismember(set: &libc::sigset_t, signo: libc::c_int) -> bool {
    // SAFETY: set is a valid sigset_t; a bad signo gives -1, not a member.
    unsafe { libc::sigismember(set, signo) == 1 }
}

/// `pthread_sigmask(how, set)` for the calling thread; returns the old mask.
/// `set` None only reads the mask.
pub fn pthread_sigmask(how: libc::c_int, set: Option<&libc::sigset_t>) -> OsResult<libc::sigset_t> {
    let mut old = sigset([]);
    let setp = set.map_or(std::ptr::null(), |s| s as *const libc::sigset_t);
    // SAFETY: setp is null or a valid sigset_t; old receives the old mask.
    let rc = unsafe { libc::pthread_sigmask(how, setp, &mut old) };
    if rc != 0 {
        return Err(OsError(rc));
    }
    Ok(old)
}

/// (SIGRTMIN, SIGRTMAX) as the C library sees them (glibc keeps the lowest
/// real-time signals for its threads).
pub fn sigrt_range() -> (libc::c_int, libc::c_int) {
    // SIGRTMIN()/SIGRTMAX() are safe libc functions: they read glibc's limits.
    (libc::SIGRTMIN(), libc::SIGRTMAX())
}

/// A new non-blocking, close-on-exec signalfd for `mask`.
pub fn signalfd_create(mask: &libc::sigset_t) -> OsResult<OwnedFd> {
    let flags = libc::SFD_NONBLOCK | libc::SFD_CLOEXEC;
    // SAFETY: -1 asks for a new signalfd; mask is a valid sigset_t.
    cvt(unsafe { libc::signalfd(-1, mask, flags) }).map(own)
}

/// Points an existing signalfd at `mask`.
pub fn signalfd_set(fd: &OwnedFd, mask: &libc::sigset_t) -> OsResult<()> {
    // SAFETY: fd is a signalfd, mask a valid sigset_t; this updates the mask
    // in place.
    cvt(unsafe { libc::signalfd(fd.as_raw_fd(), mask, 0) }).map(drop)
}

/// Reads pending signals into `buf` (retried on EINTR): how many records were
/// filled, 0 when none is pending.
pub fn read_signalfd(fd: &OwnedFd, buf: &mut [libc::signalfd_siginfo]) -> usize {
    let size = std::mem::size_of::<libc::signalfd_siginfo>();
    // SAFETY: buf is buf.len() writable signalfd_siginfo records, plain data
    // for any bytes the kernel writes.
    let got = unsafe {
        read_raw(
            fd.as_raw_fd(),
            buf.as_mut_ptr().cast(),
            std::mem::size_of_val(buf),
        )
    };
    match got {
        Ok(Some(n)) => n / size,
        _ => 0,
    }
}

/// `pidfd_open(pid, 0)`: a close-on-exec descriptor for the process.
pub fn pidfd_open(pid: libc::pid_t) -> OsResult<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags (0) and returns a new
    // close-on-exec fd or -1.
    let rc = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if rc < 0 {
        return Err(OsError::last());
    }
    Ok(own(rc as libc::c_int))
}

/// `waitid(P_PIDFD)` without reaping: `(si_code, si_pid, si_status)` of an
/// exited child, `si_pid` 0 when none is ready.
pub fn waitid_pidfd_nowait(fd: &OwnedFd) -> OsResult<(i32, libc::pid_t, i32)> {
    // SAFETY: siginfo_t is plain data; all zeroes is a valid value.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    let flags = libc::WEXITED | libc::WNOWAIT | libc::WNOHANG;
    // SAFETY: info is a writable siginfo_t; P_PIDFD takes the pidfd as id.
    let rc = unsafe {
        libc::waitid(
            libc::P_PIDFD,
            fd.as_raw_fd() as libc::id_t,
            &mut info,
            flags,
        )
    };
    cvt(rc)?;
    // SAFETY: info is initialised (zeroed, then possibly filled by waitid),
    // and these accessors read plain integers of its SIGCHLD layout.
    let (pid, status) = unsafe { (info.si_pid(), info.si_status()) };
    Ok((info.si_code, pid, status))
}

/// A non-blocking, close-on-exec inotify instance.
pub fn inotify_init() -> OsResult<OwnedFd> {
    // SAFETY: inotify_init1 takes flags and returns a new fd or -1.
    cvt(unsafe { libc::inotify_init1(libc::IN_NONBLOCK | libc::IN_CLOEXEC) }).map(own)
}

pub fn inotify_add_watch(ifd: RawFd, path: &CStr, mask: u32) -> OsResult<i32> {
    // SAFETY: path is a NUL-terminated string; a bad ifd gives EBADF.
    cvt(unsafe { libc::inotify_add_watch(ifd, path.as_ptr(), mask) })
}

/// Removes a watch; a stale `wd` (the kernel already dropped it) is ignored.
pub fn inotify_rm_watch(ifd: RawFd, wd: i32) {
    // SAFETY: ifd is an inotify instance; a stale wd gives EINVAL.
    unsafe { libc::inotify_rm_watch(ifd, wd) };
}

/// Splits a buffer `read` from an inotify descriptor into its events.
pub fn inotify_events(buf: &[u8]) -> impl Iterator<Item = libc::inotify_event> + '_ {
    let head = std::mem::size_of::<libc::inotify_event>();
    let mut off = 0;
    std::iter::from_fn(move || {
        if off + head > buf.len() {
            return None;
        }
        // SAFETY: the kernel wrote a whole inotify_event header at off;
        // read_unaligned copes with the byte buffer's alignment.
        let ev: libc::inotify_event =
            unsafe { std::ptr::read_unaligned(buf[off..].as_ptr().cast()) };
        off += head + ev.len as usize;
        Some(ev)
    })
}

/// An `ioctl` that answers with an int (FIONREAD, SIOCOUTQ).
pub fn ioctl_int(fd: RawFd, req: libc::Ioctl) -> OsResult<i32> {
    let mut v: libc::c_int = 0;
    // SAFETY: these requests write one int through the pointer.
    cvt(unsafe { libc::ioctl(fd, req, &mut v) })?;
    Ok(v)
}

/// For a listening TCP socket, the connections waiting for `accept`: Linux
/// reports the accept queue length in `tcpi_unacked` for listeners.
pub fn tcp_accept_backlog(fd: RawFd) -> Option<u32> {
    let mut info = MaybeUninit::<libc::tcp_info>::zeroed();
    let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
    // SAFETY: info and len describe a writable tcp_info buffer; the kernel
    // writes at most len bytes and the zeroed rest stays valid.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            info.as_mut_ptr().cast(),
            &mut len,
        )
    };
    if rc < 0 {
        return None;
    }
    // SAFETY: zeroed then partly filled by the kernel: every field is set.
    let info = unsafe { info.assume_init() };
    // TCP_LISTEN is 10 in the kernel's tcp_states.h.
    (info.tcpi_state == 10).then_some(info.tcpi_unacked)
}
