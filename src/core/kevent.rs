//! `KEvent`: one kqueue change or event, the same Rust type whichever kqueue
//! backend is compiled in (the Linux emulation or the kernel's own).
//!
//! The integer fields take the widths of the OS's `struct kevent`: `filter`
//! and `flags` are 32-bit on NetBSD and 16-bit elsewhere; `data` is 64-bit
//! everywhere this crate builds (FreeBSD 12+, OpenBSD, NetBSD, and the
//! 64-bit macOS and Linux targets). `udata` is an opaque token chosen by the
//! caller (0 means none); the backend carries it in the kernel's pointer.

/// `kevent.filter`'s type on this OS.
#[cfg(target_os = "netbsd")]
pub type Filter = u32;
/// `kevent.filter`'s type on this OS.
#[cfg(not(target_os = "netbsd"))]
pub type Filter = i16;

/// `kevent.flags`'s type on this OS.
#[cfg(target_os = "netbsd")]
pub type Flags = u32;
/// `kevent.flags`'s type on this OS.
#[cfg(not(target_os = "netbsd"))]
pub type Flags = u16;

/// One change or event, field for field the OS's `struct kevent`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct KEvent {
    pub ident: u64,
    pub filter: Filter,
    pub flags: Flags,
    pub fflags: u32,
    pub data: i64,
    pub udata: u64,
}
