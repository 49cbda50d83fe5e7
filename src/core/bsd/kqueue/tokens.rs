//! Which udata tokens the kernel may still hold, so that the binding can drop
//! the Lua values of the others (the token protocol of `Kqueue`).
//!
//! The kernel does not say when it forgets a registration's udata, so the
//! table follows the changes and events that pass through `control`:
//!
//! - a change the kernel applied (no error entry for it, or a receipt with
//!   `data` 0) replaces the udata of its (ident, filter) registration, or
//!   deletes it (EV_DELETE): every older token of that key is released;
//! - a change the kernel refused (an error entry) releases its own token;
//! - a change whose outcome is unknown (kevent(2) failed as a whole) keeps
//!   its token as one more the registration may hold;
//! - an event delivered with EV_ONESHOT ends its registration: its key's
//!   tokens are released once the caller has seen the event.
//!
//! The kernel also drops every registration of a descriptor when the
//! descriptor is closed, and that passes through no `control` call. Such a
//! token stays until the same (ident, filter) is registered again (the
//! number reused) or the queue is closed: at most one stale token per
//! (descriptor number, filter), never more.

use std::collections::HashMap;

use super::consts::{keeps_udata, EV_DELETE, EV_ERROR, EV_ONESHOT};
use crate::core::kevent::{Filter, KEvent};

type Key = (u64, Filter);

#[derive(Default, Debug)]
pub struct Tokens {
    /// Tokens the kernel may hold, per registration.
    held: HashMap<Key, Vec<u64>>,
    /// Tokens no registration holds any more, not yet taken.
    released: Vec<u64>,
}

fn key(ev: &KEvent) -> Key {
    (ev.ident, ev.filter)
}

impl Tokens {
    /// Records the outcome of one kevent(2) call: `changes` as sent, `out`
    /// what it returned (`None` when the call failed as a whole, so that
    /// which changes were applied is unknown).
    pub fn record(&mut self, changes: &[KEvent], out: Option<&[KEvent]>) {
        for (i, ch) in changes.iter().enumerate() {
            match out {
                None => self.unknown(ch),
                Some(out) => match outcome(changes, i, out) {
                    Outcome::Applied => self.applied(ch),
                    Outcome::Failed => self.release(ch.udata),
                    Outcome::Unknown => self.unknown(ch),
                },
            }
        }
        for ev in out.unwrap_or(&[]) {
            if ev.flags & EV_ERROR == 0 && ev.flags & EV_ONESHOT != 0 {
                self.drop_key(key(ev));
            }
        }
    }

    fn applied(&mut self, ch: &KEvent) {
        if ch.flags & EV_DELETE != 0 {
            self.drop_key(key(ch));
            self.release(ch.udata);
            return;
        }
        if keeps_udata(ch.flags) {
            // The registration keeps its udata; the change's is unused.
            self.release(ch.udata);
            return;
        }
        self.drop_key(key(ch));
        if ch.udata != 0 {
            self.held.insert(key(ch), vec![ch.udata]);
        }
    }

    fn unknown(&mut self, ch: &KEvent) {
        if ch.udata == 0 {
            return;
        }
        if ch.flags & EV_DELETE != 0 {
            // Deleting never stores the change's udata.
            self.release(ch.udata);
            return;
        }
        self.held.entry(key(ch)).or_default().push(ch.udata);
    }

    fn drop_key(&mut self, k: Key) {
        if let Some(tokens) = self.held.remove(&k) {
            self.released.extend(tokens);
        }
    }

    fn release(&mut self, token: u64) {
        if token != 0 {
            self.released.push(token);
        }
    }

    /// Moves the released tokens into `out`.
    pub fn take_released(&mut self, out: &mut Vec<u64>) {
        out.append(&mut self.released);
    }

    /// Every token, for a queue that is closing.
    pub fn teardown(&mut self, out: &mut Vec<u64>) {
        self.take_released(out);
        for (_, tokens) in self.held.drain() {
            out.extend(tokens);
        }
        self.held = HashMap::new();
        self.released = Vec::new();
    }
}

enum Outcome {
    Applied,
    Failed,
    Unknown,
}

/// What became of `changes[i]`, by the error entries in `out` (a call that
/// returned at all processed every change; an error the event list had no
/// room for would have failed the call instead).
fn outcome(changes: &[KEvent], i: usize, out: &[KEvent]) -> Outcome {
    let ch = &changes[i];
    let is_error_of = |ev: &&KEvent| {
        ev.flags & EV_ERROR != 0
            && ev.udata == ch.udata
            && ev.ident == ch.ident
            && ev.filter == ch.filter
    };
    if ch.udata != 0 {
        // Tokens are unique per change: the entry names the change.
        return match out.iter().find(is_error_of) {
            Some(e) if e.data != 0 => Outcome::Failed,
            _ => Outcome::Applied,
        };
    }
    // Without a token, several changes of one call may share the key: an
    // error entry among them leaves each one's outcome unknown.
    if out.iter().any(|e| is_error_of(&e) && e.data != 0) {
        Outcome::Unknown
    } else {
        Outcome::Applied
    }
}

#[cfg(test)]
mod tests {
    use super::super::consts::EV_ADD;
    use super::*;

    fn ev(ident: u64, flags: crate::core::kevent::Flags, udata: u64) -> KEvent {
        KEvent {
            ident,
            filter: super::super::consts::FILTER_READ,
            flags,
            udata,
            ..KEvent::default()
        }
    }

    fn released(t: &mut Tokens) -> Vec<u64> {
        let mut v = Vec::new();
        t.take_released(&mut v);
        v.sort();
        v
    }

    #[test]
    fn a_new_udata_releases_the_old_one() {
        let mut t = Tokens::default();
        t.record(&[ev(3, EV_ADD, 1)], Some(&[]));
        assert!(released(&mut t).is_empty());
        t.record(&[ev(3, EV_ADD, 2)], Some(&[]));
        assert_eq!(released(&mut t), vec![1]);
        t.record(&[ev(3, EV_DELETE, 0)], Some(&[]));
        assert_eq!(released(&mut t), vec![2]);
    }

    #[test]
    fn a_refused_change_releases_its_token_only() {
        let mut t = Tokens::default();
        t.record(&[ev(3, EV_ADD, 1)], Some(&[]));
        let mut err = ev(3, EV_ADD | EV_ERROR, 2);
        err.data = libc::EBADF as i64;
        t.record(&[ev(3, EV_ADD, 2)], Some(&[err]));
        assert_eq!(released(&mut t), vec![2]);
    }

    #[test]
    fn oneshot_delivery_releases_after_the_call() {
        let mut t = Tokens::default();
        t.record(&[ev(3, EV_ADD | EV_ONESHOT, 1)], Some(&[]));
        t.record(&[], Some(&[ev(3, EV_ADD | EV_ONESHOT, 1)]));
        assert_eq!(released(&mut t), vec![1]);
    }

    #[test]
    fn unknown_outcomes_are_kept_until_a_known_change() {
        let mut t = Tokens::default();
        t.record(&[ev(3, EV_ADD, 1)], None);
        t.record(&[ev(3, EV_ADD, 2)], None);
        assert!(released(&mut t).is_empty());
        t.record(&[ev(3, EV_ADD, 3)], Some(&[]));
        assert_eq!(released(&mut t), vec![1, 2]);
        let mut all = Vec::new();
        t.teardown(&mut all);
        assert_eq!(all, vec![3]);
    }
}
