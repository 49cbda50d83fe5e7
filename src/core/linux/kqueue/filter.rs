//! What every filter implements (`Filter`) and how one is created (`Spec`);
//! the table of filters is specs.rs.
//!
//! The registry (registry.rs) owns the flag state machine (add, modify,
//! enable, disable, oneshot, dispatch, clear bookkeeping, udata) for every
//! filter alike; a filter only knows its kernel resource and how to turn it
//! into an event.

use super::ctx::Ctx;
use super::knote::{Collect, Info};
use crate::core::error::OsResult;
use crate::core::kevent::KEvent;

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

    /// EV_DELETE: releases the kernel resource as `detach` does, and says
    /// whether the registration was still about the same object (as
    /// `validate`).
    fn delete(&mut self, cx: &mut Ctx, kn: &Info) -> OsResult<()> {
        let valid = self.validate(cx, kn);
        self.detach(cx, kn);
        valid
    }

    /// Releases the kernel resource. Must not fail: also runs on teardown.
    fn detach(&mut self, cx: &mut Ctx, kn: &Info);
}

/// How a registration of one filter is created: makes its kernel side
/// (left for `arm` to bring in line with `Info::enabled`).
pub type AttachFn = fn(&mut Ctx, &Info, &KEvent) -> OsResult<Box<dyn Filter>>;

/// Where the registry keeps a filter's registrations.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Home {
    /// In its table, boxed, found by (ident, filter).
    Table,
    /// In the fd table's slot of the descriptor, at this position (READ 0,
    /// WRITE 1): 56 bytes per descriptor for both, no allocation. Its
    /// `Filter` holds nothing (fds.rs).
    Fd(usize),
}

pub struct Spec {
    pub filter: i16,
    /// The ident is a file descriptor: EBADF when it is not open.
    pub takes_fd: bool,
    pub attach: AttachFn,
    pub home: Home,
}
