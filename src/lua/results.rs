//! Result arrays of `{fd, events}` pairs, for `poll.poll` and `epoll.poll`.
//!
//! The ready pairs are first copied out of the core into a buffer the
//! method owns (taken from its object, so that a finalizer that polls the
//! same object meanwhile finds an empty one and makes its own). Then one
//! protected Lua step builds either a new array, every table at its final
//! size, or, in the opt-in reuse form, refills the caller's own array in
//! place: its pair tables are overwritten and only missing ones are created,
//! so a steady loop allocates nothing. The idle path of a polling loop needs
//! no buffer: a new empty table is the method's tail.

use std::ffi::c_int;

use super::stack::{arg_error, ret, Error, Kind, Lua, Raw, Ret, Step};

/// Fills `buf` with the `n` pairs of `ready`, growing it fallibly.
pub fn fill(
    buf: &mut Vec<(i64, i64)>,
    n: usize,
    ready: impl Iterator<Item = (i64, i64)>,
) -> Result<(), Error> {
    buf.clear();
    if buf.try_reserve(n).is_err() {
        return Err(no_memory());
    }
    buf.extend(ready.take(n));
    Ok(())
}

/// The error for a failed Rust allocation: Lua's own words for its own.
#[cold]
pub fn no_memory() -> Error {
    Error::Msg("not enough memory".into())
}

/// A buffer to keep for the next call, so that a steady loop allocates
/// nothing; a large one (a burst of thousands of ready descriptors) is
/// released instead.
pub fn keep<T>(v: Vec<T>) -> Vec<T> {
    const KEEP_BYTES: usize = 16 * 1024;
    if v.capacity() * std::mem::size_of::<T>() > KEEP_BYTES {
        Vec::new()
    } else {
        v
    }
}

/// Ends a method with no ready pair: a new empty array (its tail), or the
/// results table at `out` emptied and returned.
#[inline]
pub fn empty(lua: &mut Lua, out: Option<c_int>) -> Ret {
    match out {
        None => Step::tail(new_table, ()),
        // The idle loop's case: an empty result into an empty array. A length
        // of 0 means t[1] is nil (a border), so there is nothing to clear.
        Some(t) if lua.raw_len(t) == 0 => {
            return_table(lua, t);
            ret(1)
        }
        Some(t) => {
            push(lua, Some(t), &[])?;
            ret(1)
        }
    }
}

fn new_table(raw: &mut Raw, (): ()) -> c_int {
    raw.new_table(0, 0);
    1
}

/// Pushes the results: a new array, or the array at `out` refilled.
pub fn push(lua: &mut Lua, out: Option<c_int>, pairs: &[(i64, i64)]) -> Result<(), Error> {
    let arg = (pairs.as_ptr(), pairs.len());
    match out {
        None => lua.protect(0, 1, new_pairs, arg),
        Some(t) => {
            lua.push_value(t);
            lua.protect(1, 1, fill_pairs, arg)
        }
    }
}

/// The pairs a step reads: memory the method owns for the step's duration.
fn pairs_of<'a>((p, n): (*const (i64, i64), usize)) -> &'a [(i64, i64)] {
    // SAFETY: p and n come from a slice that push()'s caller owns and does
    // not touch until the protected step returns.
    unsafe { std::slice::from_raw_parts(p, n) }
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

/// Step: pushes a new array of `{a, b}` pairs.
fn new_pairs(lua: &mut Raw, arg: (*const (i64, i64), usize)) -> c_int {
    let pairs = pairs_of(arg);
    lua.new_table(pairs.len(), 0);
    for (k, &(a, b)) in pairs.iter().enumerate() {
        lua.new_table(2, 0);
        lua.push_int(a);
        lua.raw_seti(-2, 1);
        lua.push_int(b);
        lua.raw_seti(-2, 2);
        lua.raw_seti(-2, k as i64 + 1);
    }
    1
}

/// Step: fills the array in slot 1 with the pairs, reusing its pair tables,
/// clears the entries past the end, and returns it.
fn fill_pairs(lua: &mut Raw, arg: (*const (i64, i64), usize)) -> c_int {
    let pairs = pairs_of(arg);
    // Pair tables are left on the stack and dropped 16 at a time (one
    // lua_settop per 16 pairs, not one each): 16 plus the 2 slots a pair's
    // fill needs stay within the 20 every C function may use.
    let t = 1;
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
    clear_from(lua, t, pairs.len());
    lua.set_top(t);
    1
}

/// Clears the entries of the array at `t` after its first `n`.
pub fn clear_from(lua: &mut Raw, t: c_int, n: usize) {
    let mut k = n as i64 + 1;
    while lua.raw_geti(t, k) != Kind::Nil {
        lua.pop(1);
        lua.push_nil();
        lua.raw_seti(t, k);
        k += 1;
    }
    lua.pop(1);
}

/// Leaves the table at `t` on top, to be returned: it usually is there
/// already (the results table is the call's last argument).
#[inline(always)]
pub fn return_table(lua: &mut Lua, t: c_int) {
    if lua.top() != t {
        lua.push_value(t);
    }
}
