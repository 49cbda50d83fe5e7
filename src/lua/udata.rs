//! A kqueue's udata store: how a udata, any Lua value, travels through the
//! core (and the kernel, for the native backend) as a token.
//!
//! The store is a table, the kqueue object's uservalue, shared by every
//! object on the same queue (found for `fromfd` through a weak registry
//! table keyed by the queue's id). A change that carries a udata stores the
//! value under a token from the table's own free list (`luaL_ref`: small
//! integers, reused once released, so no counter ever runs out); the core
//! keeps only the token, hands it back with each event, and reports the
//! tokens it no longer holds, which then leave the store (after the events
//! that carry them were made). The store is reachable only through the
//! objects, so the GC can collect cycles through it.

use std::ffi::{c_int, CStr};

use super::kevent;
use super::stack::{Error, Kind, Lua, Raw, REGISTRY};
use crate::core::kqueue::KEvent;

/// Registry key of the weak table queue id -> udata store.
const STORES: &CStr = c"select.kqueue.udata-stores";

/// Marks a change whose udata `Store::stash` must store.
const MARK: u64 = u64::MAX;

/// The udata store of the kqueue object in slot 1, for one call: where it
/// sits on the stack once fetched.
#[derive(Clone, Copy)]
pub struct Store {
    pub slot: c_int,
}

impl Store {
    /// Step: gives the kqueue object in slot 1 the store of queue `id`,
    /// creating it (and the weak registry table of stores) on first use.
    pub fn attach(lua: &mut Raw, id: u64) -> c_int {
        if lua.raw_get_field(REGISTRY, STORES) != Kind::Table {
            lua.pop(1);
            lua.new_table(0, 4);
            lua.new_table(0, 1);
            lua.push_str("v");
            lua.raw_set_field(-2, c"__mode");
            lua.set_metatable(-2);
            lua.push_value(-1);
            lua.raw_set_field(REGISTRY, STORES);
        }
        let stores = lua.abs(-1);
        let key = (id % (i32::MAX as u64)) as i64 + 1;
        if lua.raw_geti(stores, key) != Kind::Table {
            lua.pop(1);
            lua.new_table(0, 0);
            lua.push_value(-1);
            lua.raw_seti(stores, key);
        }
        lua.set_uservalue(1);
        0
    }

    /// Puts the store at `slot` unless it is there already (the stack is
    /// then at most `slot - 1` high: the arguments), and checks it is a
    /// table: the debug library can replace an object's uservalue.
    pub fn fetch(self, lua: &mut Lua) -> Result<Store, Error> {
        if lua.top() < self.slot {
            lua.set_top(self.slot - 1);
            lua.get_uservalue(1);
        }
        if lua.kind(self.slot) == Kind::Table {
            Ok(self)
        } else {
            Err(Error::Msg(
                "kqueue udata store is missing (uservalue replaced)".into(),
            ))
        }
    }

    /// Marks a change read from a kevent with a udata, for `stash`.
    pub fn mark(ev: &mut KEvent, has_udata: bool) {
        ev.udata = if has_udata { MARK } else { 0 };
    }

    /// Stores the udata of every marked change, read from the changelist at
    /// `list` (entry k + 1 is change k), and gives the change its token. If
    /// that raises, the tokens handed out go back first.
    pub fn stash(self, lua: &mut Lua, list: c_int, changes: &mut [KEvent]) -> Result<(), Error> {
        lua.push_value(list);
        lua.push_value(self.slot);
        let arg = (changes.as_mut_ptr(), changes.len());
        if let Err(e) = lua.protect(2, 0, stash_step, arg) {
            lua.push_value(self.slot);
            let arg = (changes.as_ptr(), changes.len());
            // A second failure leaves them to the store's collection.
            if lua.protect(1, 0, unstash_step, arg).is_err() {
                lua.pop(1);
            }
            return Err(e);
        }
        Ok(())
    }

    /// Pushes the udata of `token` (nil for none).
    pub fn push(self, lua: &mut Raw, token: u64) {
        match c_int::try_from(token) {
            Ok(r) if r > 0 && lua.kind(self.slot) == Kind::Table => {
                lua.raw_geti(self.slot, r as i64);
            }
            _ => lua.push_nil(),
        }
    }

    /// Drops `token` from the store (in a Lua step).
    pub fn release(self, lua: &mut Raw, token: u64) {
        if let Ok(r) = c_int::try_from(token) {
            if r > 0 && lua.kind(self.slot) == Kind::Table {
                lua.unref(self.slot, r);
            }
        }
    }

    /// Drops the tokens, in a protected step.
    pub fn release_all(self, lua: &mut Lua, tokens: &[u64]) -> Result<(), Error> {
        fn step(lua: &mut Raw, (p, n): (*const u64, usize)) -> c_int {
            // SAFETY: p and n come from a slice the caller owns for the step.
            let tokens = unsafe { std::slice::from_raw_parts(p, n) };
            for &token in tokens {
                Store { slot: 1 }.release(lua, token);
            }
            0
        }
        lua.push_value(self.slot);
        lua.protect(1, 0, step, (tokens.as_ptr(), tokens.len()))
    }
}

/// Step of `stash`: the changelist in slot 1, the store in slot 2. A
/// finalizer run by the allocations here may change the changelist: an entry
/// that is no longer a kevent with a udata then carries none.
fn stash_step(lua: &mut Raw, (p, n): (*mut KEvent, usize)) -> c_int {
    // SAFETY: p and n come from the changes stash()'s caller owns and does
    // not touch until this protected step returns.
    let changes = unsafe { std::slice::from_raw_parts_mut(p, n) };
    for (i, ev) in changes.iter_mut().enumerate() {
        if ev.udata != MARK {
            continue;
        }
        ev.udata = 0;
        lua.raw_geti(1, i as i64 + 1);
        if let Some((_, true)) = kevent::get(lua, -1) {
            kevent::push_udata(lua, -1, true);
            ev.udata = lua.make_ref(2).max(0) as u64;
        }
        lua.set_top(2);
    }
    0
}

/// Step of `stash` after an error: the tokens it handed out (store in slot
/// 1) go back; unmarked and unprocessed changes hold none.
fn unstash_step(lua: &mut Raw, (p, n): (*const KEvent, usize)) -> c_int {
    // SAFETY: as in stash_step.
    let changes = unsafe { std::slice::from_raw_parts(p, n) };
    for ev in changes {
        if ev.udata != MARK {
            Store { slot: 1 }.release(lua, ev.udata);
        }
    }
    0
}
