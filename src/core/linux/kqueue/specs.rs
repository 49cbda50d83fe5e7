//! The one place that maps a filter number to its implementation: adding a
//! filter is one file plus one row.

use super::consts::*;
use super::fds::FdFilter;
use super::fdtable::Dir;
use super::filter::{Filter, Home, Spec};
use super::{proc, read, signal, timer, user, vnode, write};
use crate::core::error::{OsError, OsResult};

/// Every filter this emulation implements. AIO has no Linux counterpart here:
/// it and unknown numbers fail with EINVAL.
const SPECS: &[Spec] = &[
    Spec {
        filter: FILTER_READ,
        takes_fd: true,
        attach: read::attach,
        home: Home::Fd(0),
    },
    Spec {
        filter: FILTER_WRITE,
        takes_fd: true,
        attach: write::attach,
        home: Home::Fd(1),
    },
    Spec {
        filter: FILTER_VNODE,
        takes_fd: true,
        attach: vnode::attach,
        home: Home::Table,
    },
    Spec {
        filter: FILTER_PROC,
        takes_fd: false,
        attach: proc::attach,
        home: Home::Table,
    },
    Spec {
        filter: FILTER_SIGNAL,
        takes_fd: false,
        attach: signal::attach,
        home: Home::Table,
    },
    Spec {
        filter: FILTER_TIMER,
        takes_fd: false,
        attach: timer::attach,
        home: Home::Table,
    },
    Spec {
        filter: FILTER_USER,
        takes_fd: false,
        attach: user::attach,
        home: Home::Table,
    },
];

pub fn spec(filter: i16) -> OsResult<&'static Spec> {
    SPECS
        .iter()
        .find(|s| s.filter == filter)
        .ok_or(OsError(libc::EINVAL))
}

/// The filter number of fd table position `dir` (READ 0, WRITE 1).
/// What fd table position `dir` is (READ 0, WRITE 1).
#[inline]
pub fn fd_dir(dir: usize) -> &'static Dir {
    [&read::READ, &write::WRITE][dir]
}

pub fn fd_filter(dir: usize) -> i16 {
    [read::READ.filter, write::WRITE.filter][dir]
}

/// Runs `f` on the `Filter` of fd table position `dir`: it holds nothing
/// (the state is the fd table's), so none is kept per registration, and
/// each direction's is made on the spot (known to the compiler, so its
/// calls are direct).
#[inline]
pub fn with_fd_imp<R>(dir: usize, f: impl FnOnce(&mut dyn Filter) -> R) -> R {
    if dir == 0 {
        f(&mut FdFilter::<read::Read>::new())
    } else {
        f(&mut FdFilter::<write::Write>::new())
    }
}
