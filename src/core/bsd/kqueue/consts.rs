//! The kqueue constants the core itself needs, with the OS's values (libc's
//! on the BSDs and macOS; FreeBSD's for libkqueue on Linux, which follows
//! FreeBSD).

use crate::core::kevent::{Filter, Flags};

#[cfg(not(target_os = "linux"))]
mod os {
    use super::{Filter, Flags};
    pub const FILTER_READ: Filter = libc::EVFILT_READ as Filter;
    pub const EV_ADD: Flags = libc::EV_ADD as Flags;
    pub const EV_DELETE: Flags = libc::EV_DELETE as Flags;
    pub const EV_ONESHOT: Flags = libc::EV_ONESHOT as Flags;
    pub const EV_ERROR: Flags = libc::EV_ERROR as Flags;
}

#[cfg(target_os = "linux")]
mod os {
    use super::{Filter, Flags};
    pub const FILTER_READ: Filter = -1;
    pub const EV_ADD: Flags = 0x0001;
    pub const EV_DELETE: Flags = 0x0002;
    pub const EV_ONESHOT: Flags = 0x0010;
    pub const EV_ERROR: Flags = 0x4000;
}

pub use os::*;

/// Whether a change keeps the registration's udata (FreeBSD's EV_KEEPUDATA;
/// no such flag elsewhere).
#[cfg(target_os = "freebsd")]
pub fn keeps_udata(flags: Flags) -> bool {
    flags & libc::EV_KEEPUDATA as Flags != 0
}
/// Whether a change keeps the registration's udata (FreeBSD's EV_KEEPUDATA;
/// no such flag elsewhere).
#[cfg(not(target_os = "freebsd"))]
pub fn keeps_udata(_flags: Flags) -> bool {
    false
}
