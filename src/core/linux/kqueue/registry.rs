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
use super::filter::{Filter, Home, Spec};
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

/// The `Info` of the registration at fd table position (fd, dir).
#[inline]
fn fd_info(fd: RawFd, dir: usize, st: &State) -> Info {
    Info {
        id: 0,
        ident: fd as u64,
        filter: specs::fd_filter(dir),
        flags: st.flags,
        enabled: st.enabled,
    }
}

/// Where a registration lives (see `Home`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Loc {
    /// `Home::Fd`: in the fd table, by position.
    Fd(RawFd, usize),
    /// `Home::Table`: in `knotes`, by id (never reused).
    Knote(u64),
}

/// A registration kept in the table (`Home::Table`).
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
                for c in &changes[i + 1..] {
                    self.release(c.udata);
                }
                return Err(e);
            }
        }
        Ok(reported)
    }

    fn release(&mut self, udata: u64) {
        self.cx.release(udata);
    }

    // ------------------------------------------------------------ storage
    // Where a registration lives (`Home`) is known only here: the state
    // machine below and delivery.rs work on any `Loc` alike.

    /// The registration of (ident, filter), if there is one.
    fn find(&self, spec: &Spec, ident: u64) -> Option<Loc> {
        match spec.home {
            Home::Fd(dir) => {
                let fd = RawFd::try_from(ident).ok()?;
                self.cx.fds.state(fd, dir).map(|_| Loc::Fd(fd, dir))
            }
            Home::Table => self
                .index
                .get(&(ident, spec.filter))
                .map(|&id| Loc::Knote(id)),
        }
    }

    #[inline]
    fn info(&self, loc: Loc) -> Option<Info> {
        match loc {
            Loc::Fd(fd, dir) => self.cx.fds.state(fd, dir).map(|st| fd_info(fd, dir, &st)),
            Loc::Knote(id) => self.knotes.get(&id).map(Knote::info),
        }
    }

    #[inline]
    fn state(&self, loc: Loc) -> Option<State> {
        match loc {
            Loc::Fd(fd, dir) => self.cx.fds.state(fd, dir),
            Loc::Knote(id) => self.knotes.get(&id).map(|k| k.st),
        }
    }

    #[inline]
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

    /// Runs `f` on the registration's filter, with its current `Info`; None
    /// when it is gone.
    #[inline]
    fn with_filter<R>(
        &mut self,
        loc: Loc,
        f: impl FnOnce(&mut dyn Filter, &mut Ctx, &Info) -> R,
    ) -> Option<R> {
        match loc {
            Loc::Fd(_, dir) => {
                let info = self.info(loc)?;
                Some(specs::with_fd_imp(dir, |imp| f(imp, &mut self.cx, &info)))
            }
            Loc::Knote(id) => {
                let kn = self.knotes.get_mut(&id)?;
                let info = kn.info();
                Some(f(&mut *kn.imp, &mut self.cx, &info))
            }
        }
    }

    /// `with_filter` for a registration whose state `st` was just read: an
    /// fd position's `Info` is made of it, without a second look.
    #[inline]
    fn with_filter_as<R>(
        &mut self,
        loc: Loc,
        st: &State,
        f: impl FnOnce(&mut dyn Filter, &mut Ctx, &Info) -> R,
    ) -> Option<R> {
        match loc {
            Loc::Fd(fd, dir) => {
                let info = fd_info(fd, dir, st);
                Some(specs::with_fd_imp(dir, |imp| f(imp, &mut self.cx, &info)))
            }
            Loc::Knote(_) => self.with_filter(loc, f),
        }
    }

    /// Keeps a new registration, made by `imp`.
    fn insert(&mut self, spec: &Spec, info: &Info, st: State, imp: Box<dyn Filter>) -> Loc {
        match spec.home {
            Home::Fd(dir) => {
                // attach made the slot; its filter holds nothing.
                let loc = Loc::Fd(info.ident as RawFd, dir);
                self.set_state(loc, st);
                loc
            }
            Home::Table => {
                if imp.is_async() {
                    self.async_ids.push(info.id);
                }
                let kn = Knote {
                    id: info.id,
                    ident: info.ident,
                    filter: info.filter,
                    st,
                    imp,
                };
                self.knotes.insert(info.id, kn);
                self.index.insert((info.ident, info.filter), info.id);
                Loc::Knote(info.id)
            }
        }
    }

    /// Takes the registration out of its home, returning its state.
    fn take(&mut self, loc: Loc) -> Option<State> {
        match loc {
            Loc::Fd(fd, dir) => self.cx.fds.take(fd, dir),
            Loc::Knote(id) => {
                let kn = self.knotes.remove(&id)?;
                self.index.remove(&(kn.ident, kn.filter));
                if kn.imp.is_async() {
                    self.async_ids.retain(|&a| a != id);
                }
                Some(kn.st)
            }
        }
    }

    // ------------------------------------------------------ state machine

    /// One change. `stored` is set once the change's udata is held by a
    /// registration (whose removal will release it).
    fn apply(&mut self, ch: &KEvent, stored: &mut bool) -> OsResult<()> {
        let spec = specs::spec(ch.filter)?;
        let fd = if spec.takes_fd {
            sys::ident_fd(ch.ident)?
        } else {
            -1
        };
        let (add, delete) = (ch.flags & EV_ADD != 0, ch.flags & EV_DELETE != 0);
        let mut existing = self.find(spec, ch.ident);
        if let Some(loc) = existing.filter(|_| spec.takes_fd) {
            // A descriptor closed, or reused for another file, took its
            // registration with it: a change meets a closed descriptor
            // (EBADF), or none at all (EV_ADD|EV_DELETE then does
            // nothing, as for any missing one, instead of failing with
            // ENOENT; found by tests/kqueue_model.rs). Filters whose
            // epoll_ctl checks this at no cost say Ok here.
            match self.with_filter(loc, |imp, cx, info| imp.validate(cx, info)) {
                Some(Err(OsError(libc::ENOENT))) => {
                    self.remove(loc);
                    existing = None;
                }
                Some(Err(e)) => {
                    self.remove(loc);
                    return Err(e);
                }
                _ => {}
            }
        }
        let Some(loc) = existing else {
            return match (add, delete) {
                (true, false) => self.create(spec, ch, stored),
                // Added and deleted at once: nothing left.
                (true, true) if spec.takes_fd => sys::check_fd(fd),
                (true, true) => Ok(()),
                _ if spec.takes_fd => sys::check_fd(fd).and(Err(OsError(libc::ENOENT))),
                _ => Err(OsError(libc::ENOENT)),
            };
        };
        if delete {
            let valid = self.delete(loc);
            // On a reused number EV_ADD|EV_DELETE met no registration.
            return match valid {
                Err(OsError(libc::ENOENT)) if add => Ok(()),
                other => other,
            };
        }
        let Some(old) = self.state(loc) else {
            return Err(OsError(libc::ENOENT));
        };
        let mut st = old;
        let changed = self.with_filter(loc, |imp, cx, info| {
            if add {
                let info = Info {
                    flags: ch.flags & STORED,
                    ..*info
                };
                imp.modify(cx, &info, ch)
            } else {
                imp.validate(cx, info)
                    .and_then(|()| imp.touch(cx, info, ch))
            }
        });
        match changed {
            Some(Ok(())) => {}
            Some(Err(e)) => {
                if !add && (e == OsError(libc::ENOENT) || e == OsError(libc::EBADF)) {
                    self.remove(loc); // it named a closed descriptor
                }
                return Err(e);
            }
            None => return Err(OsError(libc::ENOENT)),
        }
        if add {
            st.flags = ch.flags & STORED;
        }
        st.enabled = enabled_after(ch.flags, old.enabled);
        // The new udata is kept only once the kernel side agrees: a failure
        // below releases the old one with the registration, and the new one
        // is the caller's (apply_changes) to release, unless stored anew.
        self.set_state(loc, st);
        match self.with_filter(loc, |imp, cx, info| imp.arm(cx, info)) {
            Some(Ok(pending)) => {
                if add {
                    st.udata = ch.udata;
                    self.set_state(loc, st);
                    *stored = true;
                    self.release(old.udata);
                }
                if pending && st.enabled {
                    self.activate(loc);
                }
                Ok(())
            }
            Some(Err(e)) => {
                self.remove(loc);
                if add && spec.takes_fd && e == OsError(libc::ENOENT) {
                    // The number names another file now: this EV_ADD
                    // watches that one.
                    self.create(spec, ch, stored)
                } else {
                    Err(e)
                }
            }
            None => {
                // The filter dropped it (a stale descriptor slot).
                if add && spec.takes_fd {
                    self.create(spec, ch, stored)
                } else {
                    Err(OsError(libc::ENOENT))
                }
            }
        }
    }

    fn create(&mut self, spec: &Spec, ch: &KEvent, stored: &mut bool) -> OsResult<()> {
        let info = Info {
            id: self.next_id,
            ident: ch.ident,
            filter: ch.filter,
            flags: ch.flags & STORED,
            enabled: enabled_after(ch.flags, false),
        };
        self.next_id += 1;
        let imp = (spec.attach)(&mut self.cx, &info, ch)?;
        let st = State {
            flags: info.flags,
            enabled: info.enabled,
            ..State::default()
        };
        let loc = self.insert(spec, &info, st, imp);
        let pending = match self.with_filter(loc, |imp, cx, info| imp.arm(cx, info)) {
            Some(Ok(pending)) => pending,
            Some(Err(e)) => {
                self.remove(loc);
                return Err(e);
            }
            None => return Err(OsError(libc::ENOENT)),
        };
        self.set_state(
            loc,
            State {
                udata: ch.udata,
                ..st
            },
        );
        *stored = true;
        if pending && info.enabled {
            self.activate(loc);
        }
        if spec.takes_fd {
            self.sweep(2);
        }
        Ok(())
    }

    /// EV_DELETE: removes the registration, releasing its udata; Err when
    /// it was no longer about the same object (see `Filter::delete`).
    fn delete(&mut self, loc: Loc) -> OsResult<()> {
        let valid = self
            .with_filter(loc, |imp, cx, info| imp.delete(cx, info))
            .unwrap_or(Err(OsError(libc::ENOENT)));
        if let Some(st) = self.take(loc) {
            self.release(st.udata);
        }
        valid
    }

    /// Deletes a registration, releasing its resource and its udata.
    fn remove(&mut self, loc: Loc) {
        self.with_filter(loc, |imp, cx, info| imp.detach(cx, info));
        if let Some(st) = self.take(loc) {
            self.release(st.udata);
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
                fds::drop_slot(&mut self.cx, fd);
            }
        }
    }

    pub fn take_released(&mut self, out: &mut Vec<u64>) {
        out.append(&mut self.cx.released);
    }

    /// Removes every registration (last handle gone) and hands back every
    /// token still referenced or not yet taken.
    pub fn teardown(&mut self, tokens: &mut Vec<u64>) {
        // The epoll instance is gone or going: no epoll_ctl on a number that
        // may already name another file.
        self.cx.epfd = -1;
        for fd in self.cx.fds.occupied_fds() {
            fds::drop_slot(&mut self.cx, fd);
        }
        let ids: Vec<u64> = self.knotes.keys().copied().collect();
        for id in ids {
            self.remove(Loc::Knote(id));
        }
        self.active.clear();
        tokens.append(&mut self.cx.released);
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        self.teardown(&mut Vec::new());
    }
}
