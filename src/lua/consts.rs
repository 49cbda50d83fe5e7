//! The module's constants: Python's Linux names and values, and the BSD kqueue
//! constants with FreeBSD's values.

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
    (c"POLLMSG", 0x400),
    (c"POLLRDHUP", libc::POLLRDHUP as i64),
    (c"PIPE_BUF", libc::PIPE_BUF as i64),
];

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

/// FreeBSD's values, whatever the host: the emulation speaks FreeBSD.
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
    (c"KQ_NOTE_SECONDS", 0x1),
    (c"KQ_NOTE_MSECONDS", 0x2),
    (c"KQ_NOTE_USECONDS", 0x4),
    (c"KQ_NOTE_NSECONDS", 0x8),
    (c"KQ_NOTE_TRIGGER", 0x0100_0000),
    (c"KQ_NOTE_FFNOP", 0),
    (c"KQ_NOTE_FFAND", 0x4000_0000),
    (c"KQ_NOTE_FFOR", 0x8000_0000),
    (c"KQ_NOTE_FFCOPY", 0xc000_0000),
    (c"KQ_NOTE_FFCTRLMASK", 0xc000_0000),
    (c"KQ_NOTE_FFLAGSMASK", 0x00ff_ffff),
];

/// Sets every constant on the module table at stack index `module`.
pub fn install(lua: &mut Raw, module: std::ffi::c_int) {
    for (name, value) in POLL.iter().chain(EPOLL).chain(KQUEUE) {
        lua.push_int(*value);
        lua.raw_set_field(module, name);
    }
}
