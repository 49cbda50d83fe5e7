//! Helpers for the kqueue tests.

use std::os::fd::RawFd;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::{KEvent, Kqueue};
use crate::core::deadline::Deadline;
use crate::core::error::OsResult;

pub fn kev(ident: u64, filter: i16, flags: u16) -> KEvent {
    KEvent {
        ident,
        filter,
        flags,
        ..KEvent::default()
    }
}

/// A change with fflags and data.
pub fn kevd(ident: u64, filter: i16, flags: u16, fflags: u32, data: i64) -> KEvent {
    KEvent {
        fflags,
        data,
        ..kev(ident, filter, flags)
    }
}

pub fn fd_ident(fd: &impl std::os::fd::AsRawFd) -> u64 {
    fd.as_raw_fd() as u64
}

/// Applies changes with maxevents 0; panics on failure.
pub fn apply(kq: &Kqueue, changes: &[KEvent]) {
    let mut out = Vec::new();
    kq.control(changes, &mut out, 0, Deadline::Immediate)
        .expect("changes apply");
    assert!(out.is_empty());
}

/// Applies changes with room for errors; returns the error/receipt entries.
pub fn try_apply(kq: &Kqueue, changes: &[KEvent]) -> OsResult<Vec<KEvent>> {
    let mut out = Vec::new();
    kq.control(changes, &mut out, changes.len().max(1), Deadline::Immediate)
        .map(|()| out)
}

/// Collects events, waiting up to `ms` milliseconds.
pub fn wait(kq: &Kqueue, ms: u64) -> Vec<KEvent> {
    let mut out = Vec::new();
    let deadline = Deadline::after(Some(Duration::from_millis(ms)));
    kq.control(&[], &mut out, 64, deadline).expect("control");
    measured(out)
}

/// The events with their deferred `data` measured (see later.rs).
pub fn measured(mut evs: Vec<KEvent>) -> Vec<KEvent> {
    evs.iter_mut().for_each(super::measure_deferred);
    evs
}

pub fn released(kq: &Kqueue) -> Vec<u64> {
    let mut out = Vec::new();
    kq.take_released(&mut out);
    out.sort_unstable();
    out
}

/// Whether `fd` polls readable right now.
pub fn readable(fd: RawFd) -> bool {
    let mut p = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: p is one valid pollfd; timeout 0 never blocks.
    let rc = unsafe { libc::poll(&mut p, 1, 0) };
    rc == 1 && p.revents & libc::POLLIN != 0
}

/// A fresh directory under the system temp dir, removed by the caller.
pub fn temp_dir(tag: &str) -> PathBuf {
    static N: AtomicU64 = AtomicU64::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("kq-{tag}-{}-{n}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}
