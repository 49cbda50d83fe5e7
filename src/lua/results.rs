//! Result arrays of `{fd, events}` pairs, for `poll.poll` and `epoll.poll`.
//!
//! The ready pairs are copied out of the core into a buffer the object
//! holds, then the method's tail (see `stack`) builds either a new array,
//! every table at its final size, or, in the opt-in reuse form, refills the
//! caller's own array in place: its pair tables are overwritten and only
//! missing ones are created, so a steady loop allocates nothing.
//!
//! The tail reads the pairs from the object in slot 1, found again after
//! every allocation: an allocation may run a finalizer that polls or closes
//! the same object, and the tail then stops at what is left (never reading
//! freed memory).

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
    if fits_kept(&v) {
        v
    } else {
        Vec::new()
    }
}

/// Whether a buffer is small enough to keep between calls (16 KiB).
pub fn fits_kept<T>(v: &Vec<T>) -> bool {
    v.capacity() * std::mem::size_of::<T>() <= 16 * 1024
}

/// Where a tail finds the ready pairs: the buffer of the object in slot 1,
/// if that is still an open object of the method's type.
pub type Source = fn(&mut Lua) -> Option<&mut Vec<(i64, i64)>>;

/// Ends a method whose object (slot 1) holds `n` ready pairs in the buffer
/// `source` finds: the results are its tail. `out` is the results table's
/// slot in the reuse form; `large` says the buffer is to be released after
/// (see [`keep`]).
#[inline]
pub fn finish(lua: &mut Lua, n: usize, out: Option<c_int>, source: Source, large: bool) -> Ret {
    match out {
        None if n == 0 => Step::tail(new_table, ()),
        // The idle loop's case: an empty result into an empty array. A length
        // of 0 means t[1] is nil (a border), so there is nothing to clear.
        Some(t) if n == 0 && lua.raw_len(t) == 0 => {
            return_table(lua, t);
            ret(1)
        }
        _ => {
            let tail = Tail {
                source,
                n,
                large,
                t: out.unwrap_or(0),
            };
            if out.is_some() {
                Step::tail(fill_pairs, tail)
            } else {
                Step::tail(new_pairs, tail)
            }
        }
    }
}

/// Tail: a new empty table.
pub fn new_table(raw: &mut Raw, (): ()) -> c_int {
    raw.new_table(0, 0);
    1
}

/// Pair `k` of the object's buffer, found again (see the module header).
#[inline(always)]
fn pair(lua: &mut Raw, source: Source, k: usize) -> Option<(i64, i64)> {
    source(lua).and_then(|v| v.get(k).copied())
}

/// What a results tail needs to know.
#[derive(Clone, Copy)]
struct Tail {
    source: Source,
    /// How many pairs the object held when the method ended.
    n: usize,
    /// Whether its buffer is to be released afterwards (see [`keep`]).
    large: bool,
    /// The results table's slot in the reuse form.
    t: c_int,
}

/// At the end of a tail: a buffer left large by a burst is released.
fn release_large(lua: &mut Raw, tail: Tail) {
    if !tail.large {
        return;
    }
    if let Some(v) = (tail.source)(lua) {
        let kept = keep(std::mem::take(v));
        *v = kept;
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

/// Tail: pushes a new array of `{a, b}` pairs.
fn new_pairs(lua: &mut Raw, tail: Tail) -> c_int {
    lua.new_table(tail.n, 0);
    // A pair is copied out before the allocations that store it.
    let mut k = 0;
    while k < tail.n {
        let Some((a, b)) = pair(lua, tail.source, k) else {
            break;
        };
        lua.new_table(2, 0);
        lua.push_int(a);
        lua.raw_seti(-2, 1);
        lua.push_int(b);
        lua.raw_seti(-2, 2);
        lua.raw_seti(-2, k as i64 + 1);
        k += 1;
    }
    release_large(lua, tail);
    1
}

/// Tail: fills the array at `t` with the pairs, reusing its pair tables,
/// clears the entries past the end, and returns it.
fn fill_pairs(lua: &mut Raw, tail: Tail) -> c_int {
    let t = tail.t;
    // Pair tables are left on the stack and dropped 16 at a time (one
    // lua_settop per 16 pairs, not one each): 16 plus the 2 slots a pair's
    // fill needs stay within the 20 every C function may use.
    let base = lua.top();
    let mut k = 0;
    // A pair is copied out before the allocations that store it.
    while k < tail.n {
        let Some((a, b)) = pair(lua, tail.source, k) else {
            break;
        };
        if k % 16 == 0 {
            lua.set_top(base);
        }
        let key = k as i64 + 1;
        if lua.raw_geti(t, key) != Kind::Table {
            lua.pop(1);
            lua.new_table(2, 0);
            lua.push_value(-1);
            lua.raw_seti(t, key);
        }
        lua.push_int(a);
        lua.raw_seti(-2, 1);
        lua.push_int(b);
        lua.raw_seti(-2, 2);
        k += 1;
    }
    lua.set_top(base);
    clear_from(lua, t, k);
    release_large(lua, tail);
    return_table(lua, t);
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
