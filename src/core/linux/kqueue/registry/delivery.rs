//! Delivery, as the BSD kernel does it: a registration that may have an event
//! is put on the active list (by a kernel report through `absorb`, or by
//! `arm` for state kept in user space); `scan` asks each active one for its
//! event, delivers, and keeps level-triggered ones the kernel will not report
//! again on the list. The queue's own descriptor is readable exactly while
//! something is pending (`refresh_notify`).

use std::mem::MaybeUninit;
use std::os::fd::{AsRawFd, RawFd};

use super::super::consts::{EV_DISPATCH, EV_ONESHOT};
use super::super::ctx::{self, Target};
use super::super::fds::{self, Delivery, Reported, Taken};
use super::super::fdtable::{self, Dir};
use super::super::knote::Collect;
use super::super::specs;
use super::super::BATCH;
use super::super::{read, write};
use super::{Loc, Registry};
use crate::core::kevent::KEvent;
use crate::core::linux::sys;

impl Registry {
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

    pub(super) fn activate(&mut self, loc: Loc) {
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
    pub(super) fn reap(&mut self) {
        loop {
            if let Some(fd) = self.cx.doomed.pop() {
                fds::drop_slot(&mut self.cx, fd);
            } else if let Some(loc) = self.doomed.pop() {
                self.remove(loc);
            } else {
                break;
            }
        }
    }

    /// Takes a batch of epoll reports: each token names a READ entry, a
    /// registration, a shared source, the notify eventfd or the set of
    /// WRITE entries, which is then read (without waiting). Returns whether
    /// that set had more ready than one batch took.
    ///
    /// `stray` is set by reports of entries no registration holds (and
    /// `live` by every other one): a
    /// level-triggered entry of a file whose number was closed while the
    /// file stays open elsewhere (a dup, a child) outlives its slot, and
    /// nothing can take it out of the set (that needs a number naming the
    /// file), so it is reported while that file is ready.
    pub fn absorb(
        &mut self,
        reports: &[libc::epoll_event],
        out: &mut Vec<KEvent>,
        maxevents: usize,
    ) -> bool {
        self.cx.round += 1;
        // Read again at its first use for this batch (see `Ctx::now_ms`).
        self.cx.now_ms = 0;
        self.stray = false;
        self.live = false;
        let mut hits = std::mem::take(&mut self.hits);
        hits.clear();
        let mut wset = false;
        // With nothing waiting on the active list (first in line), a
        // READ or WRITE report is delivered at once (fds::take_report).
        let at_once = self.active.is_empty() && self.async_ids.is_empty();
        for report in reports {
            // Copy out of the (packed) struct before use.
            let (token, revents) = (report.u64, report.events);
            if token == ctx::NOTIFY {
                self.raised = true;
                self.live = true;
            } else if token == ctx::WSET {
                wset = true;
            } else if let Some((fd, gen)) = fdtable::decode(token) {
                self.fd_report(fd, gen, &read::READ, revents, at_once, out, maxevents);
            } else {
                self.live = true;
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
        let more = wset && self.absorb_writes(at_once, out, maxevents);
        self.reap();
        more
    }

    /// Reads the reports of the WRITE entries' set: true when the batch
    /// was full (more may be ready).
    fn absorb_writes(&mut self, at_once: bool, out: &mut Vec<KEvent>, maxevents: usize) -> bool {
        let mut buf = [MaybeUninit::<libc::epoll_event>::uninit(); BATCH];
        let Ok(reports) = sys::epoll_wait(self.cx.wset.as_raw_fd(), &mut buf, || 0) else {
            return false;
        };
        for report in reports.iter() {
            let (token, revents) = (report.u64, report.events);
            if let Some((fd, gen)) = fdtable::decode(token) {
                self.fd_report(fd, gen, &write::WRITE, revents, at_once, out, maxevents);
            }
        }
        reports.len() == BATCH
    }

    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    fn fd_report(
        &mut self,
        fd: RawFd,
        gen: u32,
        d: &Dir,
        revents: u32,
        at_once: bool,
        out: &mut Vec<KEvent>,
        maxevents: usize,
    ) {
        if at_once {
            match fds::take_report(&mut self.cx, fd, gen, d, revents, self.call, out, maxevents) {
                Taken::Done => {
                    self.live = true;
                    return;
                }
                Taken::Stray => {
                    self.stray = true;
                    return;
                }
                Taken::Gone => {
                    self.live = true;
                    self.doomed.push(Loc::Fd(fd, d.index));
                    return;
                }
                Taken::Generic => {}
            }
        }
        match fds::report(&mut self.cx, fd, gen, d, revents) {
            Reported::Stray => self.stray = true,
            Reported::Quiet => self.live = true,
            Reported::Active { listed } => {
                self.live = true;
                if listed {
                    self.active.push(Loc::Fd(fd, d.index));
                }
            }
        }
    }

    /// Whether the last batch held nothing but stray reports (see
    /// `absorb`): a wait that returned at once for them alone.
    pub fn only_stray(&self) -> bool {
        self.stray && !self.live
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
        let mut unseen = std::mem::take(&mut self.spare[0]);
        let mut again = std::mem::take(&mut self.spare[1]);
        unseen.clear(); // no room left: first in line next time
        again.clear(); // delivered, still active: to the back
        for &loc in &list {
            if let Loc::Fd(fd, dir) = loc {
                let d = specs::fd_dir(dir);
                match fds::deliver(&mut self.cx, fd, d, self.call, out, maxevents) {
                    Delivery::Done => continue,
                    Delivery::Again => {
                        self.list(loc, &mut again);
                        continue;
                    }
                    Delivery::Unseen => {
                        self.list(loc, &mut unseen);
                        continue;
                    }
                    Delivery::Gone => {
                        self.doomed.push(loc);
                        continue;
                    }
                    Delivery::Generic => self.cx.fds.unlist(fd, dir),
                }
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
            // `delivered` runs at once for an event that keeps its
            // registration (the event is built by then).
            let Some((ident, filter, collected, stay)) =
                self.with_filter_as(loc, &st, |imp, cx, info| {
                    let collected = imp.collect(cx, info);
                    let stay = match collected {
                        Collect::Ready(r) if !info.has(EV_ONESHOT) && r.flags & EV_ONESHOT == 0 => {
                            imp.delivered(cx, info)
                        }
                        _ => false,
                    };
                    (info.ident, info.filter, collected, stay)
                })
            else {
                continue;
            };
            let ready = match collected {
                Collect::Ready(ready) => ready,
                Collect::NotReady => {
                    self.set_state(loc, st);
                    continue;
                }
                Collect::Gone => {
                    self.set_state(loc, st);
                    self.doomed.push(loc);
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
        if unseen.is_empty() && again.is_empty() && self.active.is_empty() {
            // Nothing stays active (the usual call): the list's own buffer
            // serves again.
            let mut list = list;
            list.clear();
            self.active = list;
            self.spare = [unseen, again];
        } else {
            unseen.append(&mut again);
            unseen.append(&mut self.active);
            self.active = unseen;
            self.spare = [list, again];
        }
        self.reap();
    }

    /// An EV_DISPATCH registration was delivered, and disabled: the kernel
    /// side follows.
    fn disarm(&mut self, loc: Loc) {
        // A failure drops it (a stale descriptor slot) or leaves it
        // disabled: either way nothing more is delivered.
        let _ = self.with_filter(loc, |imp, cx, info| imp.arm(cx, info));
    }

    /// Ends a round of collecting (before blocking, and at the end of the
    /// call): removes what died and brings the notify eventfd up to date.
    #[inline]
    pub fn settle(&mut self) {
        let quiet = self.active.is_empty() && self.async_ids.is_empty() && !self.raised;
        if quiet && self.doomed.is_empty() && self.cx.doomed.is_empty() {
            return; // the idle call: nothing died, nothing to signal
        }
        self.reap();
        self.refresh_notify();
    }

    /// Whether nothing is kept in user space that a call must deliver or hand
    /// back: no active registration, no async source, no released token,
    /// nothing to reap, and the notify eventfd not signalled. A call that
    /// then finds no epoll report has nothing to do.
    pub fn quiet(&self) -> bool {
        self.active.is_empty()
            && self.async_ids.is_empty()
            && !self.raised
            && self.cx.released.is_empty()
            && self.doomed.is_empty()
            && self.cx.doomed.is_empty()
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
}
