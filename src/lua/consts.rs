//! The module's constants, each where the OS defines it, with the OS's values
//! (libc's): Python's names. On Linux the kqueue emulation's constants carry
//! FreeBSD's values (as does libkqueue, for the `native-kqueue` test build).

use std::ffi::CStr;

use super::stack::Raw;

const POLL: &[(&CStr, i64)] = &[
    (c"POLLIN", libc::POLLIN as i64),
    (c"POLLPRI", libc::POLLPRI as i64),
    (c"POLLOUT", libc::POLLOUT as i64),
    (c"POLLERR", libc::POLLERR as i64),
    (c"POLLHUP", libc::POLLHUP as i64),
    (c"POLLNVAL", libc::POLLNVAL as i64),
    (c"POLLRDNORM", libc::POLLRDNORM as i64),
    (c"POLLRDBAND", libc::POLLRDBAND as i64),
    (c"POLLWRNORM", libc::POLLWRNORM as i64),
    (c"POLLWRBAND", libc::POLLWRBAND as i64),
    (c"PIPE_BUF", libc::PIPE_BUF as i64),
    #[cfg(target_os = "linux")]
    (c"POLLMSG", 0x400),
    #[cfg(any(target_os = "linux", target_os = "freebsd"))]
    (c"POLLRDHUP", libc::POLLRDHUP as i64),
];

#[cfg(target_os = "linux")]
const EPOLL: &[(&CStr, i64)] = &[
    (c"EPOLLIN", libc::EPOLLIN as u32 as i64),
    (c"EPOLLOUT", libc::EPOLLOUT as u32 as i64),
    (c"EPOLLPRI", libc::EPOLLPRI as u32 as i64),
    (c"EPOLLERR", libc::EPOLLERR as u32 as i64),
    (c"EPOLLHUP", libc::EPOLLHUP as u32 as i64),
    (c"EPOLLET", libc::EPOLLET as u32 as i64),
    (c"EPOLLONESHOT", libc::EPOLLONESHOT as u32 as i64),
    (c"EPOLLEXCLUSIVE", libc::EPOLLEXCLUSIVE as u32 as i64),
    (c"EPOLLRDHUP", libc::EPOLLRDHUP as u32 as i64),
    (c"EPOLLRDNORM", libc::EPOLLRDNORM as u32 as i64),
    (c"EPOLLRDBAND", libc::EPOLLRDBAND as u32 as i64),
    (c"EPOLLWRNORM", libc::EPOLLWRNORM as u32 as i64),
    (c"EPOLLWRBAND", libc::EPOLLWRBAND as u32 as i64),
    (c"EPOLLMSG", libc::EPOLLMSG as u32 as i64),
    (c"EPOLL_CLOEXEC", libc::EPOLL_CLOEXEC as i64),
];

/// No epoll here.
#[cfg(not(target_os = "linux"))]
const EPOLL: &[(&CStr, i64)] = &[];

/// FreeBSD's values: the emulation speaks FreeBSD; so does libkqueue, but for
/// the timer units.
#[cfg(target_os = "linux")]
const KQUEUE: &[(&CStr, i64)] = &[
    (c"KQ_FILTER_READ", -1),
    (c"KQ_FILTER_WRITE", -2),
    (c"KQ_FILTER_AIO", -3),
    (c"KQ_FILTER_VNODE", -4),
    (c"KQ_FILTER_PROC", -5),
    (c"KQ_FILTER_SIGNAL", -6),
    (c"KQ_FILTER_TIMER", -7),
    (c"KQ_FILTER_USER", -11),
    (c"KQ_EV_ADD", 0x1),
    (c"KQ_EV_DELETE", 0x2),
    (c"KQ_EV_ENABLE", 0x4),
    (c"KQ_EV_DISABLE", 0x8),
    (c"KQ_EV_ONESHOT", 0x10),
    (c"KQ_EV_CLEAR", 0x20),
    (c"KQ_EV_RECEIPT", 0x40),
    (c"KQ_EV_DISPATCH", 0x80),
    (c"KQ_EV_SYSFLAGS", 0xF000),
    (c"KQ_EV_FLAG1", 0x2000),
    (c"KQ_EV_ERROR", 0x4000),
    (c"KQ_EV_EOF", 0x8000),
    (c"KQ_NOTE_LOWAT", 0x1),
    (c"KQ_NOTE_DELETE", 0x1),
    (c"KQ_NOTE_WRITE", 0x2),
    (c"KQ_NOTE_EXTEND", 0x4),
    (c"KQ_NOTE_ATTRIB", 0x8),
    (c"KQ_NOTE_LINK", 0x10),
    (c"KQ_NOTE_RENAME", 0x20),
    (c"KQ_NOTE_REVOKE", 0x40),
    (c"KQ_NOTE_EXIT", 0x8000_0000),
    (c"KQ_NOTE_FORK", 0x4000_0000),
    (c"KQ_NOTE_EXEC", 0x2000_0000),
    (c"KQ_NOTE_PCTRLMASK", 0xf000_0000),
    (c"KQ_NOTE_PDATAMASK", 0x000f_ffff),
    (c"KQ_NOTE_TRACK", 0x1),
    (c"KQ_NOTE_TRACKERR", 0x2),
    (c"KQ_NOTE_CHILD", 0x4),
    // Timer units: FreeBSD's for the emulation; libkqueue's header (the
    // native-kqueue test build) numbers them as macOS does, without MSECONDS.
    #[cfg(not(feature = "native-kqueue"))]
    (c"KQ_NOTE_SECONDS", 0x1),
    #[cfg(not(feature = "native-kqueue"))]
    (c"KQ_NOTE_MSECONDS", 0x2),
    #[cfg(not(feature = "native-kqueue"))]
    (c"KQ_NOTE_USECONDS", 0x4),
    #[cfg(not(feature = "native-kqueue"))]
    (c"KQ_NOTE_NSECONDS", 0x8),
    #[cfg(feature = "native-kqueue")]
    (c"KQ_NOTE_SECONDS", 0x1),
    #[cfg(feature = "native-kqueue")]
    (c"KQ_NOTE_USECONDS", 0x2),
    #[cfg(feature = "native-kqueue")]
    (c"KQ_NOTE_NSECONDS", 0x4),
    (c"KQ_NOTE_TRIGGER", 0x0100_0000),
    (c"KQ_NOTE_FFNOP", 0),
    (c"KQ_NOTE_FFAND", 0x4000_0000),
    (c"KQ_NOTE_FFOR", 0x8000_0000),
    (c"KQ_NOTE_FFCOPY", 0xc000_0000),
    (c"KQ_NOTE_FFCTRLMASK", 0xc000_0000),
    (c"KQ_NOTE_FFLAGSMASK", 0x00ff_ffff),
];

/// The kernel's own values (libc's), each where the OS defines it.
#[cfg(not(target_os = "linux"))]
#[allow(deprecated)] // libc marks a few NOTE_ masks "not stable across OS versions"
const KQUEUE: &[(&CStr, i64)] = &[
    (c"KQ_FILTER_READ", libc::EVFILT_READ as i64),
    (c"KQ_FILTER_WRITE", libc::EVFILT_WRITE as i64),
    (c"KQ_FILTER_AIO", libc::EVFILT_AIO as i64),
    (c"KQ_FILTER_VNODE", libc::EVFILT_VNODE as i64),
    (c"KQ_FILTER_PROC", libc::EVFILT_PROC as i64),
    (c"KQ_FILTER_SIGNAL", libc::EVFILT_SIGNAL as i64),
    (c"KQ_FILTER_TIMER", libc::EVFILT_TIMER as i64),
    (c"KQ_FILTER_USER", libc::EVFILT_USER as i64),
    (c"KQ_EV_ADD", libc::EV_ADD as i64),
    (c"KQ_EV_DELETE", libc::EV_DELETE as i64),
    (c"KQ_EV_ENABLE", libc::EV_ENABLE as i64),
    (c"KQ_EV_DISABLE", libc::EV_DISABLE as i64),
    (c"KQ_EV_ONESHOT", libc::EV_ONESHOT as i64),
    (c"KQ_EV_CLEAR", libc::EV_CLEAR as i64),
    (c"KQ_EV_RECEIPT", libc::EV_RECEIPT as i64),
    (c"KQ_EV_DISPATCH", libc::EV_DISPATCH as i64),
    (c"KQ_EV_SYSFLAGS", libc::EV_SYSFLAGS as i64),
    (c"KQ_EV_FLAG1", libc::EV_FLAG1 as i64),
    (c"KQ_EV_ERROR", libc::EV_ERROR as i64),
    (c"KQ_EV_EOF", libc::EV_EOF as i64),
    (c"KQ_NOTE_LOWAT", libc::NOTE_LOWAT as i64),
    (c"KQ_NOTE_DELETE", libc::NOTE_DELETE as i64),
    (c"KQ_NOTE_WRITE", libc::NOTE_WRITE as i64),
    (c"KQ_NOTE_EXTEND", libc::NOTE_EXTEND as i64),
    (c"KQ_NOTE_ATTRIB", libc::NOTE_ATTRIB as i64),
    (c"KQ_NOTE_LINK", libc::NOTE_LINK as i64),
    (c"KQ_NOTE_RENAME", libc::NOTE_RENAME as i64),
    (c"KQ_NOTE_REVOKE", libc::NOTE_REVOKE as i64),
    (c"KQ_NOTE_EXIT", libc::NOTE_EXIT as i64),
    (c"KQ_NOTE_FORK", libc::NOTE_FORK as i64),
    (c"KQ_NOTE_EXEC", libc::NOTE_EXEC as i64),
    (c"KQ_NOTE_PCTRLMASK", libc::NOTE_PCTRLMASK as i64),
    (c"KQ_NOTE_PDATAMASK", libc::NOTE_PDATAMASK as i64),
    (c"KQ_NOTE_TRACK", libc::NOTE_TRACK as i64),
    (c"KQ_NOTE_TRACKERR", libc::NOTE_TRACKERR as i64),
    (c"KQ_NOTE_CHILD", libc::NOTE_CHILD as i64),
    (c"KQ_NOTE_TRIGGER", libc::NOTE_TRIGGER as i64),
    (c"KQ_NOTE_FFNOP", libc::NOTE_FFNOP as i64),
    (c"KQ_NOTE_FFAND", libc::NOTE_FFAND as i64),
    (c"KQ_NOTE_FFOR", libc::NOTE_FFOR as i64),
    (c"KQ_NOTE_FFCOPY", libc::NOTE_FFCOPY as i64),
    (c"KQ_NOTE_FFCTRLMASK", libc::NOTE_FFCTRLMASK as i64),
    (c"KQ_NOTE_FFLAGSMASK", libc::NOTE_FFLAGSMASK as i64),
    // Timer units: macOS numbers them differently and has no MSECONDS (its
    // default unit); OpenBSD's libc declares none.
    #[cfg(any(target_os = "macos", target_os = "freebsd", target_os = "netbsd"))]
    (c"KQ_NOTE_SECONDS", libc::NOTE_SECONDS as i64),
    #[cfg(any(target_os = "freebsd", target_os = "netbsd"))]
    (c"KQ_NOTE_MSECONDS", libc::NOTE_MSECONDS as i64),
    #[cfg(any(target_os = "macos", target_os = "freebsd", target_os = "netbsd"))]
    (c"KQ_NOTE_USECONDS", libc::NOTE_USECONDS as i64),
    #[cfg(any(target_os = "macos", target_os = "freebsd", target_os = "netbsd"))]
    (c"KQ_NOTE_NSECONDS", libc::NOTE_NSECONDS as i64),
];

/// Sets every constant on the module table at stack index `module`.
pub fn install(lua: &mut Raw, module: std::ffi::c_int) {
    for (name, value) in POLL.iter().chain(EPOLL).chain(KQUEUE) {
        lua.push_int(*value);
        lua.raw_set_field(module, name);
    }
}
