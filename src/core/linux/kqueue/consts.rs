//! FreeBSD's kqueue constants (`sys/event.h`), with FreeBSD's values.
//!
//! macOS numbers a few of them differently (the timer units); docs/kqueue-emulation.md fixes
//! FreeBSD's, and so does Python's `select` on FreeBSD.

// Filters: `kevent.filter`.
pub const FILTER_READ: i16 = -1;
pub const FILTER_WRITE: i16 = -2;
pub const FILTER_AIO: i16 = -3;
pub const FILTER_VNODE: i16 = -4;
pub const FILTER_PROC: i16 = -5;
pub const FILTER_SIGNAL: i16 = -6;
pub const FILTER_TIMER: i16 = -7;
pub const FILTER_USER: i16 = -11;

// Actions and behaviour: `kevent.flags`.
pub const EV_ADD: u16 = 0x0001;
pub const EV_DELETE: u16 = 0x0002;
pub const EV_ENABLE: u16 = 0x0004;
pub const EV_DISABLE: u16 = 0x0008;
pub const EV_ONESHOT: u16 = 0x0010;
pub const EV_CLEAR: u16 = 0x0020;
pub const EV_RECEIPT: u16 = 0x0040;
pub const EV_DISPATCH: u16 = 0x0080;
/// Bits reserved for the kernel's answers; never stored from a change.
pub const EV_SYSFLAGS: u16 = 0xF000;
pub const EV_FLAG1: u16 = 0x2000;
pub const EV_ERROR: u16 = 0x4000;
pub const EV_EOF: u16 = 0x8000;

// READ/WRITE.
pub const NOTE_LOWAT: u32 = 0x0001;

// VNODE.
pub const NOTE_DELETE: u32 = 0x0001;
pub const NOTE_WRITE: u32 = 0x0002;
pub const NOTE_EXTEND: u32 = 0x0004;
pub const NOTE_ATTRIB: u32 = 0x0008;
pub const NOTE_LINK: u32 = 0x0010;
pub const NOTE_RENAME: u32 = 0x0020;
pub const NOTE_REVOKE: u32 = 0x0040;

// PROC.
pub const NOTE_EXIT: u32 = 0x8000_0000;
pub const NOTE_FORK: u32 = 0x4000_0000;
pub const NOTE_EXEC: u32 = 0x2000_0000;
pub const NOTE_PCTRLMASK: u32 = 0xf000_0000;
pub const NOTE_PDATAMASK: u32 = 0x000f_ffff;
pub const NOTE_TRACK: u32 = 0x0000_0001;
pub const NOTE_TRACKERR: u32 = 0x0000_0002;
pub const NOTE_CHILD: u32 = 0x0000_0004;

// TIMER units (FreeBSD numbering).
pub const NOTE_SECONDS: u32 = 0x0001;
pub const NOTE_MSECONDS: u32 = 0x0002;
pub const NOTE_USECONDS: u32 = 0x0004;
pub const NOTE_NSECONDS: u32 = 0x0008;

// USER.
pub const NOTE_TRIGGER: u32 = 0x0100_0000;
pub const NOTE_FFNOP: u32 = 0x0000_0000;
pub const NOTE_FFAND: u32 = 0x4000_0000;
pub const NOTE_FFOR: u32 = 0x8000_0000;
pub const NOTE_FFCOPY: u32 = 0xc000_0000;
pub const NOTE_FFCTRLMASK: u32 = 0xc000_0000;
pub const NOTE_FFLAGSMASK: u32 = 0x00ff_ffff;
