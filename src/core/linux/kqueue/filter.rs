//! What every filter implements, and the one place that maps a filter number
//! to its implementation (`attach`): adding a filter is one file plus one arm.
//!
//! The registry (registry.rs) owns the flag state machine (add, modify,
//! enable, disable, oneshot, dispatch, clear bookkeeping, udata); a filter
//! only knows its kernel resource and how to turn it into an event.

use super::ctx::Ctx;
use super::{consts::*, KEvent};
use super::{proc, signal, timer, user, vnode};
use crate::core::error::{OsError, OsResult};

/// The registry's view of one registration, handed to its filter.
#[derive(Clone, Copy, Debug)]
pub struct Info {
    /// Unique for the life of the queue (never reused).
    pub id: u64,
    pub ident: u64,
    pub filter: i16,
    /// Stored behaviour flags (EV_ONESHOT, EV_CLEAR, EV_DISPATCH, ...).
    pub flags: u16,
    pub enabled: bool,
}

impl Info {
    pub fn has(&self, flag: u16) -> bool {
        self.flags & flag != 0
    }
}

/// The registry's bookkeeping for one registration, whatever its filter
/// (16 bytes: the fd table keeps two per descriptor).
#[derive(Clone, Copy, Debug, Default)]
pub struct State {
    /// The caller's token; 0 for none.
    pub udata: u64,
    /// The `control` call that last delivered it (see Registry::call).
    pub delivered_in: u32,
    /// Stored behaviour flags (EV_ONESHOT, EV_CLEAR, EV_DISPATCH, ...).
    pub flags: u16,
    pub enabled: bool,
    /// On the active list.
    pub active: bool,
}

/// An event a filter has ready: the registration's own ident, filter, flags
/// and udata are added by the registry.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Ready {
    pub data: i64,
    pub fflags: u32,
    /// Extra flags for this event (EV_EOF; EV_ONESHOT forces removal).
    pub flags: u16,
}

pub enum Collect {
    NotReady,
    Ready(Ready),
    /// The thing watched is gone (its fd was closed): drop the registration
    /// silently, as BSD does when a descriptor is closed.
    Gone,
}

pub trait Filter: Send {
    /// An EV_ADD on an existing registration: take the change's fflags/data.
    fn modify(&mut self, cx: &mut Ctx, kn: &Info, kev: &KEvent) -> OsResult<()>;

    /// Any other change (EV_ENABLE, EV_DISABLE, flags 0) on an existing
    /// registration. USER applies NOTE_TRIGGER and the ffctrl edits here.
    fn touch(&mut self, _cx: &mut Ctx, _kn: &Info, _kev: &KEvent) -> OsResult<()> {
        Ok(())
    }

    /// Before a non-EV_ADD change: is the registration still about the same
    /// object? (fd filters: ENOENT once the fd number names another file.)
    fn validate(&self, _cx: &mut Ctx, _kn: &Info) -> OsResult<()> {
        Ok(())
    }

    /// Brings the kernel side in line with `kn.enabled` and `kn.flags`.
    /// `Ok(true)` when an event is already pending without any kernel report
    /// (a triggered USER event, a regular file, accumulated vnode notes).
    fn arm(&mut self, cx: &mut Ctx, kn: &Info) -> OsResult<bool>;

    /// A kernel source reported `hint` (epoll bits, inotify mask) for this
    /// registration; true when it may now have an event.
    fn event(&mut self, _cx: &mut Ctx, _kn: &Info, _hint: u32) -> bool {
        true
    }

    /// Builds the event if there is one now.
    fn collect(&mut self, cx: &mut Ctx, kn: &Info) -> Collect;

    /// After a delivery that did not remove the registration: resets edge
    /// state. Returns true to stay on the active list (level-triggered state
    /// the kernel will not report again by itself).
    fn delivered(&mut self, _cx: &mut Ctx, _kn: &Info) -> bool {
        false
    }

    /// True for state changed outside the queue lock (signal counts): the
    /// registry polls `pending` on every control instead of waiting for
    /// `event`.
    fn is_async(&self) -> bool {
        false
    }

    fn pending(&self) -> bool {
        false
    }

    /// Releases the kernel resource. Must not fail: also runs on teardown.
    fn detach(&mut self, cx: &mut Ctx, kn: &Info);
}

/// How a registration of one filter is created.
pub type AttachFn = fn(&mut Ctx, &Info, &KEvent) -> OsResult<Box<dyn Filter>>;

pub enum Attach {
    /// READ (0) or WRITE (1): kept in the fd table (fdtable.rs), not boxed.
    Fd(usize),
    Other(AttachFn),
}

pub struct Spec {
    pub filter: i16,
    /// The ident is a file descriptor: EBADF when it is not open.
    pub takes_fd: bool,
    pub attach: Attach,
}

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
