//! User descriptors (READ and WRITE filters): one epoll entry per fd, shared
//! by its READ and WRITE registrations, whose mask is the union of the
//! enabled ones. read.rs and write.rs only say how to measure an event.
//!
//! Modes. Level-triggered registrations use EPOLLONESHOT and are re-armed
//! after each report: the kernel then reports the fd again while it stays
//! ready (level semantics), and an entry whose fd the user closed while the
//! file stays open elsewhere (a dup, a child) fires at most once instead of
//! forever. When an enabled registration on the fd has EV_CLEAR, the entry
//! is edge-triggered (EPOLLET) instead, and a level registration sharing it
//! stays on the active list and is re-checked with poll(2) on each call.
//!
//! Files epoll refuses (regular files, EPERM) are always ready, as poll(2)
//! says; their registrations stay on the active list, which keeps the
//! queue's notify eventfd signalled.
//!
//! The file identity (device, inode) recorded at registration tells a closed
//! and reused fd number apart: BSD drops the knotes of a closed descriptor.

use std::collections::HashMap;

use crate::core::fdhash::FdHash;
use std::marker::PhantomData;
use std::os::fd::RawFd;

use super::consts::*;
use super::ctx::{self, Ctx, Target};
use super::filter::{Collect, Filter, Info, Ready};
use super::sys::{self, Stat};
use super::KEvent;
use crate::core::error::{OsError, OsResult};

/// What distinguishes READ from WRITE.
pub trait Direction: Send + 'static {
    /// Index of this direction's slot in an entry.
    const SLOT: usize;
    /// epoll bits to ask for.
    const INTEREST: u32;
    /// Reported bits that make this direction ready (ERR and HUP included:
    /// epoll always reports them, and BSD reports EOF through the filter).
    const READY: u32;
    /// The event for a pollable fd that `revents` says is ready.
    fn measure(fd: RawFd, st: &Stat, revents: u32, sock_err: &mut i32) -> Ready;
    /// The event for an fd epoll cannot watch (always ready).
    fn always(fd: RawFd, st: &Stat) -> Ready;
}

#[derive(Clone, Copy)]
struct Slot {
    id: u64,
    enabled: bool,
    clear: bool,
    interest: u32,
}

struct FdEntry {
    file: (u64, u64),
    token: u64,
    /// False when epoll refused the fd (regular file): always ready.
    pollable: bool,
    /// In the epoll set right now.
    registered: bool,
    /// Registered with EPOLLET (some enabled registration has EV_CLEAR).
    edge: bool,
    slots: [Option<Slot>; 2],
}

impl FdEntry {
    /// The epoll mask the enabled registrations want, or None for none.
    fn wanted(&self) -> Option<(u32, bool)> {
        let mut bits = 0;
        let mut edge = false;
        for s in self.slots.iter().flatten().filter(|s| s.enabled) {
            bits |= s.interest;
            edge |= s.clear;
        }
        let mode = if edge {
            libc::EPOLLET
        } else {
            libc::EPOLLONESHOT
        } as u32;
        (bits != 0).then_some((bits | mode, edge))
    }
}

#[derive(Default)]
pub struct FdTable {
    map: HashMap<RawFd, FdEntry, FdHash>,
}

/// Makes `fd`'s entry describe the file the fd names now. If the number was
/// closed and reused, the registrations of the old file are dropped (other
/// than `id`, which is being re-added) and the entry starts afresh.
fn claim(cx: &mut Ctx, fd: RawFd, id: u64) -> OsResult<()> {
    let st = sys::fstat(fd)?;
    if let Some(e) = cx.fds.map.get(&fd) {
        if e.file == st.file {
            return Ok(());
        }
    }
    if let Some(old) = cx.fds.map.remove(&fd) {
        // Its epoll entry went with the old file (or lingers, disarmed, keyed
        // by a token nothing maps any more).
        cx.forget_target(old.token);
        let stale = old.slots.iter().flatten().filter(|s| s.id != id);
        cx.doomed.extend(stale.map(|s| s.id));
    }
    let token = cx.add_target(Target::Fd(fd));
    let entry = FdEntry {
        file: st.file,
        token,
        pollable: true,
        registered: false,
        edge: false,
        slots: [None, None],
    };
    cx.fds.map.insert(fd, entry);
    Ok(())
}

/// Sets (or clears) one slot and brings the epoll entry in line.
fn set_slot(cx: &mut Ctx, fd: RawFd, index: usize, slot: Option<Slot>) -> OsResult<()> {
    let Some(mut e) = cx.fds.map.remove(&fd) else {
        return Err(OsError(libc::ENOENT));
    };
    e.slots[index] = slot;
    if e.slots.iter().all(Option::is_none) {
        if e.registered {
            ctx::epoll_del(cx.epfd, fd);
        }
        cx.forget_target(e.token);
        return Ok(());
    }
    let result = sync(cx.epfd, fd, &mut e);
    cx.fds.map.insert(fd, e);
    result
}

fn sync(epfd: RawFd, fd: RawFd, e: &mut FdEntry) -> OsResult<()> {
    if !e.pollable {
        return Ok(());
    }
    let Some((events, edge)) = e.wanted() else {
        if e.registered {
            ctx::epoll_del(epfd, fd);
            e.registered = false;
        }
        return Ok(());
    };
    let result = if e.registered {
        ctx::epoll_mod(epfd, fd, events, e.token)
    } else {
        ctx::epoll_add(epfd, fd, events, e.token)
    };
    match result {
        Ok(()) => {
            e.registered = true;
            e.edge = edge;
            Ok(())
        }
        // Regular files and directories: poll(2) calls them always ready.
        Err(OsError(libc::EPERM)) => {
            e.pollable = false;
            e.registered = false;
            Ok(())
        }
        Err(err) => Err(err),
    }
}

/// An epoll report for an fd entry: the registrations it concerns.
pub fn dispatch(cx: &mut Ctx, fd: RawFd, token: u64, revents: u32, hits: &mut Vec<(u64, u32)>) {
    let Some(e) = cx.fds.map.get(&fd) else { return };
    if e.token != token {
        return;
    }
    hits.extend(e.slots.iter().flatten().map(|s| (s.id, revents)));
    if e.registered && !e.edge {
        cx.rearm.push((fd, token));
    }
}

/// Re-arms the EPOLLONESHOT entries reported in this round. One whose fd was
/// closed (EBADF) or now names a file outside the set (ENOENT) is stale: its
/// registrations go, as BSD drops knotes with their descriptor.
pub fn rearm_all(cx: &mut Ctx) {
    for (fd, token) in std::mem::take(&mut cx.rearm) {
        let Some(e) = cx.fds.map.get_mut(&fd) else {
            continue;
        };
        if e.token != token || !e.registered || e.edge {
            continue;
        }
        let Some((events, _)) = e.wanted() else {
            continue;
        };
        if sys::epoll_ctl(cx.epfd, libc::EPOLL_CTL_MOD, fd, events, token).is_err() {
            e.registered = false;
            let ids: Vec<u64> = e.slots.iter().flatten().map(|s| s.id).collect();
            cx.doomed.extend(ids);
        }
    }
}

/// A READ or WRITE registration.
pub struct FdFilter<D> {
    fd: RawFd,
    /// The last epoll report and the round it came in.
    revents: u32,
    round: u64,
    /// The socket error read with SO_ERROR (which clears it in the kernel),
    /// kept so that every later report of this registration carries it.
    sock_err: i32,
    _dir: PhantomData<D>,
}

pub fn attach<D: Direction>(cx: &mut Ctx, kn: &Info, _kev: &KEvent) -> OsResult<Box<dyn Filter>> {
    let fd = sys::ident_fd(kn.ident)?;
    claim(cx, fd, kn.id)?;
    Ok(Box::new(FdFilter::<D> {
        fd,
        revents: 0,
        round: 0,
        sock_err: 0,
        _dir: PhantomData,
    }))
}

impl<D: Direction> Filter for FdFilter<D> {
    fn modify(&mut self, cx: &mut Ctx, kn: &Info, _kev: &KEvent) -> OsResult<()> {
        self.sock_err = 0;
        claim(cx, self.fd, kn.id)
    }

    fn validate(&self, cx: &mut Ctx, _kn: &Info) -> OsResult<()> {
        let st = sys::fstat(self.fd)?;
        match cx.fds.map.get(&self.fd) {
            Some(e) if e.file == st.file => Ok(()),
            // Closed and reused: the registration died with the old file.
            _ => Err(OsError(libc::ENOENT)),
        }
    }

    fn arm(&mut self, cx: &mut Ctx, kn: &Info) -> OsResult<bool> {
        let slot = Slot {
            id: kn.id,
            enabled: kn.enabled,
            clear: kn.has(EV_CLEAR),
            interest: D::INTEREST,
        };
        set_slot(cx, self.fd, D::SLOT, Some(slot))?;
        let pollable = cx.fds.map.get(&self.fd).is_none_or(|e| e.pollable);
        Ok(kn.enabled && !pollable)
    }

    fn event(&mut self, cx: &mut Ctx, _kn: &Info, hint: u32) -> bool {
        if hint & D::READY == 0 {
            return false;
        }
        self.revents = hint;
        self.round = cx.round;
        true
    }

    fn collect(&mut self, cx: &mut Ctx, _kn: &Info) -> Collect {
        let Ok(st) = sys::fstat(self.fd) else {
            return Collect::Gone;
        };
        let Some(e) = cx.fds.map.get(&self.fd).filter(|e| e.file == st.file) else {
            return Collect::Gone;
        };
        if !e.pollable {
            return Collect::Ready(D::always(self.fd, &st));
        }
        let revents = if self.round == cx.round && self.revents != 0 {
            self.revents
        } else {
            // Not reported in this round: ask the fd itself.
            match sys::poll_now(self.fd, D::INTEREST) {
                Ok(r) => r,
                Err(_) => return Collect::Gone,
            }
        };
        if revents & D::READY == 0 {
            return Collect::NotReady;
        }
        Collect::Ready(D::measure(self.fd, &st, revents, &mut self.sock_err))
    }

    fn delivered(&mut self, cx: &mut Ctx, kn: &Info) -> bool {
        self.revents = 0;
        match cx.fds.map.get(&self.fd) {
            // Always ready, or sharing an edge-triggered entry: the kernel will
            // not report it again, so a level registration stays active.
            Some(e) if !e.pollable || e.edge => !kn.has(EV_CLEAR),
            // EPOLLONESHOT entries are re-armed and reported again if ready.
            _ => false,
        }
    }

    fn detach(&mut self, cx: &mut Ctx, kn: &Info) {
        let mine = cx
            .fds
            .map
            .get(&self.fd)
            .and_then(|e| e.slots[D::SLOT])
            .is_some_and(|s| s.id == kn.id);
        if mine {
            let _ = set_slot(cx, self.fd, D::SLOT, None);
        } else if cx
            .fds
            .map
            .get(&self.fd)
            .is_some_and(|e| e.slots.iter().all(Option::is_none))
        {
            // Claimed by attach but never armed (arm failed): no epoll entry.
            if let Some(e) = cx.fds.map.remove(&self.fd) {
                cx.forget_target(e.token);
            }
        }
    }
}
