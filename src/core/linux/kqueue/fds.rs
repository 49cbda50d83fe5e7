//! User descriptors (READ and WRITE filters) against epoll: each registration
//! of the fd table (fdtable.rs) has its own epoll entry, READ's in the
//! queue's epoll set and WRITE's in the second set (`Ctx::wset`), so that the
//! two directions of one descriptor never disturb each other: adding,
//! deleting, disabling or reading one changes nothing of the other, as on
//! FreeBSD. read.rs and write.rs only say how to measure an event.
//!
//! Modes. A level-triggered registration has a level-triggered entry: the
//! kernel reports it on every wait while the fd is ready, so a delivery
//! costs no system call but the measurement (FIONREAD and the like). An
//! EV_CLEAR registration has an edge-triggered entry (EPOLLET). A disabled
//! one stays in its set, disarmed (ONESHOT with no interest), so that it can
//! still vouch for the file (below) and its ERR/HUP fire at most once.
//!
//! Identity. BSD drops the knotes of a closed descriptor; here the number may
//! be closed, or reused for another file, behind our back. The kernel keys an
//! epoll entry by (file, fd number) and removes it when the file's last
//! descriptor closes, so a report always comes from the file registered, and
//! a closed file reports nothing. Every epoll_ctl on the number is also a
//! check: EBADF (the number is closed) or ENOENT (it names another file)
//! means the slot is stale, and its registrations die. Changes need an
//! epoll_ctl anyway, so the check costs nothing there; `ctx::probe` does it
//! elsewhere (the sweep, joining the other direction). A report of a file
//! still open elsewhere (a dup, a child) under a number since closed is
//! found by its measurement (EBADF) and drops the slot; docs/kqueue-emulation.md
//! tells what remains of that case.
//!
//! Files epoll refuses (regular files, EPERM) are always ready, as poll(2)
//! says; their registrations stay on the active list, which keeps the
//! queue's notify eventfd signalled. They have no epoll entry, so their
//! (device, inode) is kept and compared instead.

use std::os::fd::RawFd;

use super::consts::*;
use super::ctx::{self, Ctx};
use super::fdtable::{
    edge, present, token, Dir, FdSlot, FdTable, FileKind, ALWAYS, LISTED, OCCUPIED,
};
use super::knote::{Collect, State};
use super::{read, write};
use crate::core::error::{OsError, OsResult};
use crate::core::linux::sys::{self, Stat};

/// Indexed by direction: READ 0, WRITE 1.
pub const DIRS: [&Dir; 2] = [&read::READ, &write::WRITE];

const ONESHOT: u32 = libc::EPOLLONESHOT as u32;
const ET: u32 = libc::EPOLLET as u32;

impl FdSlot {
    /// The epoll mask of the entry of direction `dir`, and whether it is
    /// edge-triggered. Not enabled: ONESHOT alone, so ERR/HUP (which epoll
    /// always reports) fire at most once.
    fn wanted(&self, dir: usize) -> (u32, bool) {
        let reg = &self.reg[dir];
        if self.bits & present(dir) == 0 || !reg.enabled {
            return (ONESHOT, false);
        }
        if reg.flags & EV_CLEAR != 0 {
            (DIRS[dir].interest | ET, true)
        } else {
            (DIRS[dir].interest, false)
        }
    }

    fn set_edge(&mut self, dir: usize, on: bool) {
        if on {
            self.bits |= edge(dir);
        } else {
            self.bits &= !edge(dir);
        }
    }
}

/// EBADF unless `fd` still names the always-ready file registered there.
fn same_file(t: &FdTable, fd: RawFd) -> OsResult<Stat> {
    let st = sys::fstat(fd)?;
    match t.files.get(&fd) {
        Some(file) if *file == st.file => Ok(st),
        _ => Err(OsError(libc::ENOENT)),
    }
}

/// A direction of the slot that has an entry (to probe), if any.
fn some_dir(s: &FdSlot) -> Option<usize> {
    (0..2).find(|&dir| s.bits & present(dir) != 0)
}

/// Whether the slot of `fd` still names the file it was made for, asked
/// without changing its epoll entries (so no event is reported anew): false
/// once the number was closed, or given to another file.
pub fn still_same(cx: &Ctx, fd: RawFd) -> bool {
    match cx.fds.get(fd) {
        Some(s) if s.bits & ALWAYS != 0 => same_file(&cx.fds, fd).is_ok(),
        Some(s) => some_dir(s).is_none_or(|dir| ctx::probe(cx.set(dir), fd).is_ok()),
        None => true,
    }
}

/// Brings the epoll entry of (fd, dir) in line with its registration, or
/// takes it out of its set when there is none. An error (EBADF: closed;
/// ENOENT: the number names another file) means the slot is stale: the
/// caller drops it (`FdTable::forget`).
pub fn sync(cx: &mut Ctx, fd: RawFd, dir: usize) -> OsResult<()> {
    let set = cx.set(dir);
    let t = &mut cx.fds;
    let Some(s) = t.get(fd).copied() else {
        return Ok(());
    };
    if s.bits & ALWAYS != 0 {
        let checked = same_file(t, fd).map(drop);
        if s.bits & OCCUPIED == 0 {
            t.files.remove(&fd);
            if let Some(s) = t.get_mut(fd) {
                s.bits &= LISTED;
            }
        }
        return checked;
    }
    if s.bits & present(dir) == 0 {
        return sys::epoll_ctl(set, libc::EPOLL_CTL_DEL, fd, 0, 0);
    }
    let (events, is_edge) = s.wanted(dir);
    sys::epoll_ctl(set, libc::EPOLL_CTL_MOD, fd, events, token(fd, s.gen))?;
    if let Some(s) = t.get_mut(fd) {
        s.set_edge(dir, is_edge);
    }
    Ok(())
}

/// Makes a new slot for `fd`, which must be empty, holding `st` at `dir`:
/// records what the fd names and puts it in the epoll set. Returns whether
/// an event is pending already (an enabled registration of an always-ready
/// file).
pub fn claim(cx: &mut Ctx, fd: RawFd, dir: usize, st: State) -> OsResult<bool> {
    let info = sys::fstat(fd)?;
    let set = cx.set(dir);
    let t = &mut cx.fds;
    let s = t.slot(fd);
    s.gen = s.gen.wrapping_add(1) & !(1 << 31);
    s.kind = FileKind::of(&info);
    s.round = [0; 2];
    s.revents = [0; 2];
    s.bits &= LISTED;
    s.reg[dir] = st;
    s.bits |= present(dir);
    let (events, is_edge) = s.wanted(dir);
    // EEXIST: an entry of this very file under this number outlived an
    // earlier slot (the number was closed and given back to the same file);
    // it is taken over by the new token.
    match ctx::epoll_add(set, fd, events, token(fd, s.gen)) {
        Ok(()) => {
            s.set_edge(dir, is_edge);
            Ok(false)
        }
        Err(OsError(libc::EPERM)) => {
            s.bits |= ALWAYS;
            t.files.insert(fd, info.file);
            Ok(st.enabled)
        }
        Err(e) => {
            s.bits &= LISTED;
            s.reg[dir] = State::default();
            Err(e)
        }
    }
}

/// Adds `st` at `dir` to the slot of `fd`, which holds the other direction:
/// first checks the slot is still about the file `fd` names (Err: it is
/// not, and nothing was added). Returns whether an event is pending already.
pub fn join(cx: &mut Ctx, fd: RawFd, dir: usize, st: State) -> OsResult<bool> {
    let Some(s) = cx.fds.get(fd).copied() else {
        return Err(OsError(libc::ENOENT));
    };
    if s.bits & ALWAYS != 0 {
        same_file(&cx.fds, fd)?;
        cx.fds.put(fd, dir, st);
        return Ok(st.enabled);
    }
    ctx::probe(cx.set(1 - dir), fd)?;
    cx.fds.put(fd, dir, st);
    let slot = cx.fds.slot(fd);
    slot.round[dir] = 0;
    slot.revents[dir] = 0;
    let (events, is_edge) = slot.wanted(dir);
    let tok = token(fd, slot.gen);
    match ctx::epoll_add(cx.set(dir), fd, events, tok) {
        Ok(()) => {
            cx.fds.slot(fd).set_edge(dir, is_edge);
            Ok(false)
        }
        Err(e) => {
            cx.fds.take(fd, dir);
            Err(e)
        }
    }
}

/// An epoll report of the entry of (fd, dir), generation `gen`: whether it
/// makes that registration ready; None for a stray report, of an entry
/// that no registration holds any more (see `Registry::absorb`). No system
/// call: the measurement that follows (`collect`) finds a closed number.
pub fn report(cx: &mut Ctx, fd: RawFd, gen: u32, dir: usize, revents: u32) -> Option<bool> {
    let round = cx.round as u32;
    let s = cx.fds.get_mut(fd)?;
    if s.gen != gen || s.bits & present(dir) == 0 || s.bits & ALWAYS != 0 {
        return None; // an entry of a file this slot no longer holds
    }
    if !s.reg[dir].enabled {
        return Some(false); // the ERR/HUP of a parked entry (once)
    }
    s.revents[dir] = revents;
    s.round[dir] = round;
    Some(revents & DIRS[dir].ready != 0)
}

/// Builds the event of the registration at (fd, dir) if there is one now.
pub fn collect(cx: &mut Ctx, fd: RawFd, dir: usize) -> Collect {
    let d = DIRS[dir];
    let Some(s) = cx.fds.get(fd).copied() else {
        return Collect::Gone;
    };
    if s.bits & ALWAYS != 0 {
        return match same_file(&cx.fds, fd) {
            Ok(st) => Collect::Ready((d.always)(fd, &st)),
            Err(_) => Collect::Gone,
        };
    }
    let revents = if s.round[dir] == cx.round as u32 && s.revents[dir] != 0 {
        // Reported in this round.
        s.revents[dir]
    } else {
        // Kept active since an earlier round (no room then, or an edge not
        // yet delivered): check the file, then ask it.
        if ctx::probe(cx.set(dir), fd).is_err() {
            return Collect::Gone;
        }
        match sys::poll_now(fd, d.interest) {
            Ok(r) => r,
            Err(_) => return Collect::Gone,
        }
    };
    if revents & d.ready == 0 {
        return Collect::NotReady;
    }
    let t = &mut cx.fds;
    let mut err = match dir {
        0 if !t.sock_err.is_empty() => t.sock_err.get(&fd).copied().unwrap_or(0),
        _ => 0,
    };
    let ready = match (d.measure)(fd, s.kind, revents, &mut err) {
        Ok(ready) => ready,
        // The number was closed while the file stays open elsewhere (its
        // entry outlives it): the registration went with the number.
        Err(_) => return Collect::Gone,
    };
    if err != 0 {
        t.sock_err.insert(fd, err);
    }
    Collect::Ready(ready)
}

/// After a delivery that kept the registration: whether it stays on the
/// active list (level-triggered state the kernel will not report again).
pub fn stays(cx: &Ctx, fd: RawFd, st: &State) -> bool {
    match cx.fds.get(fd) {
        // Always ready: no kernel report will come, so a level
        // registration stays active.
        Some(s) if s.bits & ALWAYS != 0 => st.flags & EV_CLEAR == 0,
        // Level entries are reported again while ready; edges are not.
        _ => false,
    }
}
