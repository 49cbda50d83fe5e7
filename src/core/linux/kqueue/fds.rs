//! User descriptors (READ and WRITE filters) against epoll: each slot of the
//! fd table (fdtable.rs) has one epoll entry, whose mask is the union of the
//! enabled registrations. read.rs and write.rs only say how to measure an
//! event.
//!
//! Modes. Level-triggered registrations use EPOLLONESHOT and are re-armed as
//! soon as a report is taken: the kernel then reports the fd again while it
//! stays ready (level semantics), and an entry whose fd the user closed while
//! the file stays open elsewhere (a dup, a child) fires at most once instead
//! of forever. When an enabled registration on the fd has EV_CLEAR, the entry
//! is edge-triggered (EPOLLET) instead, and a level registration sharing it
//! stays on the active list and is re-checked with poll(2) on each call. With
//! no registration enabled the entry stays in the set, disarmed (ONESHOT with
//! no interest), so that it can still vouch for the file (below).
//!
//! Identity. BSD drops the knotes of a closed descriptor; here the number may
//! be closed, or reused for another file, behind our back. The kernel keys an
//! epoll entry by (file, fd number) and looks it up by the file the number
//! names *now*, so every epoll_ctl on the number is also a check: EBADF (the
//! number is closed) or ENOENT (it names another file) means the slot is
//! stale, and its registrations die. Changes and re-arms need an epoll_ctl
//! anyway, so the check costs nothing there; elsewhere `ctx::probe` does it.
//!
//! Files epoll refuses (regular files, EPERM) are always ready, as poll(2)
//! says; their registrations stay on the active list, which keeps the
//! queue's notify eventfd signalled. They have no epoll entry, so their
//! (device, inode) is kept and compared instead.

use std::os::fd::RawFd;

use super::consts::*;
use super::ctx::{self, Ctx};
use super::fdtable::{
    present, token, Dir, FdSlot, FdTable, FileKind, ALWAYS, EDGE, LISTED, OCCUPIED,
};
use super::knote::{Collect, State};
use super::{read, write};
use crate::core::error::{OsError, OsResult};
use crate::core::linux::sys::{self, Stat};

/// Indexed by direction: READ 0, WRITE 1.
pub const DIRS: [&Dir; 2] = [&read::READ, &write::WRITE];

impl FdSlot {
    /// The epoll mask the enabled registrations want, and whether it is
    /// edge-triggered. No interest: ONESHOT alone, so ERR/HUP (which epoll
    /// always reports) fire at most once while everything is disabled.
    fn wanted(&self) -> (u32, bool) {
        let mut bits = 0;
        let mut edge = false;
        for (dir, d) in DIRS.iter().enumerate() {
            let reg = &self.reg[dir];
            if self.bits & present(dir) != 0 && reg.enabled {
                bits |= d.interest;
                edge |= reg.flags & EV_CLEAR != 0;
            }
        }
        let mode = if edge && bits != 0 {
            libc::EPOLLET
        } else {
            libc::EPOLLONESHOT
        };
        (bits | mode as u32, edge && bits != 0)
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

/// Whether the slot of `fd` still names the file it was made for, asked
/// without changing its epoll entry (so no event is reported anew): false
/// once the number was closed, or given to another file.
pub fn still_same(cx: &Ctx, fd: RawFd) -> bool {
    match cx.fds.get(fd) {
        Some(s) if s.bits & ALWAYS != 0 => same_file(&cx.fds, fd).is_ok(),
        Some(_) => ctx::probe(cx.epfd, fd).is_ok(),
        None => true,
    }
}

/// Brings the epoll entry of an occupied slot in line with its
/// registrations, or takes it out of the set when the slot is empty. An
/// error (EBADF: closed; ENOENT: the number names another file) means the
/// slot is stale: the caller drops it (`FdTable::forget`).
pub fn sync(cx: &mut Ctx, fd: RawFd) -> OsResult<()> {
    let epfd = cx.epfd;
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
    if s.bits & OCCUPIED == 0 {
        return sys::epoll_ctl(epfd, libc::EPOLL_CTL_DEL, fd, 0, 0);
    }
    let (events, edge) = s.wanted();
    sys::epoll_ctl(epfd, libc::EPOLL_CTL_MOD, fd, events, token(fd, s.gen))?;
    if let Some(s) = t.get_mut(fd) {
        s.bits = if edge { s.bits | EDGE } else { s.bits & !EDGE };
    }
    Ok(())
}

/// Makes a new slot for `fd`, which must be empty, holding `st` at `dir`:
/// records what the fd names and puts it in the epoll set. Returns whether
/// an event is pending already (an enabled registration of an always-ready
/// file).
pub fn claim(cx: &mut Ctx, fd: RawFd, dir: usize, st: State) -> OsResult<bool> {
    let info = sys::fstat(fd)?;
    let epfd = cx.epfd;
    let t = &mut cx.fds;
    let s = t.slot(fd);
    s.gen = s.gen.wrapping_add(1) & !(1 << 31);
    s.kind = FileKind::of(&info);
    s.round = 0;
    s.revents = 0;
    s.bits &= LISTED;
    s.reg[dir] = st;
    s.bits |= present(dir);
    let (events, edge) = s.wanted();
    // EEXIST: an entry of this very file under this number outlived an
    // earlier slot (the number was closed and given back to the same file);
    // it is taken over by the new token.
    match ctx::epoll_add(epfd, fd, events, token(fd, s.gen)) {
        Ok(()) => {
            if edge {
                s.bits |= EDGE;
            }
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

/// Adds `st` at `dir` to the occupied slot of `fd`; the epoll_ctl checks
/// the slot is still about the file `fd` names (Err: it is not, and nothing
/// was added). Returns whether an event is pending already.
pub fn join(cx: &mut Ctx, fd: RawFd, dir: usize, st: State) -> OsResult<bool> {
    cx.fds.put(fd, dir, st);
    match sync(cx, fd) {
        Ok(()) => Ok(st.enabled && cx.fds.always(fd)),
        Err(e) => {
            cx.fds.take(fd, dir);
            Err(e)
        }
    }
}

/// An epoll report for `fd`'s entry (generation `gen`): which directions it
/// makes ready, as a bit per direction. A level (ONESHOT) entry is re-armed
/// here, which also proves that `fd` still names its file; an edge entry is
/// checked with a probe. A stale slot is put on `cx.doomed`.
pub fn report(cx: &mut Ctx, fd: RawFd, gen: u32, revents: u32) -> u8 {
    let epfd = cx.epfd;
    let round = cx.round as u32;
    let Some(s) = cx.fds.get_mut(fd) else {
        return 0;
    };
    if s.gen != gen || s.bits & OCCUPIED == 0 || s.bits & ALWAYS != 0 {
        return 0; // an entry of a file this slot no longer holds
    }
    let (events, _) = s.wanted();
    if events & !(libc::EPOLLONESHOT as u32) == 0 {
        return 0; // the ERR/HUP of a parked entry: nothing enabled wants it
    }
    let checked = if s.bits & EDGE != 0 {
        ctx::probe(epfd, fd)
    } else {
        sys::epoll_ctl(epfd, libc::EPOLL_CTL_MOD, fd, events, token(fd, s.gen))
    };
    if checked.is_err() {
        cx.doomed.push(fd);
        return 0;
    }
    s.revents = revents;
    s.round = round;
    let mut ready = 0;
    for (dir, d) in DIRS.iter().enumerate() {
        if s.bits & present(dir) != 0 && s.reg[dir].enabled && revents & d.ready != 0 {
            ready |= 1 << dir;
        }
    }
    ready
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
    let revents = if s.round == cx.round as u32 && s.revents != 0 {
        // Reported in this round, by an entry `report` checked.
        s.revents
    } else {
        // Kept active since an earlier call: check the file, then ask it.
        if ctx::probe(cx.epfd, fd).is_err() {
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
    let ready = (d.measure)(fd, s.kind, revents, &mut err);
    if err != 0 {
        t.sock_err.insert(fd, err);
    }
    Collect::Ready(ready)
}

/// After a delivery that kept the registration: whether it stays on the
/// active list (level-triggered state the kernel will not report again).
pub fn stays(cx: &Ctx, fd: RawFd, st: &State) -> bool {
    match cx.fds.get(fd) {
        // Always ready, or sharing an edge-triggered entry: the kernel will
        // not report it again, so a level registration stays active.
        Some(s) if s.bits & (ALWAYS | EDGE) != 0 => st.flags & EV_CLEAR == 0,
        // ONESHOT entries were re-armed and are reported again if ready.
        _ => false,
    }
}
