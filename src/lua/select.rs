//! `select.select(rlist, wlist, xlist [, timeout])`, on top of `poll(2)`.

use std::ffi::c_int;

use super::args::os_error;
use super::fdarg::{as_fd, to_fd_slow, NotFd};
use super::stack::{arg_error, Error, Kind, Lua, Ret};
use super::timeout::{self, Negative};
use crate::core::select::{Interest, Select};

const LISTS: [(c_int, Interest); 3] = [
    (1, Interest::Read),
    (2, Interest::Write),
    (3, Interest::Except),
];

thread_local! {
    /// One reusable call buffer per thread (a Lua state runs on one thread).
    /// Taken out for the duration of a call, so a re-entrant call (from a
    /// `getfd` method) simply builds its own.
    static BUFFER: std::cell::Cell<Option<Select>> = const { std::cell::Cell::new(None) };
}

pub fn select(lua: &mut Lua) -> Ret {
    for (arg, _) in LISTS {
        if !matches!(lua.kind(arg), Kind::Table | Kind::Nil | Kind::None) {
            return arg_error(
                "select",
                arg,
                format!("table expected, got {}", lua.type_name(arg)),
            );
        }
    }
    let deadline = timeout::seconds(
        lua,
        4,
        "select",
        4,
        Negative::Reject("timeout must be non-negative"),
    )?;
    let mut call = BUFFER.with(|b| b.take()).unwrap_or_default();
    call.clear();
    let result = run(lua, &mut call, deadline);
    BUFFER.with(|b| b.set(Some(call)));
    result
}

/// Lists of up to this many entries in all are read onto the stack and left
/// there, so that the results are built from those values rather than by
/// reading the lists again (`lua_pushvalue` is about half the cost of
/// `lua_rawgeti`), and nothing is popped entry by entry. Well within every
/// version's C stack limit (8000 slots on 5.1 and LuaJIT).
const KEEP_MAX: usize = 4096;

/// Longer lists are read with one `lua_settop` per this many entries. Below
/// LUA_MINSTACK (20), the room every C function starts with.
const BATCH: usize = 16;

fn run(lua: &mut Lua, call: &mut Select, deadline: crate::core::deadline::Deadline) -> Ret {
    let base = lua.top();
    // An upper bound: a getfd method may shorten a list while it is read.
    let total: usize = LISTS
        .iter()
        .filter(|&&(arg, _)| lua.kind(arg) == Kind::Table)
        .map(|&(arg, _)| lua.raw_len(arg))
        .sum();
    // Room for the values, then the result table and one value being stored.
    let keep = total <= KEEP_MAX && lua.check_stack((total + 2) as c_int);
    if !keep && !lua.check_stack(BATCH as c_int) {
        return Err(Error::Msg("stack overflow".into()));
    }
    let mut lens = [0usize; 3];
    for (k, (arg, interest)) in LISTS.into_iter().enumerate() {
        if lua.kind(arg) != Kind::Table {
            continue;
        }
        let mut len = lua.raw_len(arg);
        let mut i = 0;
        while i < len {
            i += 1;
            if let Some(fd) = lua.raw_geti_integer(arg, i as i64).and_then(as_fd) {
                call.push(fd, interest);
            } else {
                let kind = lua.kind(-1);
                match to_fd_slow(lua, -1) {
                    Ok(fd) => call.push(fd, interest),
                    Err(NotFd::Bad(msg)) => {
                        return arg_error("select", arg, format!("{msg} at index {i}"))
                    }
                    Err(NotFd::Raised) => return Err(Error::Rethrow),
                }
                if matches!(kind, Kind::Table | Kind::Userdata) {
                    // A getfd/fileno method may have shortened the list: like
                    // Python, stop at its current end (never read past it).
                    len = len.min(lua.raw_len(arg));
                }
            }
            if !keep && i % BATCH == 0 {
                lua.set_top(base);
            }
        }
        if !keep {
            lua.set_top(base);
        }
        lens[k] = i;
    }
    if let Err(e) = call.wait(deadline) {
        return os_error(lua, e);
    }
    let mut start = 0;
    for (k, (arg, interest)) in LISTS.into_iter().enumerate() {
        // Entries of this list are at start..start + lens[k]; the count stops
        // the scan at its last ready one (at once when none is).
        let ready = call.ready_count(interest);
        lua.new_table(ready, 0);
        for (n, e) in call.ready_from(start).take(ready).enumerate() {
            if keep {
                // Entry start + e of all lists is the value at that offset
                // above base (the results go above every kept value).
                lua.push_value(base + 1 + (start + e) as c_int);
            } else {
                lua.raw_geti(arg, e as i64 + 1);
            }
            lua.raw_seti(-2, n as i64 + 1);
        }
        start += lens[k];
    }
    // The three tables are on top: Lua returns them, dropping what is below.
    Ok(3)
}
