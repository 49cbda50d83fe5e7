//! The plain data of a registration (knote) that the registry, the fd table
//! and the filters exchange: nothing here knows the kernel or the queue.

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
