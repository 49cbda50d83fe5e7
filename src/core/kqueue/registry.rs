//! The registration table of one queue and kevent's flag state machine:
//! EV_ADD (create, or modify an existing (ident, filter)), EV_DELETE,
//! EV_ENABLE/EV_DISABLE, EV_ONESHOT (removed after its first delivery),
//! EV_DISPATCH (disabled after each delivery), EV_CLEAR (handled by the
//! filters' `delivered`), EV_RECEIPT; and the udata tokens' bookkeeping.
//!
//! Delivery follows the BSD kernel: a registration that may have an event is
//! put on the active list (by a kernel report through `absorb`, or by `arm`
//! for state kept in user space); `scan` asks each active one for its event,
//! delivers, and keeps level-triggered ones the kernel will not report again
//! on the list.

use std::collections::HashMap;
use std::os::fd::{AsRawFd, RawFd};

use super::consts::*;
use super::ctx::{self, Ctx, Target};
use super::filter::{self, Attach, Collect, Filter, Info, State};
use super::{fdtable, sys, KEvent};
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
        let spec = filter::spec(ch.filter)?;
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
    /// change to an existing registration goes through `fdtable::sync`, whose
    /// epoll_ctl also tells whether the descriptor still names the file the
    /// registration was made for (see fdtable.rs): if not, the registrations
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
            return match fdtable::sync(&mut self.cx, fd) {
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
        match fdtable::sync(&mut self.cx, fd) {
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
            match fdtable::join(&mut self.cx, fd, dir, st) {
                Ok(pending) => pending,
                Err(e) => {
                    self.drop_fd(fd);
                    if e != OsError(libc::ENOENT) {
                        return Err(e);
                    }
                    fdtable::claim(&mut self.cx, fd, dir, st)?
                }
            }
        } else {
            fdtable::claim(&mut self.cx, fd, dir, st)?
        };
        *stored = true;
        if pending {
            self.activate(Loc::Fd(fd, dir));
        }
        Ok(())
    }

    fn create(&mut self, attach: filter::AttachFn, ch: &KEvent, stored: &mut bool) -> OsResult<()> {
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
                    if fdtable::sync(&mut self.cx, fd).is_err() {
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

    /// Puts `loc` (back) on the active list: a fd position has at most one
    /// entry there.
    fn list(&mut self, loc: Loc, on: &mut Vec<Loc>) {
        if let Loc::Fd(fd, dir) = loc {
            if !self.cx.fds.list(fd, dir) {
                return;
            }
        }
        on.push(loc);
    }

    fn activate(&mut self, loc: Loc) {
        if let Loc::Fd(fd, dir) = loc {
            if self.cx.fds.activate(fd, dir) {
                self.active.push(loc);
            }
            return;
        }
        let Some(mut st) = self.state(loc) else {
            return;
        };
        if !st.active {
            st.active = true;
            self.set_state(loc, st);
            let mut active = std::mem::take(&mut self.active);
            self.list(loc, &mut active);
            self.active = active;
        }
    }

    /// Removes the registrations found dead or delivered for the last time.
    fn reap(&mut self) {
        loop {
            if let Some(fd) = self.cx.doomed.pop() {
                self.drop_fd(fd);
            } else if let Some(loc) = self.doomed.pop() {
                self.remove(loc);
            } else {
                break;
            }
        }
    }

    /// Takes a batch of epoll reports: each token names an fd slot, a
    /// registration, a shared source, or the notify eventfd.
    pub fn absorb(&mut self, reports: &[libc::epoll_event]) {
        self.cx.round += 1;
        let mut hits = std::mem::take(&mut self.hits);
        hits.clear();
        for report in reports {
            // Copy out of the (packed) struct before use.
            let (token, revents) = (report.u64, report.events);
            if token == ctx::NOTIFY {
                self.raised = true;
            } else if let Some((fd, gen)) = fdtable::decode(token) {
                let ready = fdtable::report(&mut self.cx, fd, gen, revents);
                for dir in 0..2 {
                    if ready & (1 << dir) != 0 {
                        self.activate(Loc::Fd(fd, dir));
                    }
                }
            } else {
                match self.cx.target(token) {
                    Some(Target::Knote(id)) => hits.push((id, revents)),
                    Some(Target::Source(read)) => read(&mut self.cx, &mut hits),
                    None => {} // deleted meanwhile, or a stale epoll entry
                }
            }
        }
        for &(id, hint) in &hits {
            let Some(kn) = self.knotes.get_mut(&id) else {
                continue;
            };
            let info = kn.info();
            if kn.imp.event(&mut self.cx, &info, hint) && info.enabled {
                self.activate(Loc::Knote(id));
            }
        }
        self.hits = hits;
        self.reap();
    }

    /// Starts collecting for one `control` call (see `scan`).
    pub fn begin_call(&mut self) {
        self.call = self.call.wrapping_add(1).max(1);
    }

    /// Delivers active registrations into `out`, up to `maxevents`. May run
    /// several times in one call (several epoll batches); a registration
    /// delivered earlier in the same call waits for the next call.
    pub fn scan(&mut self, out: &mut Vec<KEvent>, maxevents: usize) {
        if self.active.is_empty() && self.async_ids.is_empty() {
            return; // the idle call
        }
        for i in 0..self.async_ids.len() {
            let id = self.async_ids[i];
            if self
                .knotes
                .get(&id)
                .is_some_and(|k| k.st.enabled && k.imp.pending())
            {
                self.activate(Loc::Knote(id));
            }
        }
        let list = std::mem::take(&mut self.active);
        let [mut unseen, mut again] = std::mem::take(&mut self.spare);
        unseen.clear(); // no room left: first in line next time
        again.clear(); // delivered, still active: to the back
        for &loc in &list {
            if let Loc::Fd(fd, dir) = loc {
                self.cx.fds.unlist(fd, dir);
            }
            let Some(mut st) = self.state(loc) else {
                continue;
            };
            if !st.active {
                continue;
            }
            if out.len() >= maxevents {
                self.list(loc, &mut unseen);
                continue;
            }
            if st.delivered_in == self.call {
                self.list(loc, &mut again);
                continue;
            }
            st.active = false;
            if !st.enabled {
                self.set_state(loc, st);
                continue;
            }
            let (ident, filter, collected) = match loc {
                Loc::Fd(fd, dir) => (
                    fd as u64,
                    fdtable::DIRS[dir].filter,
                    fdtable::collect(&mut self.cx, fd, dir),
                ),
                Loc::Knote(id) => {
                    let Some(kn) = self.knotes.get_mut(&id) else {
                        continue;
                    };
                    let info = kn.info();
                    (kn.ident, kn.filter, kn.imp.collect(&mut self.cx, &info))
                }
            };
            let ready = match collected {
                Collect::Ready(ready) => ready,
                Collect::NotReady => {
                    self.set_state(loc, st);
                    continue;
                }
                Collect::Gone => {
                    self.set_state(loc, st);
                    match loc {
                        Loc::Fd(fd, _) => self.cx.doomed.push(fd),
                        Loc::Knote(_) => self.doomed.push(loc),
                    }
                    continue;
                }
            };
            out.push(KEvent {
                ident,
                filter,
                flags: st.flags | ready.flags,
                fflags: ready.fflags,
                data: ready.data,
                udata: st.udata,
            });
            st.delivered_in = self.call;
            if st.flags & EV_ONESHOT != 0 || ready.flags & EV_ONESHOT != 0 {
                self.set_state(loc, st);
                self.doomed.push(loc);
                continue;
            }
            let stay = match loc {
                Loc::Fd(fd, _) => fdtable::stays(&self.cx, fd, &st),
                Loc::Knote(id) => match self.knotes.get_mut(&id) {
                    Some(kn) => kn.imp.delivered(&mut self.cx, &kn.info()),
                    None => false,
                },
            };
            if st.flags & EV_DISPATCH != 0 {
                st.enabled = false;
                self.set_state(loc, st);
                self.disarm(loc);
            } else {
                st.active = stay;
                self.set_state(loc, st);
                if stay {
                    self.list(loc, &mut again);
                }
            }
        }
        unseen.append(&mut again);
        unseen.append(&mut self.active);
        self.active = unseen;
        self.spare = [list, again];
        self.reap();
    }

    /// An EV_DISPATCH registration was delivered, and disabled: the kernel
    /// side follows.
    fn disarm(&mut self, loc: Loc) {
        match loc {
            Loc::Fd(fd, _) => {
                if fdtable::sync(&mut self.cx, fd).is_err() {
                    self.drop_fd(fd);
                }
            }
            Loc::Knote(id) => {
                if let Some(kn) = self.knotes.get_mut(&id) {
                    let _ = kn.imp.arm(&mut self.cx, &kn.info());
                }
            }
        }
    }

    /// Ends a round of collecting (before blocking, and at the end of the
    /// call): removes what died and brings the notify eventfd up to date.
    pub fn settle(&mut self) {
        self.reap();
        self.refresh_notify();
    }

    /// Whether an event is waiting that no kernel fd in the epoll set reports
    /// by itself (user-space state, always-ready files, signal counts).
    fn pending(&self) -> bool {
        let live = |loc: &Loc| self.state(*loc).is_some_and(|s| s.active && s.enabled);
        self.active.iter().any(live)
            || self.async_ids.iter().any(|id| {
                self.knotes
                    .get(id)
                    .is_some_and(|k| k.st.enabled && k.imp.pending())
            })
    }

    /// Makes the notify eventfd readable exactly while `pending()`, so that
    /// the queue's fd is readable while events are pending. It is drained
    /// first and the state read after, so a signal counted meanwhile by the
    /// hub (which counts, then writes) is never lost. Only what may be
    /// readable is drained: the hub's writes are unseen until epoll reports
    /// them, so with signals watched it is drained every time.
    pub fn refresh_notify(&mut self) {
        let fd = self.cx.notify.as_raw_fd();
        if self.raised || !self.async_ids.is_empty() {
            let _ = sys::read_u64(fd);
            self.raised = false;
        }
        if self.pending() {
            sys::write_u64(fd, 1);
            self.raised = true;
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
