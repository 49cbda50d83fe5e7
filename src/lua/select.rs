//! `select.select(rlist, wlist, xlist [, timeout])`, on top of `poll(2)`.
//!
//! Each list is read once, in order: a value's descriptor is taken (a
//! `getfd`/`fileno` method may run user code, which may change the lists),
//! and the value itself is kept, so that the results are exactly the values
//! that were polled, never read again from the lists. A list is read up to
//! its length when the call began, stopping early where a method shortened
//! it. Short lists keep their values on the Lua stack and the result tables
//! are built by the call's tail; long ones keep them in a private table.

use std::ffi::c_int;

use super::args::os_error;
use super::fdarg::{as_fd, to_fd_slow, NotFd};
use super::results::no_memory;
use super::stack::{arg_error, ret, Error, Kind, Lua, Raw, Ret, Step};
use super::timeout::{self, Negative};
use crate::core::deadline::Deadline;
use crate::core::select::{Interest, Select};

const LISTS: [(c_int, Interest); 3] = [
    (1, Interest::Read),
    (2, Interest::Write),
    (3, Interest::Except),
];

thread_local! {
    /// One reusable call buffer per thread (a Lua state runs on one thread).
    /// Taken out for the duration of a call, so a re-entrant call (from a
    /// `getfd` method, or a finalizer) simply builds its own.
    static BUFFER: std::cell::Cell<Option<Select>> = const { std::cell::Cell::new(None) };
}

/// Lists of up to this many entries in all keep their values on the Lua
/// stack: twice this (the values, then the ready ones again for the result
/// tables) stays well within the 8,000 slots a C function may use on 5.1
/// and LuaJIT.
const KEEP_MAX: usize = 3000;

/// Long lists are read this many entries at a time between the steps that
/// store their values in the private table.
const BATCH: usize = 8;

/// Stack slots above the kept values: a descriptor probe (3), the value
/// being read, and the three result tables with one value being stored.
const SPARE: usize = 8;

pub fn select(lua: &mut Lua) -> Ret {
    let mut lens = [0usize; 3];
    for (k, (arg, _)) in LISTS.into_iter().enumerate() {
        match lua.kind(arg) {
            Kind::Table => lens[k] = lua.raw_len(arg),
            Kind::Nil | Kind::None => {}
            _ => {
                return arg_error(
                    "select",
                    arg,
                    format!("table expected, got {}", lua.type_name(arg)),
                )
            }
        }
    }
    let deadline = timeout::seconds(
        lua,
        4,
        "select",
        4,
        Negative::Reject("timeout must be non-negative"),
    )?;
    // Everything the call pushes sits above the four arguments.
    lua.set_top(4);
    let total: usize = lens.iter().sum();
    let keep = total <= KEEP_MAX && lua.reserve((2 * total + SPARE) as c_int)?;
    let mut call = BUFFER.with(|b| b.take()).unwrap_or_default();
    call.clear();
    let result = if !call.try_reserve(total) {
        Err(no_memory())
    } else if keep {
        run_kept(lua, &mut call, lens, deadline)
    } else {
        run_long(lua, &mut call, lens, deadline)
    };
    BUFFER.with(|b| b.set(Some(call)));
    result
}

/// Reads entry `i` of the list at `arg`, left on top of the stack, into
/// `call`; false if a method shortened the list to before it.
#[inline(always)]
fn read_entry(
    lua: &mut Lua,
    call: &mut Select,
    arg: c_int,
    interest: Interest,
    i: usize,
    len: &mut usize,
    room: c_int,
) -> Result<(), Error> {
    if let Some(fd) = lua.raw_geti_integer(arg, i as i64).and_then(as_fd) {
        call.push(fd, interest);
        return Ok(());
    }
    let kind = lua.kind(-1);
    match to_fd_slow(lua, -1, room) {
        Ok(fd) => call.push(fd, interest),
        Err(NotFd::Bad(msg)) => return arg_error("select", arg, format!("{msg} at index {i}")),
        Err(NotFd::Raised) => return Err(Error::Rethrow),
    }
    if matches!(kind, Kind::Table | Kind::Userdata) {
        // A getfd/fileno method may have shortened the list: like Python,
        // stop at its current end (never read past it).
        *len = (*len).min(lua.raw_len(arg));
    }
    Ok(())
}

/// The short-list path: values stay on the stack above slot 4, then the
/// ready ones are pushed again, list by list, for the tail to store.
fn run_kept(lua: &mut Lua, call: &mut Select, lens: [usize; 3], deadline: Deadline) -> Ret {
    // What a getfd call must leave free (an upper bound: every value, every
    // ready value, the spare).
    let room = (2 * lens.iter().sum::<usize>() + SPARE) as c_int;
    let mut read = [0usize; 3];
    for (k, (arg, interest)) in LISTS.into_iter().enumerate() {
        if lens[k] == 0 {
            continue;
        }
        let mut len = lens[k].min(lua.raw_len(arg));
        let mut i = 0;
        while i < len {
            i += 1;
            read_entry(lua, call, arg, interest, i, &mut len, room)?;
        }
        read[k] = i;
    }
    if let Err(e) = call.wait(deadline) {
        return os_error(lua, e);
    }
    let mut counts = [0usize; 3];
    let mut start = 0;
    for (k, (_, interest)) in LISTS.into_iter().enumerate() {
        let ready = call.ready_count(interest);
        for e in call.ready_from(start).take(ready) {
            // Entry start + e of all lists is the value at that offset above
            // slot 4.
            lua.push_value(5 + (start + e) as c_int);
        }
        counts[k] = ready;
        start += read[k];
    }
    Step::tail(build_kept, counts)
}

/// Tail of the short-list path: the ready values of the three lists are the
/// top `counts` values, in list order; makes the three result tables.
fn build_kept(lua: &mut Raw, counts: [usize; 3]) -> c_int {
    let all: usize = counts.iter().sum();
    let mut from = lua.top() - all as c_int + 1;
    for n in counts {
        lua.new_table(n, 0);
        for j in 0..n {
            lua.push_value(from + j as c_int);
            lua.raw_seti(-2, j as i64 + 1);
        }
        from += n as c_int;
    }
    3
}

/// The long-list path: a value that is a plain integer is its own
/// descriptor, so only the others (objects, files, floats) are kept, in a
/// private table (slot 5) filled in batches, so that neither the stack nor
/// the memory holds a second copy of a long list of numbers.
fn run_long(lua: &mut Lua, call: &mut Select, lens: [usize; 3], deadline: Deadline) -> Ret {
    if !lua.reserve((BATCH + 2 * SPARE) as c_int)? {
        return Err(Error::Msg("stack overflow".into()));
    }
    lua.protect(0, 1, new_holder, ())?;
    let holder = lua.top();
    let mut read = [0usize; 3];
    let mut pos = 0usize;
    let mut batch = [0usize; BATCH];
    for (k, (arg, interest)) in LISTS.into_iter().enumerate() {
        if lens[k] == 0 {
            continue;
        }
        let mut len = lens[k].min(lua.raw_len(arg));
        let mut i = 0;
        while i < len {
            lua.push_value(holder);
            let mut kept = 0;
            while i < len && kept < BATCH {
                i += 1;
                read_entry(
                    lua,
                    call,
                    arg,
                    interest,
                    i,
                    &mut len,
                    (BATCH + 2 * SPARE) as c_int,
                )?;
                if lua.is_integer(-1) {
                    lua.pop(1);
                } else {
                    batch[kept] = pos;
                    kept += 1;
                }
                pos += 1;
            }
            lua.protect(kept as c_int + 1, 0, store_batch, (batch.as_ptr(), kept))?;
        }
        read[k] = i;
    }
    if let Err(e) = call.wait(deadline) {
        return os_error(lua, e);
    }
    lua.protect(1, 3, build_long, (call as *const Select, read))?;
    ret(3)
}

/// Step: a table for the kept values.
fn new_holder(lua: &mut Raw, (): ()) -> c_int {
    lua.new_table(0, 0);
    1
}

/// Step: the table in slot 1 gets the values above it, each at its entry's
/// position (plus one) from the positions given.
fn store_batch(lua: &mut Raw, (p, n): (*const usize, usize)) -> c_int {
    // SAFETY: p and n come from run_long's array, untouched during the step.
    let positions = unsafe { std::slice::from_raw_parts(p, n) };
    for (j, &pos) in positions.iter().enumerate().rev() {
        if lua.top() != j as c_int + 2 {
            break; // (the step got exactly n values: never taken)
        }
        lua.raw_seti(1, pos as i64 + 1);
    }
    0
}

/// Step: the three result tables: each ready entry's kept value from the
/// table in slot 1, or its descriptor when it was a plain integer.
fn build_long(lua: &mut Raw, (call, read): (*const Select, [usize; 3])) -> c_int {
    // SAFETY: the Select is owned by run_long's caller, which does not touch
    // it until this protected step returns.
    let call = unsafe { &*call };
    let mut start = 0;
    for (k, (_, interest)) in LISTS.into_iter().enumerate() {
        let ready = call.ready_count(interest);
        lua.new_table(ready, 0);
        for (n, e) in call.ready_from(start).take(ready).enumerate() {
            if lua.raw_geti(1, (start + e) as i64 + 1) == Kind::Nil {
                lua.pop(1);
                lua.push_int(call.fd_at(start + e).unwrap_or(-1) as i64);
            }
            lua.raw_seti(-2, n as i64 + 1);
        }
        start += read[k];
    }
    3
}
