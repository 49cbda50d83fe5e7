//! The system calls: kqueue(2) and kevent(2), and the conversion between
//! `KEvent` and the OS's `struct kevent`.

use std::ffi::c_void;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

use crate::core::error::{cvt, OsResult};
use crate::core::kevent::KEvent;

/// The OS's `struct kevent` (libc's; FreeBSD 12+ with `ext[4]`).
#[cfg(not(target_os = "linux"))]
pub use libc::kevent as RawEvent;

#[cfg(not(target_os = "linux"))]
use libc::{kevent as sys_kevent, kqueue as sys_kqueue};

/// libkqueue's `struct kevent` on Linux (macOS's layout, 32 bytes): libc
/// declares none for Linux.
#[cfg(target_os = "linux")]
#[repr(C)]
#[derive(Clone, Copy)]
#[allow(non_camel_case_types)]
pub struct RawEvent {
    pub ident: libc::uintptr_t,
    pub filter: libc::c_short,
    pub flags: libc::c_ushort,
    pub fflags: libc::c_uint,
    pub data: libc::intptr_t,
    pub udata: *mut c_void,
}

#[cfg(target_os = "linux")]
extern "C" {
    #[link_name = "kqueue"]
    fn sys_kqueue() -> libc::c_int;
    #[link_name = "kevent"]
    fn sys_kevent(
        kq: libc::c_int,
        changelist: *const RawEvent,
        nchanges: libc::c_int,
        eventlist: *mut RawEvent,
        nevents: libc::c_int,
        timeout: *const libc::timespec,
    ) -> libc::c_int;
}

// The layouts this backend expects, checked at compile time (the cross
// type-check evaluates them for every target): FreeBSD 12+ with 64-bit `data`
// and `ext[4]`; NetBSD with 32-bit `filter` and `flags` and 64-bit `data`;
// OpenBSD with 64-bit `data`; macOS's (and libkqueue's) 32 bytes.
#[cfg(target_os = "freebsd")]
const _: () = assert!(std::mem::size_of::<RawEvent>() == 64);
#[cfg(target_os = "netbsd")]
const _: () = assert!(std::mem::size_of::<RawEvent>() == 40);
#[cfg(any(target_os = "openbsd", target_os = "macos", target_os = "linux"))]
const _: () = assert!(std::mem::size_of::<RawEvent>() == 32);

/// An all-zero `struct kevent` (null udata, zero `ext`).
fn zeroed() -> RawEvent {
    // SAFETY: struct kevent is plain C data (integers and a pointer); all
    // zero bits is a valid value of each field.
    unsafe { std::mem::zeroed() }
}

/// `ev` as the kernel's struct; the token travels in the udata pointer.
/// (The field types differ per OS, so some casts are no-ops on some.)
#[allow(clippy::unnecessary_cast)]
pub fn to_raw(ev: &KEvent) -> RawEvent {
    let mut k = zeroed();
    k.ident = ev.ident as _;
    k.filter = ev.filter as _;
    k.flags = ev.flags as _;
    k.fflags = ev.fflags as _;
    k.data = ev.data as _;
    k.udata = ev.udata as usize as *mut c_void;
    k
}

/// The kernel's struct as a `KEvent`.
#[allow(clippy::unnecessary_cast)]
pub fn from_raw(k: &RawEvent) -> KEvent {
    KEvent {
        ident: k.ident as u64,
        filter: k.filter as _,
        flags: k.flags as _,
        fflags: k.fflags as u32,
        data: k.data as i64,
        udata: k.udata as usize as u64,
    }
}

/// A new queue, close-on-exec.
pub fn kqueue() -> OsResult<OwnedFd> {
    // SAFETY: kqueue() takes no arguments and returns a new descriptor or -1.
    let fd = cvt(unsafe { sys_kqueue() })?;
    // SAFETY: fd is a descriptor we own from here on.
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    set_cloexec(fd)?;
    Ok(owned)
}

/// A close-on-exec duplicate of `fd`.
pub fn dup_cloexec(fd: RawFd) -> OsResult<OwnedFd> {
    // SAFETY: F_DUPFD_CLOEXEC only reads fd; the result is a new descriptor.
    let dup = cvt(unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 0) })?;
    // SAFETY: dup is a new descriptor we own.
    Ok(unsafe { OwnedFd::from_raw_fd(dup) })
}

fn set_cloexec(fd: RawFd) -> OsResult<()> {
    // SAFETY: F_SETFD on a descriptor we own changes only its flags.
    cvt(unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) }).map(drop)
}

/// One kevent(2) call: `out`'s spare capacity receives the events (its
/// length is set to their number). `timeout` None waits forever.
pub fn kevent(
    kq: RawFd,
    changes: &[RawEvent],
    out: &mut Vec<RawEvent>,
    timeout: Option<libc::timespec>,
) -> OsResult<usize> {
    out.clear();
    let tsp = timeout
        .as_ref()
        .map_or(std::ptr::null(), |t| t as *const libc::timespec);
    let nevents = out.capacity().min(libc::c_int::MAX as usize);
    let nchanges = changes.len().min(libc::c_int::MAX as usize);
    // SAFETY: changes points to at least nchanges initialised structs (NetBSD
    // counts in size_t, the others in int); out has
    // room for nevents structs, which the kernel writes; tsp is null or a
    // live timespec.
    let n = cvt(unsafe {
        sys_kevent(
            kq,
            changes.as_ptr(),
            nchanges as _,
            out.as_mut_ptr(),
            nevents as _,
            tsp,
        )
    })? as usize;
    // SAFETY: the kernel initialised the first n (<= nevents) entries.
    unsafe { out.set_len(n) };
    Ok(n)
}
