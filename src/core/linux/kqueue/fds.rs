//! The shared source of the READ and WRITE filters: the fd table (fdtable.rs)
//! against epoll, and `FdFilter`, the `Filter` both filters are (read.rs
//! and write.rs say how each measures an event). A registration's state is
//! kept in the fd table, not boxed, so `FdFilter` holds nothing.
//!
//! Each registration has its own epoll entry, READ's in the queue's epoll
//! set and WRITE's in the second set (`Ctx::wset`), so that the two
//! directions of one descriptor never disturb each other: adding, deleting,
//! disabling or reading one changes nothing of the other, as on FreeBSD.
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
//! elsewhere (the sweep, joining the other direction, delivery). A report
//! of a file still open elsewhere (a dup, a child) under a number since
//! closed, or since given to another file, must not be delivered: before a
//! reported event is delivered, the probe asks whether the number still
//! names the file, at most once per slot every `CHECK_MS` (`checked`). A
//! check per event would cost every event a system call that epoll's own
//! delivery does not pay (on a busy queue, a check per kernel tick still
//! cost a third of a ping-pong's extra time); so a number closed while its
//! file stays open elsewhere can still be reported for up to `CHECK_MS`
//! (plus one kernel tick) after its last check. docs/kqueue-emulation.md
//! tells what remains of that case.
//!
//! Files epoll refuses (regular files, EPERM) are always ready, as poll(2)
//! says; their registrations stay on the active list, which keeps the
//! queue's notify eventfd signalled. They have no epoll entry, so their
//! (device, inode) is kept and compared instead.

use std::marker::PhantomData;
use std::os::fd::RawFd;

use super::consts::*;
use super::ctx::{self, Ctx};
use super::fdtable::{
    edge, in_set, present, token, Dir, FdSlot, FdTable, FileKind, ALWAYS, LISTED, OCCUPIED,
};
use super::filter::Filter;
use super::knote::{Collect, Info, Ready, State};
use super::later;
use crate::core::error::{OsError, OsResult};
use crate::core::kevent::KEvent;
use crate::core::linux::sys::{self, Stat};

const ONESHOT: u32 = libc::EPOLLONESHOT as u32;
const ET: u32 = libc::EPOLLET as u32;

impl FdSlot {
    /// The epoll mask of the entry of direction `dir`, and whether it is
    /// edge-triggered. Not enabled: ONESHOT alone, so ERR/HUP (which epoll
    /// always reports) fire at most once.
    fn wanted(&self, d: &Dir) -> (u32, bool) {
        let reg = &self.reg[d.index];
        if self.bits & present(d.index) == 0 || !reg.enabled {
            return (ONESHOT, false);
        }
        if reg.flags & EV_CLEAR != 0 {
            (d.interest | ET, true)
        } else {
            (d.interest, false)
        }
    }

    fn set(&mut self, bit: u16, on: bool) {
        if on {
            self.bits |= bit;
        } else {
            self.bits &= !bit;
        }
    }
}

/// What names a direction (read.rs's `Read`, write.rs's `Write`).
pub trait Direction: Send + 'static {
    const DIR: &'static Dir;
}

/// The `Filter` of READ or WRITE (`D`) of the descriptor `Info::ident`.
pub struct FdFilter<D>(PhantomData<D>);

impl<D> FdFilter<D> {
    pub fn new() -> FdFilter<D> {
        FdFilter(PhantomData)
    }
}

/// Creates the registration at (fd, D): a new slot, or the other
/// direction's slot once it is known to be about the file `fd` names (if
/// not, that slot is stale and goes first). Its epoll entry is made by
/// `arm`.
pub fn attach<D: Direction>(cx: &mut Ctx, kn: &Info) -> OsResult<Box<dyn Filter>> {
    const { assert!(D::DIR.index < 2) };
    let dir = D::DIR.index;
    let fd = sys::ident_fd(kn.ident)?;
    let st = State {
        flags: kn.flags,
        enabled: kn.enabled,
        ..State::default()
    };
    if cx.fds.occupied(fd) {
        if still_same(cx, fd) {
            cx.fds.put(fd, dir, st);
            let s = cx.fds.slot(fd);
            s.round[dir] = 0;
            s.revents[dir] = 0;
            return Ok(Box::new(FdFilter::<D>::new()));
        }
        drop_slot(cx, fd);
    }
    let info = sys::fstat(fd)?;
    let s = cx.fds.slot(fd);
    s.gen = s.gen.wrapping_add(1) & !(1 << 31);
    s.kind = FileKind::of(&info);
    s.round = [0; 2];
    s.revents = [0; 2];
    s.checked = 0;
    s.bits &= LISTED;
    s.reg[dir] = st;
    s.bits |= present(dir);
    Ok(Box::new(FdFilter::<D>::new()))
}

/// Empties the slot of `fd` without touching the kernel (its file is gone,
/// or the epoll sets are), releasing its registrations' udata.
pub fn drop_slot(cx: &mut Ctx, fd: RawFd) {
    for st in cx.fds.forget(fd).into_iter().flatten() {
        cx.release(st.udata);
    }
}

fn fd_of(kn: &Info) -> RawFd {
    kn.ident as RawFd
}

impl<D: Direction> Filter for FdFilter<D> {
    fn modify(&mut self, cx: &mut Ctx, kn: &Info, _kev: &KEvent) -> OsResult<()> {
        if D::DIR.keeps_sock_err {
            // A modifying EV_ADD starts afresh: no socket error kept.
            cx.fds.clear_sock_err(fd_of(kn));
        }
        Ok(())
    }

    /// Every change ends here, and its epoll_ctl also checks that `fd`
    /// still names the registration's file (see the header): if not, the
    /// slot is dropped (both directions) and the error returned.
    fn arm(&mut self, cx: &mut Ctx, kn: &Info) -> OsResult<bool> {
        let fd = fd_of(kn);
        match sync(cx, fd, D::DIR) {
            Ok(()) => Ok(kn.enabled && cx.fds.always(fd)),
            Err(e) => {
                drop_slot(cx, fd);
                Err(e)
            }
        }
    }

    fn collect(&mut self, cx: &mut Ctx, kn: &Info) -> Collect {
        collect(cx, fd_of(kn), D::DIR)
    }

    fn delivered(&mut self, cx: &mut Ctx, kn: &Info) -> bool {
        match cx.fds.get(fd_of(kn)) {
            // Always ready: no kernel report will come, so a level
            // registration stays active.
            Some(s) if s.bits & ALWAYS != 0 => !kn.has(EV_CLEAR),
            // Level entries are reported again while ready; edges are not.
            _ => false,
        }
    }

    /// Takes the registration out (releasing its udata), and its entry:
    /// the epoll_ctl tells whether the slot was stale.
    fn delete(&mut self, cx: &mut Ctx, kn: &Info) -> OsResult<()> {
        let fd = fd_of(kn);
        if let Some(st) = cx.fds.take(fd, D::DIR.index) {
            cx.release(st.udata);
        }
        sync(cx, fd, D::DIR).inspect_err(|_| drop_slot(cx, fd))
    }

    fn detach(&mut self, cx: &mut Ctx, kn: &Info) {
        let _ = self.delete(cx, kn);
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
/// without changing its epoll entries (so no event is reported anew): false
/// once the number was closed, or given to another file.
pub fn still_same(cx: &Ctx, fd: RawFd) -> bool {
    match cx.fds.get(fd) {
        Some(s) if s.bits & ALWAYS != 0 => same_file(&cx.fds, fd).is_ok(),
        Some(s) => match (0..2).find(|&dir| s.bits & in_set(dir) != 0) {
            Some(dir) => ctx::probe(cx.set(dir), fd).is_ok(),
            // No entry yet (between attach and arm): nothing to ask.
            None => true,
        },
        None => true,
    }
}

/// Brings the epoll entry of (fd, dir) in line with its registration: made
/// (EPERM: the file is always ready, and needs none), changed, or taken out
/// of its set when there is no registration. An error (EBADF: closed;
/// ENOENT: the number names another file) means the slot is stale.
fn sync(cx: &mut Ctx, fd: RawFd, d: &Dir) -> OsResult<()> {
    let dir = d.index;
    let set = cx.set(dir);
    let t = &mut cx.fds;
    let Some(s) = t.get(fd).copied() else {
        return Ok(());
    };
    let result = if s.bits & ALWAYS != 0 {
        same_file(t, fd).map(drop)
    } else if s.bits & present(dir) == 0 {
        if s.bits & in_set(dir) == 0 {
            Ok(())
        } else {
            sys::epoll_ctl(set, libc::EPOLL_CTL_DEL, fd, 0, 0)
        }
    } else {
        let (events, is_edge) = s.wanted(d);
        let tok = token(fd, s.gen);
        let made = if s.bits & in_set(dir) != 0 {
            sys::epoll_ctl(set, libc::EPOLL_CTL_MOD, fd, events, tok)
        } else {
            // EEXIST: an entry of this very file under this number outlived
            // an earlier slot (the number was closed and given back to the
            // same file); the new token takes it over.
            ctx::epoll_add(set, fd, events, tok)
        };
        match made {
            Ok(()) => {
                let s = t.slot(fd);
                s.set(in_set(dir), true);
                s.set(edge(dir), is_edge);
                Ok(())
            }
            Err(OsError(libc::EPERM)) => {
                // Recorded, to tell later whether the number still names it.
                let st = sys::fstat(fd)?;
                t.files.insert(fd, st.file);
                t.slot(fd).bits |= ALWAYS;
                Ok(())
            }
            Err(e) => Err(e),
        }
    };
    if let Some(s) = t.get_mut(fd) {
        if s.bits & present(dir) == 0 {
            s.set(in_set(dir) | edge(dir), false);
        }
        if s.bits & OCCUPIED == 0 {
            t.files.remove(&fd);
            if let Some(s) = t.get_mut(fd) {
                s.bits &= LISTED;
            }
        }
    }
    result
}

/// What an epoll report of an fd entry did (`report`).
pub enum Reported {
    /// Of an entry no registration holds any more (see `Registry::absorb`).
    Stray,
    /// Nothing to deliver (not ready, or parked).
    Quiet,
    /// The registration is active now; `listed`: it needs an entry on the
    /// active list (it had none).
    Active { listed: bool },
}

/// An epoll report of the entry of (fd, dir), generation `gen`, marking the
/// registration active when it makes it ready (the work of
/// `FdTable::activate`, done in the same look at the slot). No system
/// call: `collect` checks the number.
#[inline]
pub fn report(cx: &mut Ctx, fd: RawFd, gen: u32, d: &Dir, revents: u32) -> Reported {
    let (round, dir) = (cx.round as u32, d.index);
    let Some(s) = cx.fds.get_mut(fd) else {
        return Reported::Stray;
    };
    if s.gen != gen || s.bits & present(dir) == 0 || s.bits & ALWAYS != 0 {
        return Reported::Stray; // an entry of a file this slot no longer holds
    }
    if !s.reg[dir].enabled {
        return Reported::Quiet; // the ERR/HUP of a parked entry (once)
    }
    // Every bit epoll reports is below 1 << 16.
    s.revents[dir] = revents as u16;
    s.round[dir] = round;
    if revents & d.ready == 0 {
        return Reported::Quiet;
    }
    if s.reg[dir].active {
        return Reported::Active { listed: false };
    }
    s.reg[dir].active = true;
    Reported::Active {
        listed: s.list(dir),
    }
}

/// How long, in milliseconds, a slot found to name its file is trusted
/// without asking again (see the header).
pub const CHECK_MS: u32 = 16;

/// Whether a slot last checked at `checked` (clock milliseconds, 0 for
/// never) must be checked again at `now`.
#[inline]
fn check_due(checked: u32, now: u32) -> bool {
    checked == 0 || now.wrapping_sub(checked) >= CHECK_MS
}

/// What `deliver` did with a position of the active list.
pub enum Delivery {
    /// Delivered into `out`, or found with nothing to deliver.
    Done,
    /// Delivered earlier in this call: back on the list, for the next call.
    Again,
    /// No room left in `out`: back on the list, first in line next call.
    Unseen,
    /// Its number no longer names its file: the registration goes.
    Gone,
    /// Not the usual case: the registry's generic path (the `Filter`
    /// calls) takes it, from the start.
    Generic,
}

/// The registry's `scan` step for the position (fd, d) of the active list,
/// in one look at its slot, for the usual case: a registration without
/// EV_ONESHOT or EV_DISPATCH, of a file epoll watches, reported in this
/// batch. It does what the generic path does for such a registration
/// (`Filter::collect`, `delivered`, and the registry's state steps), which
/// would look the slot up eight times; anything else is `Generic`, with
/// nothing changed. tests/kqueue_model.rs holds both paths to one model.
#[inline]
pub fn deliver(
    cx: &mut Ctx,
    fd: RawFd,
    d: &Dir,
    call: u32,
    out: &mut Vec<KEvent>,
    maxevents: usize,
) -> Delivery {
    let dir = d.index;
    let (round, set, now) = (cx.round as u32, cx.set(dir), cx.now_ms());
    let errs = d.keeps_sock_err && !cx.fds.sock_err.is_empty();
    let Some(s) = cx.fds.get_mut(fd) else {
        return Delivery::Generic;
    };
    let st = s.reg[dir];
    let fresh = s.round[dir] == round && s.revents[dir] != 0;
    if s.bits & present(dir) == 0
        || s.bits & ALWAYS != 0
        || st.flags & (EV_ONESHOT | EV_DISPATCH) != 0
        || !fresh
        || errs
    {
        return Delivery::Generic;
    }
    s.unlist(dir);
    if !st.active {
        return Delivery::Done;
    }
    if out.len() >= maxevents {
        return Delivery::Unseen;
    }
    if st.delivered_in == call {
        if st.flags & EV_CLEAR != 0 {
            // A new edge: delivered by the next call.
            return Delivery::Again;
        }
        // Reported again by a later batch of this call: the kernel
        // reports a level entry again at the next call while it is ready,
        // so nothing is kept (which would cost that call a look at the
        // file: see `collect`).
        s.reg[dir].active = false;
        return Delivery::Done;
    }
    s.reg[dir].active = false;
    if !st.enabled {
        return Delivery::Done;
    }
    let revents = u32::from(s.revents[dir]);
    let emitted = emit(s, fd, d, revents, set, now, call, out);
    match keep_sock_err(cx, fd, emitted) {
        Ok(()) => Delivery::Done,
        Err(Gone) => Delivery::Gone,
    }
}

/// What `take_report` did with an epoll report.
pub enum Taken {
    /// Delivered into `out`, or nothing to deliver.
    Done,
    /// Of an entry no registration holds any more (see `Registry::absorb`).
    Stray,
    /// Its number no longer names its file: the registration goes.
    Gone,
    /// Not the usual case: `report` takes it, nothing changed.
    Generic,
}

/// An epoll report of the entry of (fd, d), generation `gen`, delivered at
/// once when nothing waits on the active list (the registry's call): what
/// `report` and then `deliver` would do, in one look at the slot, for a
/// registration without EV_ONESHOT or EV_DISPATCH that is not active and
/// has room in `out`; anything else is `Generic`, with nothing changed.
#[allow(clippy::too_many_arguments)]
#[inline]
pub fn take_report(
    cx: &mut Ctx,
    fd: RawFd,
    gen: u32,
    d: &Dir,
    revents: u32,
    call: u32,
    out: &mut Vec<KEvent>,
    maxevents: usize,
) -> Taken {
    let dir = d.index;
    let (set, now) = (cx.set(dir), cx.now_ms());
    let errs = d.keeps_sock_err && !cx.fds.sock_err.is_empty();
    let Some(s) = cx.fds.get_mut(fd) else {
        return Taken::Stray;
    };
    if s.gen != gen || s.bits & present(dir) == 0 || s.bits & ALWAYS != 0 {
        return Taken::Stray; // an entry of a file this slot no longer holds
    }
    let st = s.reg[dir];
    if !st.enabled || revents & d.ready == 0 {
        return Taken::Done; // a parked entry's ERR/HUP (once), or not ready
    }
    if st.active || st.flags & (EV_ONESHOT | EV_DISPATCH) != 0 || errs || out.len() >= maxevents {
        return Taken::Generic;
    }
    if st.delivered_in == call {
        // Delivered by an earlier batch of this call: a level entry is
        // reported again at the next call (as in `deliver`); a new edge
        // waits on the active list.
        return match st.flags & EV_CLEAR {
            0 => Taken::Done,
            _ => Taken::Generic,
        };
    }
    let emitted = emit(s, fd, d, revents, set, now, call, out);
    match keep_sock_err(cx, fd, emitted) {
        Ok(()) => Taken::Done,
        Err(Gone) => Taken::Gone,
    }
}

/// The number no longer names the slot's file.
struct Gone;

/// Keeps the socket error `emit` read for `fd` (read.rs: every later READ
/// report of the fd carries it).
#[inline(always)]
fn keep_sock_err(cx: &mut Ctx, fd: RawFd, emitted: Result<i32, Gone>) -> Result<(), Gone> {
    let err = emitted?;
    if err != 0 {
        cx.fds.sock_err.insert(fd, err);
    }
    Ok(())
}

/// Delivers the event of an enabled registration at (fd, d) that `revents`
/// (reported in this batch) says may be ready, after the identity check of
/// `collect` (at most once per slot every CHECK_MS; `set` is the entry's
/// epoll set, `now` the batch's clock). Returns the socket error `mark`
/// read, for the caller to keep (0: none).
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn emit(
    s: &mut FdSlot,
    fd: RawFd,
    d: &Dir,
    revents: u32,
    set: RawFd,
    now: u32,
    call: u32,
    out: &mut Vec<KEvent>,
) -> Result<i32, Gone> {
    if check_due(s.checked, now) {
        if ctx::probe(set, fd).is_err() {
            return Err(Gone);
        }
        s.checked = now;
    }
    if revents & d.ready == 0 {
        return Ok(0);
    }
    let st = &mut s.reg[d.index];
    let mut err = 0;
    let mark = (d.mark)(fd, s.kind, revents, &mut err);
    out.push(KEvent {
        ident: fd as u64,
        filter: d.filter,
        flags: st.flags | mark.flags,
        fflags: mark.fflags,
        data: later::defer(fd, s.kind, d, revents),
        udata: st.udata,
    });
    // A pollable file's level registration is reported again by the
    // kernel while ready, and an edge is not: neither stays active.
    st.delivered_in = call;
    Ok(err)
}

/// Builds the event of the registration at (fd, dir) if there is one now.
fn collect(cx: &mut Ctx, fd: RawFd, d: &Dir) -> Collect {
    let dir = d.index;
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
        // Reported in this round, so by the registered file; whether `fd`
        // still names it is asked at most every CHECK_MS (see the header).
        let now = cx.now_ms();
        if check_due(s.checked, now) {
            if ctx::probe(cx.set(dir), fd).is_err() {
                return Collect::Gone;
            }
            cx.fds.slot(fd).checked = now;
        }
        u32::from(s.revents[dir])
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
    let mut err = match d.keeps_sock_err && !t.sock_err.is_empty() {
        true => t.sock_err.get(&fd).copied().unwrap_or(0),
        false => 0,
    };
    let mark = (d.mark)(fd, s.kind, revents, &mut err);
    if err != 0 {
        t.sock_err.insert(fd, err);
    }
    Collect::Ready(Ready {
        data: later::defer(fd, s.kind, d, revents),
        ..mark
    })
}
