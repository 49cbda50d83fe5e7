//! `data` measured when it is first looked at. What a READ or WRITE event's
//! `data` says (bytes readable, room to write) costs a system call or two
//! (FIONREAD; SO_SNDBUF and SIOCOUTQ) that epoll does not make, while most
//! loops never read it. So a delivered event carries, in `data`, what its
//! measurement needs, and the caller measures when the value is wanted
//! (`measure_deferred`; the Lua kevent does it on the first read of `data`,
//! a comparison, `tostring`, or when the kevent is passed back to
//! `control`). The value is then kept, as the snapshot BSD takes at
//! collection.
//!
//! Encoding. An event's own `data` is never negative for READ and WRITE
//! (EV_ERROR entries carry the change's, and are told apart by their flag),
//! so bit 63 marks a deferred one: bits 0-31 the fd, 32-33 its `FileKind`,
//! 34 the direction (WRITE), 35 whether epoll reported EPOLLIN (a readable
//! listener has at least one connection waiting).

use std::os::fd::RawFd;

use super::consts::{EV_ERROR, FILTER_READ, FILTER_WRITE};
use super::fdtable::{Dir, FileKind};
use super::{read, write};
use crate::core::kevent::KEvent;

const DEFERRED: i64 = i64::MIN;
const KIND_SHIFT: u32 = 32;
const WRITE_BIT: i64 = 1 << 34;
const IN_BIT: i64 = 1 << 35;
const EPOLLIN: u32 = libc::EPOLLIN as u32;

/// The `data` of an event of (fd, d) whose measurement is left to the
/// caller.
pub(super) fn defer(fd: RawFd, kind: FileKind, d: &Dir, revents: u32) -> i64 {
    let kind = match kind {
        FileKind::Other => 0,
        FileKind::Socket => 1,
        FileKind::Fifo => 2,
    };
    let mut data = DEFERRED | i64::from(fd as u32) | (kind << KIND_SHIFT);
    if d.index == write::WRITE.index {
        data |= WRITE_BIT;
    }
    if revents & EPOLLIN != 0 {
        data |= IN_BIT;
    }
    data
}

/// Whether `ev`, an event returned by `control`, has its `data` still to
/// measure.
#[inline]
pub fn is_deferred(ev: &KEvent) -> bool {
    ev.data < 0
        && ev.flags & EV_ERROR == 0
        && (ev.filter == FILTER_READ || ev.filter == FILTER_WRITE)
}

/// Measures the `data` of `ev` now if it was deferred (see the header):
/// what the descriptor holds at this moment; 0 once it is closed.
pub fn measure_deferred(ev: &mut KEvent) {
    if !is_deferred(ev) {
        return;
    }
    let code = ev.data;
    let fd = code as u32 as RawFd;
    let kind = match (code >> KIND_SHIFT) & 3 {
        1 => FileKind::Socket,
        2 => FileKind::Fifo,
        _ => FileKind::Other,
    };
    let d = if code & WRITE_BIT != 0 {
        &write::WRITE
    } else {
        &read::READ
    };
    let revents = if code & IN_BIT != 0 { EPOLLIN } else { 0 };
    ev.data = (d.data)(fd, kind, revents).max(0);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_deferred_value_is_told_from_every_measured_one() {
        for (fd, kind) in [(0, FileKind::Other), (i32::MAX, FileKind::Fifo)] {
            for d in [&read::READ, &write::WRITE] {
                let ev = KEvent {
                    ident: fd as u64,
                    filter: d.filter,
                    data: defer(fd, kind, d, EPOLLIN),
                    ..KEvent::default()
                };
                assert!(is_deferred(&ev));
                // EV_ERROR entries and measured values are not.
                assert!(!is_deferred(&KEvent {
                    flags: EV_ERROR,
                    ..ev
                }));
                assert!(!is_deferred(&KEvent { data: 0, ..ev }));
                assert!(!is_deferred(&KEvent {
                    data: i64::MAX,
                    ..ev
                }));
            }
        }
    }

    #[test]
    fn data_is_measured_once_and_a_closed_number_measures_zero() {
        let (r, w) = crate::core::testutil::pipe();
        crate::core::testutil::write_all(&w, b"abc");
        let fd = std::os::fd::AsRawFd::as_raw_fd(&r);
        let mut ev = KEvent {
            ident: fd as u64,
            filter: FILTER_READ,
            data: defer(fd, FileKind::Fifo, &read::READ, EPOLLIN),
            ..KEvent::default()
        };
        measure_deferred(&mut ev);
        assert_eq!(ev.data, 3);
        // Measured once: left alone after.
        crate::core::testutil::write_all(&w, b"de");
        measure_deferred(&mut ev);
        assert_eq!(ev.data, 3);
        // A number no file has (above any descriptor limit here).
        let closed = 1 << 30;
        let mut gone = KEvent {
            data: defer(closed, FileKind::Socket, &read::READ, EPOLLIN),
            ..ev
        };
        measure_deferred(&mut gone);
        assert_eq!(gone.data, 0);
    }
}
