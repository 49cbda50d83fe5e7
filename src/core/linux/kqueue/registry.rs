//! The registration table of one queue and kevent's flag state machine:
//! EV_ADD (create, or modify an existing (ident, filter)), EV_DELETE,
//! EV_ENABLE/EV_DISABLE, EV_ONESHOT (removed after its first delivery),
//! EV_DISPATCH (disabled after each delivery), EV_CLEAR (handled by the
//! filters' `delivered`), EV_RECEIPT; and the udata tokens' bookkeeping.
//! Delivering events is in `registry/delivery.rs`.

use std::collections::HashMap;
use std::os::fd::RawFd;

use super::consts::*;
use super::ctx::Ctx;
use super::fds;
use super::filter::{Attach, AttachFn, Filter};
use super::knote::{Info, State};
use super::specs;
use crate::core::kevent::KEvent;
use crate::core::linux::sys;

mod delivery;
use crate::core::error::{OsError, OsResult};
use crate::core::fdhash::FdHash;

/// Flags a registration keeps from the change that made it: behaviour bits,
/// not actions and not the kernel's answer bits.
const STORED: u16 = !(EV_ADD | EV_DELETE | EV_ENABLE | EV_DISABLE | EV_SYSFLAGS);

/// Where a registration lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Loc {
    /// READ (0) or WRITE (1) of a descriptor: in the fd table, by position.
    Fd(RawFd, usize),
    /// Any other filter: in `knotes`, by id (never reused).
    Knote(u64),
}

/// A registration of a filter other than READ and WRITE.
struct Knote {
    id: u64,
    ident: u64,
    filter: i16,
    st: State,
    imp: Box<dyn Filter>,
}

impl Knote {
    fn info(&self) -> Info {
        Info {
            id: self.id,
            ident: self.ident,
            filter: self.filter,
            flags: self.st.flags,
            enabled: self.st.enabled,
        }
    }
}

pub struct Registry {
    pub cx: Ctx,
    knotes: HashMap<u64, Knote, FdHash>,
    /// (ident, filter) -> knote id, for the filters in `knotes`.
    index: HashMap<(u64, i16), u64, FdHash>,
    /// Registrations that may have an event, in delivery order. Entries of
    /// removed registrations are skipped (an fd position's entry serves the
    /// next registration there: see fdtable's `listed`).
    active: Vec<Loc>,
    /// Registrations whose state changes outside the lock (signals).
    async_ids: Vec<u64>,
    /// udata tokens no longer referenced, for take_released.
    released: Vec<u64>,
    /// EV_ONESHOT registrations delivered, removed by `reap`.
    doomed: Vec<Loc>,
    next_id: u64,
    /// Counts `control` calls that collect events (never 0, the value of a
    /// registration never delivered).
    call: u32,
    /// The notify eventfd may be readable: written by us, or reported by
    /// epoll. While false it is read only when signals are watched (their
    /// hub writes it from outside), so an idle call makes no extra syscall.
    raised: bool,
    /// Buffers kept between calls, so that a steady loop allocates nothing.
    hits: Vec<(u64, u32)>,
    spare: [Vec<Loc>; 2],
    /// Where `sweep` looks next for descriptors closed behind our back.
    sweep_at: RawFd,
    /// The last batch had stray reports, and other ones (see `absorb`).
    stray: bool,
    live: bool,
}

/// EV_ENABLE wins over EV_DISABLE, as in FreeBSD; EV_ADD enables unless
/// EV_DISABLE is given; other changes keep the state.
fn enabled_after(flags: u16, before: bool) -> bool {
    if flags & EV_ENABLE != 0 {
        true
    } else if flags & EV_DISABLE != 0 {
        false
    } else {
        before || flags & EV_ADD != 0
    }
}

impl Registry {
    pub fn new(epfd: RawFd) -> OsResult<Registry> {
        Ok(Registry {
            cx: Ctx::new(epfd)?,
            knotes: HashMap::default(),
            index: HashMap::default(),
            active: Vec::new(),
            async_ids: Vec::new(),
            released: Vec::new(),
            doomed: Vec::new(),
            next_id: 1,
            call: 0,
            raised: false,
            hits: Vec::new(),
            spare: [Vec::new(), Vec::new()],
            sweep_at: 0,
            stray: false,
            live: false,
        })
    }

    /// Applies `changes` in order. A failed change (or any EV_RECEIPT one) is
    /// reported in `out` with EV_ERROR and the errno in data while there is
    /// room; a failure without room ends the call with its errno. Returns
    /// whether anything was reported.
    pub fn apply_changes(
        &mut self,
        changes: &[KEvent],
        out: &mut Vec<KEvent>,
        maxevents: usize,
    ) -> OsResult<bool> {
        let mut reported = false;
        for (i, ch) in changes.iter().enumerate() {
            let mut stored = false;
            let result = self.apply(ch, &mut stored);
            self.reap();
            if !stored {
                self.release(ch.udata);
            }
            let err = result.err();
            if err.is_none() && ch.flags & EV_RECEIPT == 0 {
                continue;
            }
            if out.len() < maxevents {
                out.push(KEvent {
                    flags: ch.flags | EV_ERROR,
                    data: err.map_or(0, |e| i64::from(e.errno())),
                    ..*ch
                });
                reported = true;
            } else if let Some(e) = err {
                // The changes not applied never store their tokens either.
                let skipped = changes[i + 1..].iter().map(|c| c.udata);
                self.released.extend(skipped.filter(|&u| u != 0));
                return Err(e);
            }
        }
        Ok(reported)
    }

    fn release(&mut self, udata: u64) {
        if udata != 0 {
            self.released.push(udata);
        }
    }

    /// One change. `stored` is set once the change's udata is held by a
    /// registration (whose removal will release it).
    fn apply(&mut self, ch: &KEvent, stored: &mut bool) -> OsResult<()> {
        let spec = specs::spec(ch.filter)?;
        let attach = match spec.attach {
            Attach::Fd(dir) => return self.apply_fd(ch, dir, stored),
            Attach::Other(attach) => attach,
        };
        let mut existing = self.index.get(&(ch.ident, ch.filter)).copied();
        if spec.takes_fd {
            if let Err(e) = sys::ident_fd(ch.ident).and_then(sys::check_fd) {
                // A closed descriptor takes its registrations with it.
                if let Some(id) = existing {
                    self.remove(Loc::Knote(id));
                }
                return Err(e);
            }
            // Closed and reused: the registration died with the old file, so
            // this change meets none (EV_ADD|EV_DELETE then does nothing, as
            // for any missing one, instead of failing with ENOENT; found by
            // tests/kqueue_model.rs).
            let stale = existing
                .and_then(|id| self.knotes.get(&id))
                .is_some_and(|kn| {
                    kn.imp.validate(&mut self.cx, &kn.info()) == Err(OsError(libc::ENOENT))
                });
            if stale {
                self.remove(Loc::Knote(existing.take().unwrap_or_default()));
            }
        }
        let Some(id) = existing else {
            return match (ch.flags & EV_ADD != 0, ch.flags & EV_DELETE != 0) {
                (true, false) => self.create(attach, ch, stored),
                (true, true) => Ok(()), // added and deleted at once: nothing left
                _ => Err(OsError(libc::ENOENT)),
            };
        };
        if ch.flags & EV_DELETE != 0 {
            let valid = match self.knotes.get(&id) {
                Some(kn) => kn.imp.validate(&mut self.cx, &kn.info()),
                None => Ok(()),
            };
            self.remove(Loc::Knote(id));
            return valid;
        }
        let Some(kn) = self.knotes.get_mut(&id) else {
            return Err(OsError(libc::ENOENT));
        };
        if ch.flags & EV_ADD != 0 {
            let mut info = kn.info();
            info.flags = ch.flags & STORED;
            kn.imp.modify(&mut self.cx, &info, ch)?;
            kn.st.flags = info.flags;
            let old = std::mem::replace(&mut kn.st.udata, ch.udata);
            *stored = true;
            self.release(old);
        } else {
            let checked = kn.imp.validate(&mut self.cx, &kn.info());
            if let Err(e) = checked.and_then(|()| kn.imp.touch(&mut self.cx, &kn.info(), ch)) {
                if e == OsError(libc::ENOENT) || e == OsError(libc::EBADF) {
                    self.remove(Loc::Knote(id)); // it named a closed descriptor
                }
                return Err(e);
            }
        }
        let Some(kn) = self.knotes.get_mut(&id) else {
            return Err(OsError(libc::ENOENT));
        };
        kn.st.enabled = enabled_after(ch.flags, kn.st.enabled);
        match kn.imp.arm(&mut self.cx, &kn.info()) {
            Ok(pending) => {
                if pending && kn.st.enabled {
                    self.activate(Loc::Knote(id));
                }
                Ok(())
            }
            Err(e) => {
                self.remove(Loc::Knote(id));
                Err(e)
            }
        }
    }

    /// One change to READ (`dir` 0) or WRITE (1) of a descriptor. Every
    /// change to an existing registration goes through `fds::sync`, whose
    /// epoll_ctl also tells whether the descriptor still names the file the
    /// registration was made for (see fds.rs): if not, the registrations
    /// of the old file are gone, as BSD drops a closed descriptor's knotes.
    fn apply_fd(&mut self, ch: &KEvent, dir: usize, stored: &mut bool) -> OsResult<()> {
        let fd = sys::ident_fd(ch.ident)?;
        let add = ch.flags & EV_ADD != 0;
        let delete = ch.flags & EV_DELETE != 0;
        let Some(old) = self.cx.fds.state(fd, dir) else {
            // None yet: only EV_ADD makes one; on a closed descriptor any
            // change is EBADF.
            return match (add, delete) {
                (true, false) => self.create_fd(ch, fd, dir, stored),
                (true, true) => sys::check_fd(fd),
                _ => sys::check_fd(fd).and(Err(OsError(libc::ENOENT))),
            };
        };
        if delete {
            self.cx.fds.take(fd, dir);
            self.release(old.udata);
            return match fds::sync(&mut self.cx, fd, dir) {
                Ok(()) => Ok(()),
                Err(e) => {
                    self.drop_fd(fd);
                    // On a reused number EV_ADD|EV_DELETE meets no
                    // registration and does nothing (tests/kqueue_model.rs).
                    if add && e == OsError(libc::ENOENT) {
                        Ok(())
                    } else {
                        Err(e)
                    }
                }
            };
        }
        let mut st = old;
        if add {
            st.flags = ch.flags & STORED;
            st.udata = ch.udata;
        }
        st.enabled = enabled_after(ch.flags, old.enabled);
        self.cx.fds.set_state(fd, dir, st);
        match fds::sync(&mut self.cx, fd, dir) {
            Ok(()) => {
                if add {
                    *stored = true;
                    self.release(old.udata);
                    if dir == 0 {
                        self.cx.fds.clear_sock_err(fd);
                    }
                }
                if st.enabled && self.cx.fds.always(fd) {
                    self.activate(Loc::Fd(fd, dir));
                }
                Ok(())
            }
            Err(e) => {
                // The old udata is released with the stale slot; the new one
                // by apply_changes (not stored) unless EV_ADD stores it anew.
                self.cx.fds.set_state(fd, dir, old);
                self.drop_fd(fd);
                if add && e == OsError(libc::ENOENT) {
                    self.create_fd(ch, fd, dir, stored)
                } else {
                    Err(e)
                }
            }
        }
    }

    fn create_fd(&mut self, ch: &KEvent, fd: RawFd, dir: usize, stored: &mut bool) -> OsResult<()> {
        let st = State {
            udata: ch.udata,
            flags: ch.flags & STORED,
            enabled: enabled_after(ch.flags, false),
            ..State::default()
        };
        let pending = if self.cx.fds.occupied(fd) {
            // The other direction's slot: joining it checks it is still
            // about this file; if not, it goes and a new slot is made.
            match fds::join(&mut self.cx, fd, dir, st) {
                Ok(pending) => pending,
                Err(e) => {
                    self.drop_fd(fd);
                    if e != OsError(libc::ENOENT) {
                        return Err(e);
                    }
                    fds::claim(&mut self.cx, fd, dir, st)?
                }
            }
        } else {
            fds::claim(&mut self.cx, fd, dir, st)?
        };
        *stored = true;
        if pending {
            self.activate(Loc::Fd(fd, dir));
        }
        self.sweep(2);
        Ok(())
    }

    fn create(&mut self, attach: AttachFn, ch: &KEvent, stored: &mut bool) -> OsResult<()> {
        let info = Info {
            id: self.next_id,
            ident: ch.ident,
            filter: ch.filter,
            flags: ch.flags & STORED,
            enabled: enabled_after(ch.flags, false),
        };
        self.next_id += 1;
        let mut imp = attach(&mut self.cx, &info, ch)?;
        let pending = match imp.arm(&mut self.cx, &info) {
            Ok(pending) => pending,
            Err(e) => {
                imp.detach(&mut self.cx, &info);
                return Err(e);
            }
        };
        if imp.is_async() {
            self.async_ids.push(info.id);
        }
        let st = State {
            udata: ch.udata,
            flags: info.flags,
            enabled: info.enabled,
            ..State::default()
        };
        self.knotes.insert(
            info.id,
            Knote {
                id: info.id,
                ident: info.ident,
                filter: info.filter,
                st,
                imp,
            },
        );
        self.index.insert((info.ident, info.filter), info.id);
        *stored = true;
        if pending && info.enabled {
            self.activate(Loc::Knote(info.id));
        }
        Ok(())
    }

    /// Deletes a registration, releasing its resource and its udata.
    fn remove(&mut self, loc: Loc) {
        match loc {
            Loc::Fd(fd, dir) => {
                if let Some(st) = self.cx.fds.take(fd, dir) {
                    self.release(st.udata);
                    if fds::sync(&mut self.cx, fd, dir).is_err() {
                        self.drop_fd(fd);
                    }
                }
            }
            Loc::Knote(id) => {
                let Some(mut kn) = self.knotes.remove(&id) else {
                    return;
                };
                self.index.remove(&(kn.ident, kn.filter));
                let info = kn.info();
                kn.imp.detach(&mut self.cx, &info);
                self.release(kn.st.udata);
                if kn.imp.is_async() {
                    self.async_ids.retain(|&a| a != id);
                }
            }
        }
    }

    /// Checks up to `budget` descriptor slots, round robin, and drops those
    /// whose descriptor was closed or given to another file since: BSD drops
    /// a closed descriptor's registrations (and their udata) at once, but
    /// here nothing tells the queue, and an entry of a closed file never
    /// fires. Run when a new descriptor is registered (two slots) and after
    /// a wait that blocked and timed out (one), so stale slots go as the
    /// queue is used: one system call each, on paths that make several
    /// anyway or are idle.
    pub fn sweep(&mut self, budget: usize) {
        for _ in 0..budget {
            let fd = match self.cx.fds.next_occupied(self.sweep_at) {
                Some(fd) => fd,
                None => match self.cx.fds.next_occupied(0) {
                    Some(fd) => fd,
                    None => return,
                },
            };
            self.sweep_at = fd.saturating_add(1);
            if !fds::still_same(&self.cx, fd) {
                self.drop_fd(fd);
            }
        }
    }

    /// Drops the registrations of a stale fd slot (its descriptor was closed
    /// or now names another file), with no system call: there is no epoll
    /// entry left that the number could reach.
    fn drop_fd(&mut self, fd: RawFd) {
        for st in self.cx.fds.forget(fd).into_iter().flatten() {
            self.release(st.udata);
        }
    }

    fn state(&self, loc: Loc) -> Option<State> {
        match loc {
            Loc::Fd(fd, dir) => self.cx.fds.state(fd, dir),
            Loc::Knote(id) => self.knotes.get(&id).map(|k| k.st),
        }
    }

    fn set_state(&mut self, loc: Loc, st: State) {
        match loc {
            Loc::Fd(fd, dir) => self.cx.fds.set_state(fd, dir, st),
            Loc::Knote(id) => {
                if let Some(k) = self.knotes.get_mut(&id) {
                    k.st = st;
                }
            }
        }
    }

    pub fn take_released(&mut self, out: &mut Vec<u64>) {
        out.append(&mut self.released);
    }

    /// Removes every registration (last handle gone) and hands back every
    /// token still referenced or not yet taken.
    pub fn teardown(&mut self, tokens: &mut Vec<u64>) {
        // The epoll instance is gone or going: no epoll_ctl on a number that
        // may already name another file.
        self.cx.epfd = -1;
        for fd in self.cx.fds.occupied_fds() {
            self.drop_fd(fd);
        }
        let ids: Vec<u64> = self.knotes.keys().copied().collect();
        for id in ids {
            self.remove(Loc::Knote(id));
        }
        self.active.clear();
        tokens.append(&mut self.released);
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        self.teardown(&mut Vec::new());
    }
}
