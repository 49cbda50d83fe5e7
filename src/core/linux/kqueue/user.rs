//! EVFILT_USER: an event the program triggers itself. No kernel object is
//! needed: the trigger is a flag, and the queue's notify eventfd (see
//! Registry::refresh_notify) makes the queue readable and wakes a waiter in
//! another thread while a triggered event is pending.

use super::consts::*;
use super::ctx::Ctx;
use super::filter::Filter;
use super::knote::{Collect, Info, Ready};
use crate::core::error::OsResult;
use crate::core::kevent::KEvent;

pub struct User {
    triggered: bool,
    /// The stored fflags (low 24 bits), edited by NOTE_FFAND/FFOR/FFCOPY.
    fflags: u32,
    data: i64,
}

/// As in FreeBSD, the adding change's fflags are the initial stored value
/// (whatever its ffctrl bits say), and NOTE_TRIGGER in it fires at once.
pub fn attach(_cx: &mut Ctx, _kn: &Info, kev: &KEvent) -> OsResult<Box<dyn Filter>> {
    Ok(Box::new(User {
        triggered: kev.fflags & NOTE_TRIGGER != 0,
        fflags: kev.fflags & NOTE_FFLAGSMASK,
        data: kev.data,
    }))
}

impl User {
    /// FreeBSD's filt_usertouch: every change may trigger, edits the stored
    /// fflags, and sets data. It never un-triggers (only delivery with
    /// EV_CLEAR does).
    fn apply(&mut self, kev: &KEvent) {
        if kev.fflags & NOTE_TRIGGER != 0 {
            self.triggered = true;
        }
        let bits = kev.fflags & NOTE_FFLAGSMASK;
        match kev.fflags & NOTE_FFCTRLMASK {
            NOTE_FFAND => self.fflags &= bits,
            NOTE_FFOR => self.fflags |= bits,
            NOTE_FFCOPY => self.fflags = bits,
            _ => {} // NOTE_FFNOP
        }
        self.data = kev.data;
    }
}

impl Filter for User {
    fn modify(&mut self, _cx: &mut Ctx, _kn: &Info, kev: &KEvent) -> OsResult<()> {
        self.apply(kev);
        Ok(())
    }

    fn touch(&mut self, _cx: &mut Ctx, _kn: &Info, kev: &KEvent) -> OsResult<()> {
        self.apply(kev);
        Ok(())
    }

    fn arm(&mut self, _cx: &mut Ctx, kn: &Info) -> OsResult<bool> {
        Ok(kn.enabled && self.triggered)
    }

    fn event(&mut self, _cx: &mut Ctx, _kn: &Info, _hint: u32) -> bool {
        false
    }

    fn collect(&mut self, _cx: &mut Ctx, _kn: &Info) -> Collect {
        if !self.triggered {
            return Collect::NotReady;
        }
        Collect::Ready(Ready {
            data: self.data,
            fflags: self.fflags,
            flags: 0,
        })
    }

    /// Without EV_CLEAR the event stays triggered and is reported on every
    /// call; with it, delivery resets the trigger.
    fn delivered(&mut self, _cx: &mut Ctx, kn: &Info) -> bool {
        if kn.has(EV_CLEAR) {
            self.triggered = false;
        }
        self.triggered
    }

    fn detach(&mut self, _cx: &mut Ctx, _kn: &Info) {}
}

#[cfg(test)]
mod tests {
    use super::super::testkit::*;
    use super::super::*;

    #[test]
    fn trigger_fires_and_clear_resets() {
        let kq = Kqueue::new().unwrap();
        apply(&kq, &[kev(7, FILTER_USER, EV_ADD | EV_CLEAR)]);
        assert!(wait(&kq, 0).is_empty());
        apply(&kq, &[kevd(7, FILTER_USER, 0, NOTE_TRIGGER, 42)]);
        let evs = wait(&kq, 0);
        assert_eq!(evs.len(), 1);
        assert_eq!(
            (evs[0].ident, evs[0].filter, evs[0].data),
            (7, FILTER_USER, 42)
        );
        assert_ne!(evs[0].flags & EV_CLEAR, 0);
        assert!(wait(&kq, 0).is_empty());
        assert!(!readable(kq.fileno()));
    }

    #[test]
    fn without_clear_it_stays_triggered() {
        let kq = Kqueue::new().unwrap();
        apply(&kq, &[kev(8, FILTER_USER, EV_ADD)]);
        apply(&kq, &[kevd(8, FILTER_USER, EV_ENABLE, NOTE_TRIGGER, 0)]);
        for _ in 0..3 {
            assert_eq!(wait(&kq, 0).len(), 1);
        }
        // A later EV_ADD modifies it without un-triggering it.
        apply(&kq, &[kevd(8, FILTER_USER, EV_ADD, 0, 5)]);
        assert_eq!(wait(&kq, 0)[0].data, 5);
    }

    #[test]
    fn ffctrl_edits_the_stored_fflags() {
        let kq = Kqueue::new().unwrap();
        apply(&kq, &[kevd(9, FILTER_USER, EV_ADD | EV_CLEAR, 0x1, 0)]);
        apply(&kq, &[kevd(9, FILTER_USER, 0, NOTE_FFOR | 0x6, 0)]);
        apply(&kq, &[kevd(9, FILTER_USER, 0, NOTE_FFAND | 0x5, 0)]);
        apply(&kq, &[kevd(9, FILTER_USER, 0, NOTE_TRIGGER, 0)]);
        assert_eq!(wait(&kq, 0)[0].fflags, 0x5);
        apply(
            &kq,
            &[kevd(
                9,
                FILTER_USER,
                0,
                NOTE_FFCOPY | NOTE_TRIGGER | 0x30,
                0,
            )],
        );
        assert_eq!(wait(&kq, 0)[0].fflags, 0x30);
        apply(
            &kq,
            &[kevd(9, FILTER_USER, 0, NOTE_FFNOP | NOTE_TRIGGER | 0xff, 0)],
        );
        assert_eq!(wait(&kq, 0)[0].fflags, 0x30, "FFNOP leaves them");
    }

    #[test]
    fn add_with_trigger_fires_at_once() {
        let kq = Kqueue::new().unwrap();
        apply(
            &kq,
            &[kevd(1, FILTER_USER, EV_ADD | EV_ONESHOT, NOTE_TRIGGER, 0)],
        );
        assert_eq!(wait(&kq, 0).len(), 1);
        assert!(wait(&kq, 0).is_empty());
    }
}
