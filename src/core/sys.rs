//! The portable system-call layer of the core: every libc call the core makes
//! on any POSIX system goes through a wrapper here, which turns `-1 and
//! errno` into an `OsError`; the Linux-only calls live in `linux/sys.rs`,
//! the native kqueue(2)/kevent(2) calls in `bsd/kqueue/sys.rs`.
//!
//! EINTR is retried in one place, `retry_eintr`: a wrapper that may be
//! interrupted either retries through it (calls that do not wait: reads,
//! `poll_now`) or reports EINTR to a caller that retries through it with the
//! time left (waits with a deadline, PEP 475).

use std::ffi::CStr;
use std::mem::MaybeUninit;
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};

use super::deadline::Deadline;
use super::error::{cvt, OsError, OsResult};

/// Runs `call` until it fails with something other than EINTR. A `call` that
/// waits reads the time left from its deadline on each attempt, so retries
/// keep to it.
pub fn retry_eintr<T>(mut call: impl FnMut() -> OsResult<T>) -> OsResult<T> {
    loop {
        match call() {
            Err(OsError(libc::EINTR)) => continue,
            other => return other,
        }
    }
}

/// Takes ownership of a descriptor a libc call just returned.
pub fn own(fd: libc::c_int) -> OwnedFd {
    // SAFETY: callers pass only a descriptor that a successful libc call has
    // just created (or one whose ownership the caller hands over, as
    // `fromfd` documents), so it is open and owned by nothing else.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

/// A descriptor a caller handed over (Python's `fromfd` contract), closed
/// on drop. The caller may have closed it already (CPython's own `fromfd`
/// test closes the number twice): a close that fails is ignored, where
/// `OwnedFd` aborts the process in debug builds.
pub struct AdoptedFd(RawFd);

impl AdoptedFd {
    /// Takes over `fd`; nothing else may close it but by the caller's choice.
    pub fn new(fd: RawFd) -> AdoptedFd {
        AdoptedFd(fd)
    }
}

impl From<OwnedFd> for AdoptedFd {
    fn from(fd: OwnedFd) -> AdoptedFd {
        AdoptedFd(fd.into_raw_fd())
    }
}

impl AsRawFd for AdoptedFd {
    fn as_raw_fd(&self) -> RawFd {
        self.0
    }
}

impl Drop for AdoptedFd {
    fn drop(&mut self) {
        // SAFETY: close only releases the number; EBADF (closed already by
        // the caller) is the one failure, and there is nothing to do about it.
        unsafe { libc::close(self.0) };
    }
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

/// `fcntl` with an int answer and no argument (F_GETPIPE_SZ).
pub fn fcntl_int(fd: RawFd, cmd: libc::c_int) -> OsResult<i32> {
    // SAFETY: the commands used take no argument and return an int.
    cvt(unsafe { libc::fcntl(fd, cmd) })
}

/// One `read` into `buf`, retried on EINTR; `None` when nothing is there yet
/// (EAGAIN on a non-blocking descriptor).
pub fn read(fd: RawFd, buf: &mut [u8]) -> OsResult<Option<usize>> {
    // SAFETY: buf is buf.len() writable bytes.
    unsafe { read_raw(fd, buf.as_mut_ptr(), buf.len()) }
}

/// `read` into `len` bytes at `ptr`, retried on EINTR; `None` on EAGAIN.
///
/// # Safety
/// `ptr` must point to `len` writable bytes for any bit pattern the kernel
/// may write there (plain data).
pub(crate) unsafe fn read_raw(fd: RawFd, ptr: *mut u8, len: usize) -> OsResult<Option<usize>> {
    let got = retry_eintr(|| {
        // SAFETY: the caller guarantees ptr/len describe writable bytes.
        let n = unsafe { libc::read(fd, ptr.cast(), len) };
        if n < 0 {
            Err(OsError::last())
        } else {
            Ok(n as usize)
        }
    });
    match got {
        Ok(n) => Ok(Some(n)),
        Err(OsError(libc::EAGAIN)) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Reads one 8-byte counter (eventfd, timerfd); `None` when there is none yet.
pub fn read_u64(fd: RawFd) -> OsResult<Option<u64>> {
    let mut v = [0u8; 8];
    match read(fd, &mut v)? {
        Some(8) => Ok(Some(u64::from_ne_bytes(v))),
        // These descriptors read 8 bytes or fail: a short read does not
        // happen, and like end of file it means nothing to read.
        _ => Ok(None),
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
    #[allow(clippy::unnecessary_cast)]
    pub fn kind(&self) -> u32 {
        self.mode & libc::S_IFMT as u32
    }
}

#[allow(clippy::unnecessary_cast, clippy::useless_conversion)]
pub fn fstat(fd: RawFd) -> OsResult<Stat> {
    let mut st = MaybeUninit::<libc::stat>::uninit();
    // SAFETY: st is a writable stat buffer that fstat fills on success.
    cvt(unsafe { libc::fstat(fd, st.as_mut_ptr()) })?;
    // SAFETY: fstat succeeded, so st is initialised.
    let st = unsafe { st.assume_init() };
    Ok(Stat {
        file: (st.st_dev as u64, st.st_ino as u64),
        mode: st.st_mode as u32,
        size: st.st_size as i64,
        nlink: st.st_nlink as u64,
    })
}

/// The file offset of `fd` (regular files).
#[allow(clippy::unnecessary_cast)]
pub fn offset(fd: RawFd) -> OsResult<i64> {
    // SAFETY: lseek with offset 0 from SEEK_CUR only reads the offset.
    let off = unsafe { libc::lseek(fd, 0, libc::SEEK_CUR) };
    if off < 0 {
        Err(OsError::last())
    } else {
        Ok(off as i64)
    }
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

/// Readiness of one fd right now (`poll` with timeout 0, retried on EINTR),
/// as revents bits. POLLNVAL gives EBADF.
pub fn poll_now(fd: RawFd, events: u32) -> OsResult<u32> {
    let mut p = [libc::pollfd {
        fd,
        events: events as libc::c_short,
        revents: 0,
    }];
    retry_eintr(|| poll(&mut p, Deadline::Immediate))?;
    if p[0].revents & libc::POLLNVAL != 0 {
        return Err(OsError(libc::EBADF));
    }
    Ok(p[0].revents as u16 as u32)
}

/// One wait on `fds` with the deadline's time left: plain `poll(2)` when the
/// wait is 0 or forever (the cheapest call), `ppoll(2)` with nanosecond
/// precision otherwise. EINTR is returned, for `retry_eintr`.
pub fn poll(fds: &mut [libc::pollfd], deadline: Deadline) -> OsResult<usize> {
    let rc = match deadline {
        Deadline::Immediate | Deadline::Forever => {
            let ms = if deadline == Deadline::Immediate {
                0
            } else {
                -1
            };
            // SAFETY: fds points to fds.len() initialised pollfd structs that
            // the kernel may write revents into.
            unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, ms) }
        }
        // macOS has no ppoll(2): milliseconds, rounded up.
        #[cfg(target_os = "macos")]
        Deadline::At(_) => {
            // SAFETY: as above.
            unsafe {
                libc::poll(
                    fds.as_mut_ptr(),
                    fds.len() as libc::nfds_t,
                    deadline.remaining_ms(),
                )
            }
        }
        #[cfg(not(target_os = "macos"))]
        Deadline::At(_) => {
            let ts = deadline.remaining_timespec();
            let tsp = ts
                .as_ref()
                .map_or(std::ptr::null(), |t| t as *const libc::timespec);
            // SAFETY: as above; tsp is null or points to a live timespec; a null
            // sigmask leaves the signal mask unchanged.
            unsafe {
                libc::ppoll(
                    fds.as_mut_ptr(),
                    fds.len() as libc::nfds_t,
                    tsp,
                    std::ptr::null(),
                )
            }
        }
    };
    cvt(rc).map(|n| n as usize)
}

/// macOS `select(2)` in its unlimited form (`select$DARWIN_EXTSN`, the
/// symbol `_DARWIN_UNLIMITED_SELECT` selects), over bit sets of 32-bit words
/// of any size. EINTR is returned, for `retry_eintr`.
#[cfg(target_os = "macos")]
pub fn select_unlimited(
    nfds: libc::c_int,
    r: &mut [u32],
    w: &mut [u32],
    e: &mut [u32],
    timeout: Option<libc::timeval>,
) -> OsResult<usize> {
    extern "C" {
        #[link_name = "select$DARWIN_EXTSN"]
        fn select_unlimited(
            nfds: libc::c_int,
            readfds: *mut u32,
            writefds: *mut u32,
            errorfds: *mut u32,
            timeout: *mut libc::timeval,
        ) -> libc::c_int;
    }
    let words = (nfds.max(0) as usize).div_ceil(32);
    if r.len() < words || w.len() < words || e.len() < words {
        return Err(OsError(libc::EINVAL));
    }
    let mut tv = timeout;
    let tvp = tv
        .as_mut()
        .map_or(std::ptr::null_mut(), |t| t as *mut libc::timeval);
    // SAFETY: each set holds enough 32-bit words for every descriptor below
    // nfds (checked above), as the unlimited form requires; tvp is null or a
    // live timeval.
    cvt(unsafe { select_unlimited(nfds, r.as_mut_ptr(), w.as_mut_ptr(), e.as_mut_ptr(), tvp) })
        .map(|n| n as usize)
}

/// The C library's text for `errno` (XSI `strerror_r`), `None` for an
/// unknown number.
pub fn strerror(errno: i32) -> Option<String> {
    let mut buf = [0 as libc::c_char; 256];
    // SAFETY: buf is a valid writable buffer of the given length; the XSI
    // strerror_r (what the libc crate binds on glibc) writes a NUL-terminated
    // string into it and returns 0, or returns an error number.
    let rc = unsafe { libc::strerror_r(errno, buf.as_mut_ptr(), buf.len()) };
    if rc != 0 {
        return None;
    }
    // SAFETY: on success strerror_r left a NUL-terminated string in buf.
    let text = unsafe { CStr::from_ptr(buf.as_ptr()) };
    Some(text.to_string_lossy().into_owned())
}

/// Installs `child` as a `pthread_atfork` handler run in the child.
pub fn atfork_child(child: extern "C" fn()) {
    // SAFETY: pthread_atfork only records the handler, a plain extern "C" fn
    // that lives for the whole program.
    unsafe { libc::pthread_atfork(None, None, Some(child)) };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_repeats_only_eintr() {
        let mut n = 0;
        let r: OsResult<i32> = retry_eintr(|| {
            n += 1;
            if n < 3 {
                Err(OsError(libc::EINTR))
            } else {
                Ok(7)
            }
        });
        assert_eq!((r, n), (Ok(7), 3));
        let r: OsResult<i32> = retry_eintr(|| Err(OsError(libc::EBADF)));
        assert_eq!(r, Err(OsError(libc::EBADF)));
    }
}
