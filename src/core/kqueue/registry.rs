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

use crate::core::fdhash::FdHash;
use std::os::fd::{AsRawFd, RawFd};

use super::consts::*;
use super::ctx::{Ctx, Target};
use super::filter::{self, Collect, Filter, Info};
use super::{fdtable, sys, KEvent};
use crate::core::error::{OsError, OsResult};

/// Flags a registration keeps from the change that made it: behaviour bits,
/// not actions and not the kernel's answer bits.
const STORED: u16 = !(EV_ADD | EV_DELETE | EV_ENABLE | EV_DISABLE | EV_SYSFLAGS);

struct Knote {
    info: Info,
    udata: u64,
    /// On the active list.
    active: bool,
    /// The `control` call that last delivered it: one event per call.
    delivered_in: u64,
    imp: Box<dyn Filter>,
}

pub struct Registry {
    pub cx: Ctx,
    knotes: HashMap<u64, Knote, FdHash>,
    index: HashMap<(u64, i16), u64, FdHash>,
    /// Registrations that may have an event, in delivery order. Entries of
    /// removed registrations are skipped.
    active: Vec<u64>,
    /// Registrations whose state changes outside the lock (signals).
    async_ids: Vec<u64>,
    /// udata tokens no longer referenced, for take_released.
    released: Vec<u64>,
    next_id: u64,
    /// Counts `control` calls that collect events.
    call: u64,
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
            next_id: 1,
            call: 0,
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
            if !stored && ch.udata != 0 {
                self.released.push(ch.udata);
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

    /// One change. `stored` is set once the change's udata is held by a
    /// registration (whose removal will release it).
    fn apply(&mut self, ch: &KEvent, stored: &mut bool) -> OsResult<()> {
        let spec = filter::spec(ch.filter)?;
        let mut existing = self.index.get(&(ch.ident, ch.filter)).copied();
        if spec.takes_fd {
            if let Err(e) = sys::ident_fd(ch.ident).and_then(sys::check_fd) {
                // A closed descriptor takes its registrations with it.
                if let Some(id) = existing {
                    self.remove(id);
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
                    kn.imp.validate(&mut self.cx, &kn.info) == Err(OsError(libc::ENOENT))
                });
            if stale {
                self.remove(existing.take().unwrap_or_default());
            }
        }
        let Some(id) = existing else {
            return match (ch.flags & EV_ADD != 0, ch.flags & EV_DELETE != 0) {
                (true, false) => self.create(spec.attach, ch, stored),
                (true, true) => Ok(()), // added and deleted at once: nothing left
                _ => Err(OsError(libc::ENOENT)),
            };
        };
        if ch.flags & EV_DELETE != 0 {
            let valid = match self.knotes.get(&id) {
                Some(kn) => kn.imp.validate(&mut self.cx, &kn.info),
                None => Ok(()),
            };
            self.remove(id);
            return valid;
        }
        let Some(kn) = self.knotes.get_mut(&id) else {
            return Err(OsError(libc::ENOENT));
        };
        if ch.flags & EV_ADD != 0 {
            let mut info = kn.info;
            info.flags = ch.flags & STORED;
            kn.imp.modify(&mut self.cx, &info, ch)?;
            kn.info.flags = info.flags;
            let old = std::mem::replace(&mut kn.udata, ch.udata);
            *stored = true;
            if old != 0 {
                self.released.push(old);
            }
        } else {
            let checked = kn.imp.validate(&mut self.cx, &kn.info);
            if let Err(e) = checked.and_then(|()| kn.imp.touch(&mut self.cx, &kn.info, ch)) {
                if e == OsError(libc::ENOENT) || e == OsError(libc::EBADF) {
                    self.remove(id); // it named a closed descriptor
                }
                return Err(e);
            }
        }
        kn.info.enabled = enabled_after(ch.flags, kn.info.enabled);
        match kn.imp.arm(&mut self.cx, &kn.info) {
            Ok(pending) => {
                if pending && kn.info.enabled {
                    self.activate(id);
                }
                Ok(())
            }
            Err(e) => {
                self.remove(id);
                Err(e)
            }
        }
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
        self.knotes.insert(
            info.id,
            Knote {
                info,
                udata: ch.udata,
                active: false,
                delivered_in: 0,
                imp,
            },
        );
        self.index.insert((info.ident, info.filter), info.id);
        *stored = true;
        if pending && info.enabled {
            self.activate(info.id);
        }
        Ok(())
    }

    /// Deletes a registration, releasing its resource and its udata.
    fn remove(&mut self, id: u64) {
        let Some(mut kn) = self.knotes.remove(&id) else {
            return;
        };
        self.index.remove(&(kn.info.ident, kn.info.filter));
        kn.imp.detach(&mut self.cx, &kn.info);
        if kn.udata != 0 {
            self.released.push(kn.udata);
        }
        if kn.imp.is_async() {
            self.async_ids.retain(|&a| a != id);
        }
    }

    fn activate(&mut self, id: u64) {
        if let Some(kn) = self.knotes.get_mut(&id) {
            if !kn.active {
                kn.active = true;
                self.active.push(id);
            }
        }
    }

    /// Removes the registrations filters found dead.
    fn reap(&mut self) {
        while let Some(id) = self.cx.doomed.pop() {
            self.remove(id);
        }
    }

    /// Takes a batch of epoll reports: each token names a registration, an
    /// fd entry or a shared source, which say which registrations it concerns.
    pub fn absorb(&mut self, reports: &[libc::epoll_event]) {
        self.cx.round += 1;
        let mut hits = Vec::new();
        for report in reports {
            // Copy out of the (packed) struct before use.
            let (token, revents) = (report.u64, report.events);
            match self.cx.target(token) {
                Some(Target::Knote(id)) => hits.push((id, revents)),
                Some(Target::Fd(fd)) => {
                    fdtable::dispatch(&mut self.cx, fd, token, revents, &mut hits)
                }
                Some(Target::Source(read)) => read(&mut self.cx, &mut hits),
                None => {} // deleted meanwhile, or a stale epoll entry
            }
        }
        for (id, hint) in hits {
            let Some(kn) = self.knotes.get_mut(&id) else {
                continue;
            };
            if kn.imp.event(&mut self.cx, &kn.info, hint) && kn.info.enabled {
                self.activate(id);
            }
        }
        self.reap();
    }

    /// Starts collecting for one `control` call (see `scan`).
    pub fn begin_call(&mut self) {
        self.call += 1;
    }

    /// Delivers active registrations into `out`, up to `maxevents`. May run
    /// several times in one call (several epoll batches); a registration
    /// delivered earlier in the same call waits for the next call.
    pub fn scan(&mut self, out: &mut Vec<KEvent>, maxevents: usize) {
        for i in 0..self.async_ids.len() {
            let id = self.async_ids[i];
            if self
                .knotes
                .get(&id)
                .is_some_and(|k| k.info.enabled && k.imp.pending())
            {
                self.activate(id);
            }
        }
        let list = std::mem::take(&mut self.active);
        let mut unseen = Vec::new(); // no room left: first in line next time
        let mut again = Vec::new(); // delivered, still active: to the back
        for id in list {
            let Some(kn) = self.knotes.get_mut(&id) else {
                continue;
            };
            if !kn.active {
                continue;
            }
            if out.len() >= maxevents {
                unseen.push(id);
                continue;
            }
            if kn.delivered_in == self.call {
                again.push(id);
                continue;
            }
            if !kn.info.enabled {
                kn.active = false;
                continue;
            }
            let ready = match kn.imp.collect(&mut self.cx, &kn.info) {
                Collect::Ready(ready) => ready,
                Collect::NotReady => {
                    kn.active = false;
                    continue;
                }
                Collect::Gone => {
                    kn.active = false;
                    self.cx.doomed.push(id);
                    continue;
                }
            };
            out.push(KEvent {
                ident: kn.info.ident,
                filter: kn.info.filter,
                flags: kn.info.flags | ready.flags,
                fflags: ready.fflags,
                data: ready.data,
                udata: kn.udata,
            });
            kn.delivered_in = self.call;
            if kn.info.has(EV_ONESHOT) || ready.flags & EV_ONESHOT != 0 {
                kn.active = false;
                self.cx.doomed.push(id);
                continue;
            }
            let stay = kn.imp.delivered(&mut self.cx, &kn.info);
            if kn.info.has(EV_DISPATCH) {
                kn.info.enabled = false;
                let _ = kn.imp.arm(&mut self.cx, &kn.info);
                kn.active = false;
            } else if stay {
                again.push(id);
            } else {
                kn.active = false;
            }
        }
        unseen.append(&mut again);
        unseen.append(&mut self.active);
        self.active = unseen;
        self.reap();
    }

    /// Ends a round of collecting (before blocking, and at the end of the
    /// call): re-arms the level-triggered fd entries reported meanwhile (not
    /// earlier, or the kernel would report them again within the same call)
    /// and brings the notify eventfd up to date.
    pub fn settle(&mut self) {
        fdtable::rearm_all(&mut self.cx);
        self.reap();
        self.refresh_notify();
    }

    /// Whether an event is waiting that no kernel fd in the epoll set reports
    /// by itself (user-space state, always-ready files, signal counts).
    fn pending(&self) -> bool {
        let knote = |id: &u64| self.knotes.get(id).filter(|k| k.info.enabled);
        self.active
            .iter()
            .any(|id| knote(id).is_some_and(|k| k.active))
            || self
                .async_ids
                .iter()
                .any(|id| knote(id).is_some_and(|k| k.imp.pending()))
    }

    /// Makes the notify eventfd readable exactly while `pending()`, so that
    /// the queue's fd is readable while events are pending. The eventfd is
    /// drained first and the state read after, so a signal counted meanwhile
    /// by the hub (which counts, then writes) is never lost.
    pub fn refresh_notify(&mut self) {
        let fd = self.cx.notify.as_raw_fd();
        let _ = sys::read_u64(fd);
        if self.pending() {
            sys::write_u64(fd, 1);
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
        let ids: Vec<u64> = self.knotes.keys().copied().collect();
        for id in ids {
            self.remove(id);
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
