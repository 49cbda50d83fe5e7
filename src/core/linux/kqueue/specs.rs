//! The one place that maps a filter number to its implementation: adding a
//! filter is one file plus one arm.

use super::consts::*;
use super::filter::{Attach, Spec};
use super::{proc, signal, timer, user, vnode};
use crate::core::error::{OsError, OsResult};

/// Every filter this emulation implements. AIO has no Linux counterpart here:
/// it and unknown numbers fail with EINVAL.
const SPECS: &[Spec] = &[
    Spec {
        filter: FILTER_READ,
        takes_fd: true,
        attach: Attach::Fd(0),
    },
    Spec {
        filter: FILTER_WRITE,
        takes_fd: true,
        attach: Attach::Fd(1),
    },
    Spec {
        filter: FILTER_VNODE,
        takes_fd: true,
        attach: Attach::Other(vnode::attach),
    },
    Spec {
        filter: FILTER_PROC,
        takes_fd: false,
        attach: Attach::Other(proc::attach),
    },
    Spec {
        filter: FILTER_SIGNAL,
        takes_fd: false,
        attach: Attach::Other(signal::attach),
    },
    Spec {
        filter: FILTER_TIMER,
        takes_fd: false,
        attach: Attach::Other(timer::attach),
    },
    Spec {
        filter: FILTER_USER,
        takes_fd: false,
        attach: Attach::Other(user::attach),
    },
];

pub fn spec(filter: i16) -> OsResult<&'static Spec> {
    SPECS
        .iter()
        .find(|s| s.filter == filter)
        .ok_or(OsError(libc::EINVAL))
}
