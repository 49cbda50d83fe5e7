//! The libc calls the emulation makes, wrapped once so that the filter files
//! read as logic: each wrapper turns `-1 and errno` into an `OsError`.

use std::mem::MaybeUninit;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

use crate::core::deadline::retry_eintr;
use crate::core::error::{cvt, OsError, OsResult};

/// Takes ownership of a descriptor a libc call just returned.
pub fn own(fd: libc::c_int) -> OwnedFd {
    // SAFETY: callers pass only a descriptor that a successful libc call has
    // just created, so it is open and owned by nothing else.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

/// An identifier as an fd: idents beyond `c_int` cannot be open descriptors.
pub fn ident_fd(ident: u64) -> OsResult<RawFd> {
    RawFd::try_from(ident).map_err(|_| OsError(libc::EBADF))
}

/// EBADF unless `fd` is an open descriptor.
pub fn check_fd(fd: RawFd) -> OsResult<()> {
    // SAFETY: F_GETFD only reads the descriptor flags; a bad fd gives EBADF.
    cvt(unsafe { libc::fcntl(fd, libc::F_GETFD) }).map(drop)
}

/// A second descriptor on the same open file, close-on-exec.
pub fn dup_cloexec(fd: RawFd) -> OsResult<OwnedFd> {
    // SAFETY: F_DUPFD_CLOEXEC duplicates fd (or fails with EBADF/EMFILE).
    cvt(unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 0) }).map(own)
}

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

/// A non-blocking, close-on-exec eventfd starting at 0.
pub fn eventfd() -> OsResult<OwnedFd> {
    // SAFETY: eventfd takes an initial value and flags, returns a new fd or -1.
    cvt(unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) }).map(own)
}

/// Reads one 8-byte counter (eventfd, timerfd); `None` when there is none yet.
pub fn read_u64(fd: RawFd) -> OsResult<Option<u64>> {
    let mut v: u64 = 0;
    loop {
        // SAFETY: v is 8 writable bytes, the size these descriptors read.
        let n = unsafe { libc::read(fd, (&mut v as *mut u64).cast(), 8) };
        if n == 8 {
            return Ok(Some(v));
        }
        match OsError::last() {
            OsError(libc::EINTR) => continue,
            OsError(libc::EAGAIN) => return Ok(None),
            e => return Err(e),
        }
    }
}

/// Adds `v` to an eventfd counter. A full counter (EAGAIN) is still signalled,
/// which is all the callers want.
pub fn write_u64(fd: RawFd, v: u64) {
    // SAFETY: v is 8 readable bytes, the size an eventfd write takes.
    let _ = unsafe { libc::write(fd, (&v as *const u64).cast(), 8) };
}

/// What the filters need from `fstat`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stat {
    /// (device, inode): tells whether an fd number still names the same file.
    pub file: (u64, u64),
    pub mode: u32,
    pub size: i64,
    pub nlink: u64,
}

impl Stat {
    pub fn kind(&self) -> u32 {
        self.mode & libc::S_IFMT
    }
}

pub fn fstat(fd: RawFd) -> OsResult<Stat> {
    let mut st = MaybeUninit::<libc::stat>::uninit();
    // SAFETY: st is a writable stat buffer that fstat fills on success.
    cvt(unsafe { libc::fstat(fd, st.as_mut_ptr()) })?;
    // SAFETY: fstat succeeded, so st is initialised.
    let st = unsafe { st.assume_init() };
    Ok(Stat {
        file: (st.st_dev, st.st_ino),
        mode: st.st_mode,
        size: st.st_size,
        nlink: st.st_nlink,
    })
}

/// The file offset of `fd` (regular files).
pub fn offset(fd: RawFd) -> OsResult<i64> {
    // SAFETY: lseek with offset 0 from SEEK_CUR only reads the offset.
    let off = unsafe { libc::lseek(fd, 0, libc::SEEK_CUR) };
    if off < 0 {
        Err(OsError::last())
    } else {
        Ok(off)
    }
}

/// An `ioctl` that answers with an int (FIONREAD, SIOCOUTQ).
pub fn ioctl_int(fd: RawFd, req: libc::Ioctl) -> OsResult<i32> {
    let mut v: libc::c_int = 0;
    // SAFETY: these requests write one int through the pointer.
    cvt(unsafe { libc::ioctl(fd, req, &mut v) })?;
    Ok(v)
}

/// `fcntl` with an int answer and no argument (F_GETPIPE_SZ).
pub fn fcntl_int(fd: RawFd, cmd: libc::c_int) -> OsResult<i32> {
    // SAFETY: the commands used take no argument and return an int.
    cvt(unsafe { libc::fcntl(fd, cmd) })
}

pub fn getsockopt_int(fd: RawFd, level: libc::c_int, opt: libc::c_int) -> OsResult<i32> {
    let mut v: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: v and len describe a writable int buffer of the stated length.
    cvt(unsafe {
        libc::getsockopt(
            fd,
            level,
            opt,
            (&mut v as *mut libc::c_int).cast(),
            &mut len,
        )
    })?;
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

/// Readiness of one fd right now (`poll` with timeout 0), as epoll bits
/// (POLLIN/OUT/ERR/HUP/RDHUP share epoll's values). POLLNVAL gives EBADF.
pub fn poll_now(fd: RawFd, events: u32) -> OsResult<u32> {
    let mut p = libc::pollfd {
        fd,
        events: events as libc::c_short,
        revents: 0,
    };
    loop {
        // SAFETY: p is one valid pollfd; timeout 0 never blocks.
        let rc = unsafe { libc::poll(&mut p, 1, 0) };
        if rc >= 0 {
            break;
        }
        let e = OsError::last();
        if e != OsError(libc::EINTR) {
            return Err(e);
        }
    }
    if p.revents & libc::POLLNVAL != 0 {
        return Err(OsError(libc::EBADF));
    }
    Ok(p.revents as u16 as u32)
}
