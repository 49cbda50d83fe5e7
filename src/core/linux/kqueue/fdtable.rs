//! The table of user descriptors the READ and WRITE filters register:
//! indexed by descriptor number, one 56-byte slot per number, holding both
//! registrations of the fd and the last report of each one's epoll entry
//! (one entry per direction: see fds.rs). What the slots mean to the kernel
//! (epoll modes, identity checks) is fds.rs; how an event is measured is
//! read.rs and write.rs, through `Dir`.
//!
//! Memory: slots live in pages of 256 allocated on first use, so a table never
//! moves (no growth copies) and costs 56 bytes per descriptor number up to the
//! highest registered one. What is rare (regular files' identity, a socket
//! error kept for later reports) lives in side maps.

use std::collections::HashMap;
use std::os::fd::RawFd;

use super::knote::{Ready, State};
use crate::core::fdhash::FdHash;
use crate::core::linux::sys::Stat;

/// What distinguishes READ from WRITE.
pub struct Dir {
    /// The slot position: READ 0, WRITE 1.
    pub index: usize,
    pub filter: i16,
    /// Keeps the socket error it reads (READ: see read.rs).
    pub keeps_sock_err: bool,
    /// epoll bits to ask for.
    pub interest: u32,
    /// Reported bits that make this direction ready (ERR and HUP included:
    /// epoll always reports them, and BSD reports EOF through the filter).
    pub ready: u32,
    /// The flags and fflags of the event of a pollable fd that `revents`
    /// says is ready (its `data` is measured later, see later.rs); the last
    /// argument is the socket error kept for this fd (see read.rs).
    pub mark: fn(RawFd, FileKind, u32, &mut i32) -> Ready,
    /// The `data` of such an event, measured now (later.rs); 0 when the
    /// number is closed. `revents` holds at most EPOLLIN.
    pub data: fn(RawFd, FileKind, u32) -> i64,
    /// The event for an fd epoll cannot watch (always ready).
    pub always: fn(RawFd, &Stat) -> Ready,
}

/// What a descriptor names, from the fstat made when its slot is claimed (a
/// file's type never changes; the slot dies with the file): how to measure.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum FileKind {
    #[default]
    Other,
    Socket,
    Fifo,
}

impl FileKind {
    pub(super) fn of(st: &Stat) -> FileKind {
        match st.kind() {
            libc::S_IFSOCK => FileKind::Socket,
            libc::S_IFIFO => FileKind::Fifo,
            _ => FileKind::Other,
        }
    }
}

// Slot bits.
/// epoll refused the file (regular file): always ready, no epoll entry.
pub(super) const ALWAYS: u16 = 2;
/// A registration of direction `dir` exists.
pub(super) const fn present(dir: usize) -> u16 {
    4 << dir
}
pub(super) const OCCUPIED: u16 = present(0) | present(1);
/// The registry's active list holds an entry for position (fd, dir). Kept
/// across removal: the entry then serves the next registration there, so
/// there is never a second one.
const fn listed(dir: usize) -> u16 {
    16 << dir
}
pub(super) const LISTED: u16 = listed(0) | listed(1);
/// The entry of direction `dir` is registered with EPOLLET.
pub(super) const fn edge(dir: usize) -> u16 {
    64 << dir
}
/// Direction `dir` has its entry in its epoll set.
pub(super) const fn in_set(dir: usize) -> u16 {
    256 << dir
}

#[derive(Clone, Copy, Default)]
pub struct FdSlot {
    pub(super) reg: [State; 2],
    /// Generation, in the slot's epoll tokens: reports from an entry of an
    /// earlier file under this number do not match.
    pub(super) gen: u32,
    /// The last epoll report of each direction's entry and the round (low
    /// bits) it came in (every bit epoll reports fits in 16).
    pub(super) round: [u32; 2],
    pub(super) revents: [u16; 2],
    /// When the number was last found to name the slot's file (clock
    /// milliseconds, see fds.rs, "Identity"); 0 for never.
    pub(super) checked: u32,
    pub(super) kind: FileKind,
    pub(super) bits: u16,
}

impl FdSlot {
    /// Its active-list entry for position `dir` is being taken out.
    #[inline]
    pub(super) fn unlist(&mut self, dir: usize) {
        self.bits &= !listed(dir);
    }

    /// Marks position `dir` as listed; false if it already was.
    #[inline]
    pub(super) fn list(&mut self, dir: usize) -> bool {
        let was = self.bits & listed(dir) != 0;
        self.bits |= listed(dir);
        !was
    }
}

// What a registered descriptor costs (the bench's memory rows measure it,
// against a budget of 64 bytes) rests on these sizes.
const _: () = assert!(std::mem::size_of::<State>() == 16);
const _: () = assert!(std::mem::size_of::<FdSlot>() <= 56);

const PAGE: usize = 256;
const FD_TOKEN: u64 = 1 << 63;

pub(super) fn token(fd: RawFd, gen: u32) -> u64 {
    FD_TOKEN | (u64::from(gen) << 32) | u64::from(fd as u32)
}

/// The (fd, generation) an fd token stands for; None for other tokens.
pub fn decode(token: u64) -> Option<(RawFd, u32)> {
    (token & FD_TOKEN != 0).then_some((token as u32 as RawFd, (token >> 32) as u32 & !(1 << 31)))
}

#[derive(Default)]
pub struct FdTable {
    pages: Vec<Option<Box<[FdSlot]>>>,
    /// (device, inode) of the always-ready files (no epoll entry to ask).
    pub(super) files: HashMap<RawFd, (u64, u64), FdHash>,
    /// The socket error read with SO_ERROR (which clears it in the kernel),
    /// kept so that every later READ report of the fd carries it.
    pub(super) sock_err: HashMap<RawFd, i32, FdHash>,
}

impl FdTable {
    #[inline]
    pub(super) fn get(&self, fd: RawFd) -> Option<&FdSlot> {
        let i = usize::try_from(fd).ok()?;
        self.pages.get(i / PAGE)?.as_ref().map(|p| &p[i % PAGE])
    }

    #[inline]
    pub(super) fn get_mut(&mut self, fd: RawFd) -> Option<&mut FdSlot> {
        let i = usize::try_from(fd).ok()?;
        self.pages
            .get_mut(i / PAGE)?
            .as_mut()
            .map(|p| &mut p[i % PAGE])
    }

    /// The slot of `fd` (not negative), allocating its page.
    pub(super) fn slot(&mut self, fd: RawFd) -> &mut FdSlot {
        let i = fd as usize;
        if self.pages.len() <= i / PAGE {
            self.pages.resize_with(i / PAGE + 1, || None);
        }
        let page = self.pages[i / PAGE].get_or_insert_with(|| vec![FdSlot::default(); PAGE].into());
        &mut page[i % PAGE]
    }

    /// The registration at (fd, dir), if there is one.
    #[inline]
    pub fn state(&self, fd: RawFd, dir: usize) -> Option<State> {
        self.get(fd)
            .filter(|s| s.bits & present(dir) != 0)
            .map(|s| s.reg[dir])
    }

    /// Overwrites the registration at (fd, dir), which must exist.
    #[inline]
    pub fn set_state(&mut self, fd: RawFd, dir: usize, st: State) {
        if let Some(s) = self.get_mut(fd).filter(|s| s.bits & present(dir) != 0) {
            s.reg[dir] = st;
        }
    }

    /// Puts a registration at (fd, dir) of a slot.
    pub(super) fn put(&mut self, fd: RawFd, dir: usize, st: State) {
        let s = self.slot(fd);
        s.reg[dir] = st;
        s.bits |= present(dir);
    }

    /// Takes the registration at (fd, dir) out (before `sync`), returning it.
    pub fn take(&mut self, fd: RawFd, dir: usize) -> Option<State> {
        let s = self.get_mut(fd).filter(|s| s.bits & present(dir) != 0)?;
        s.bits &= !present(dir);
        let st = std::mem::take(&mut s.reg[dir]);
        if dir == 0 {
            self.sock_err.remove(&fd);
        }
        Some(st)
    }

    pub fn occupied(&self, fd: RawFd) -> bool {
        self.get(fd).is_some_and(|s| s.bits & OCCUPIED != 0)
    }

    pub fn always(&self, fd: RawFd) -> bool {
        self.get(fd).is_some_and(|s| s.bits & ALWAYS != 0)
    }

    /// Forgets a socket error kept for READ (a modifying EV_ADD starts afresh).
    pub fn clear_sock_err(&mut self, fd: RawFd) {
        self.sock_err.remove(&fd);
    }

    /// Marks the registration at (fd, dir) active; true when its position
    /// needs an entry on the active list (it has none yet).
    #[inline]
    pub fn activate(&mut self, fd: RawFd, dir: usize) -> bool {
        let Some(s) = self.get_mut(fd).filter(|s| s.bits & present(dir) != 0) else {
            return false;
        };
        if s.reg[dir].active {
            return false;
        }
        s.reg[dir].active = true;
        s.list(dir)
    }

    /// Marks (fd, dir) as listed; false if it already was.
    pub fn list(&mut self, fd: RawFd, dir: usize) -> bool {
        self.slot(fd).list(dir)
    }

    /// Its active-list entry is being taken out.
    #[inline]
    pub fn unlist(&mut self, fd: RawFd, dir: usize) {
        if let Some(s) = self.get_mut(fd) {
            s.bits &= !listed(dir);
        }
    }

    /// Empties the slot without touching the kernel (its file is gone, or
    /// the epoll set is) and returns the registrations it held.
    pub fn forget(&mut self, fd: RawFd) -> [Option<State>; 2] {
        let gone = [self.take(fd, 0), self.take(fd, 1)];
        self.files.remove(&fd);
        if let Some(s) = self.get_mut(fd) {
            s.bits &= LISTED;
        }
        gone
    }

    /// The first descriptor at or after `from` with a registration.
    pub fn next_occupied(&self, from: RawFd) -> Option<RawFd> {
        let start = usize::try_from(from).ok()?;
        for p in start / PAGE..self.pages.len() {
            let Some(Some(page)) = self.pages.get(p) else {
                continue;
            };
            let first = if p == start / PAGE { start % PAGE } else { 0 };
            for (i, s) in page.iter().enumerate().skip(first) {
                if s.bits & OCCUPIED != 0 {
                    return RawFd::try_from(p * PAGE + i).ok();
                }
            }
        }
        None
    }

    /// Every descriptor with a registration (for teardown).
    pub fn occupied_fds(&self) -> Vec<RawFd> {
        let mut fds = Vec::new();
        for (p, page) in self.pages.iter().enumerate() {
            for (i, s) in page.iter().flat_map(|p| p.iter().enumerate()) {
                if s.bits & OCCUPIED != 0 {
                    fds.push((p * PAGE + i) as RawFd);
                }
            }
        }
        fds
    }
}
