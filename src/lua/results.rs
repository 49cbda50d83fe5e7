//! Result arrays of `{fd, events}` pairs, for `poll.poll` and `epoll.poll`.
//!
//! Ready pairs are first copied out of the object into a per-thread scratch
//! buffer ([`copy`]; an idle call needs none), so that no borrow of the object
//! is held while Lua allocates (an allocation may run finalizers, which may use
//! the object). Then either a new array is built, every table at its final
//! size, or, in the opt-in reuse form, the caller's own array is filled in
//! place: its pair tables are overwritten and only missing ones are created,
//! so a steady loop allocates nothing.

use std::cell::Cell;
use std::ffi::c_int;

use super::stack::{arg_error, Error, Kind, Lua};

thread_local! {
    static SCRATCH: Cell<Vec<(i64, i64)>> = const { Cell::new(Vec::new()) };
}

/// Copies out the `n` ready pairs of `ready` into the per-thread buffer (a
/// re-entrant call simply finds it taken and starts a new one); `None` when
/// nothing is ready, the idle path of a polling loop, which needs no buffer.
pub fn copy(n: usize, ready: impl Iterator<Item = (i64, i64)>) -> Option<Vec<(i64, i64)>> {
    if n == 0 {
        return None;
    }
    let mut pairs = SCRATCH.with(Cell::take);
    pairs.clear();
    pairs.extend(ready);
    Some(pairs)
}

/// Pushes the results (a new array, or the array at `out` refilled) and keeps
/// the buffer for the next call.
#[inline]
pub fn push(lua: &mut Lua, out: Option<c_int>, ready: Option<Vec<(i64, i64)>>) {
    match (out, ready.as_deref()) {
        (Some(t), Some(pairs)) => fill_pairs(lua, t, pairs),
        (Some(t), None) => finish_refill(lua, t, 0),
        (None, pairs) => new_pairs(lua, pairs.unwrap_or_default()),
    }
    if let Some(v) = ready {
        SCRATCH.with(|s| s.set(v));
    }
}

/// The optional results-table argument at `i`: `None` when absent or nil.
#[inline]
pub fn out_arg(lua: &Lua, i: c_int, func: &str, arg: c_int) -> Result<Option<c_int>, Error> {
    match lua.kind(i) {
        Kind::None | Kind::Nil => Ok(None),
        Kind::Table => Ok(Some(lua.abs(i))),
        _ => out_arg_error(lua, i, func, arg),
    }
}

#[cold]
#[inline(never)]
fn out_arg_error(lua: &Lua, i: c_int, func: &str, arg: c_int) -> Result<Option<c_int>, Error> {
    arg_error(
        func,
        arg,
        format!("results table or nil expected, got {}", lua.type_name(i)),
    )
}

/// Pushes a new array of `{a, b}` pairs.
fn new_pairs(lua: &mut Lua, pairs: &[(i64, i64)]) {
    lua.new_table(pairs.len(), 0);
    for (k, &(a, b)) in pairs.iter().enumerate() {
        lua.new_table(2, 0);
        lua.push_int(a);
        lua.raw_seti(-2, 1);
        lua.push_int(b);
        lua.raw_seti(-2, 2);
        lua.raw_seti(-2, k as i64 + 1);
    }
}

/// Fills the array at `t` with the pairs, reusing its pair tables, clears the
/// entries past the end, and pushes it.
fn fill_pairs(lua: &mut Lua, t: c_int, pairs: &[(i64, i64)]) {
    // Pair tables are left on the stack and dropped 16 at a time (one
    // lua_settop per 16 pairs, not one each): 16 plus the 2 slots a pair's
    // fill needs stay within the 20 every C function may use.
    let base = lua.top();
    for (k, &(a, b)) in pairs.iter().enumerate() {
        if k % 16 == 0 {
            lua.set_top(base);
        }
        let k = k as i64 + 1;
        if lua.raw_geti(t, k) != Kind::Table {
            lua.pop(1);
            lua.new_table(2, 0);
            lua.push_value(-1);
            lua.raw_seti(t, k);
        }
        lua.push_int(a);
        lua.raw_seti(-2, 1);
        lua.push_int(b);
        lua.raw_seti(-2, 2);
    }
    lua.set_top(base);
    finish_refill(lua, t, pairs.len());
}

/// Ends a refill of the caller's array at `t` that wrote entries `1..=n`:
/// clears the entries after them and pushes the array.
pub fn finish_refill(lua: &mut Lua, t: c_int, n: usize) {
    // The idle loop's case: an empty result into an empty array. A length of
    // 0 means t[1] is nil (a border), so there is nothing to clear.
    if n == 0 && lua.raw_len(t) == 0 {
        return_table(lua, t);
        return;
    }
    let mut k = n as i64 + 1;
    while lua.raw_geti(t, k) != Kind::Nil {
        lua.pop(1);
        lua.push_nil();
        lua.raw_seti(t, k);
        k += 1;
    }
    lua.pop(1);
    return_table(lua, t);
}

/// Leaves the table at `t` on top, to be returned: it usually is there
/// already (the results table is the call's last argument).
#[inline(always)]
fn return_table(lua: &mut Lua, t: c_int) {
    if lua.top() != t {
        lua.push_value(t);
    }
}
