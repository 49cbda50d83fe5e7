//! `select.select(rlist, wlist, xlist [, timeout])`, on top of `poll(2)`.

use std::ffi::c_int;

use super::args::os_error;
use super::fdarg::{to_fd, NotFd};
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

fn run(lua: &mut Lua, call: &mut Select, deadline: crate::core::deadline::Deadline) -> Ret {
    let mut lens = [0usize; 3];
    for (k, (arg, interest)) in LISTS.into_iter().enumerate() {
        if lua.kind(arg) != Kind::Table {
            continue;
        }
        let mut len = lua.raw_len(arg);
        let mut i = 1;
        while i <= len {
            let kind = lua.raw_geti(arg, i as i64);
            let fd = to_fd(lua, -1);
            match fd {
                Ok(fd) => call.push(fd, interest),
                Err(NotFd::Bad(msg)) => {
                    return arg_error("select", arg, format!("{msg} at index {i}"))
                }
                Err(NotFd::Raised) => return Err(Error::Rethrow),
            }
            lua.pop(1);
            if matches!(kind, Kind::Table | Kind::Userdata) {
                // A getfd/fileno method may have shortened the list: like
                // Python, stop at its current end (never read past it).
                len = len.min(lua.raw_len(arg));
            }
            i += 1;
        }
        lens[k] = i - 1;
    }
    if let Err(e) = call.wait(deadline) {
        return os_error(lua, e);
    }
    let mut entry = 0;
    for (k, (arg, _)) in LISTS.into_iter().enumerate() {
        let ready = (entry..entry + lens[k])
            .filter(|&e| call.is_ready(e))
            .count();
        lua.new_table(ready, 0);
        let mut n = 0;
        for i in 1..=lens[k] {
            if call.is_ready(entry + i - 1) {
                lua.raw_geti(arg, i as i64);
                n += 1;
                lua.raw_seti(-2, n);
            }
        }
        entry += lens[k];
    }
    Ok(3)
}
