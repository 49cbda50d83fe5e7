//! `select.poll()`: the poll object.

use std::ffi::c_int;

use super::args::{int_arg, ok_or_os, os_error, show_num};
use super::class::{self, gc_object, push_object, this, tostring, ClassSpec};
use super::fdarg::fd_arg;
use super::results;
use super::stack::{arg_error, cfn, ret, Lua, Num, Ret};
use super::timeout;
use crate::core::error::OsError;
use crate::core::pollset::PollSet;

pub struct PollObject {
    set: PollSet,
    /// The last poll's ready pairs, for the result table.
    ready: Vec<(i64, i64)>,
}

pub static CLASS: ClassSpec = ClassSpec {
    name: c"select.poll",
    what: "poll",
    methods: &[
        (c"register", cfn(register)),
        (c"modify", cfn(modify)),
        (c"unregister", cfn(unregister)),
        (c"poll", cfn(poll)),
    ],
    meta: &[(c"__gc", cfn(gc)), (c"__tostring", cfn(to_string))],
    closable: false,
};

const DEFAULT_MASK: i64 = (libc::POLLIN | libc::POLLPRI | libc::POLLOUT) as i64;

/// `select.poll()`.
pub fn new(lua: &mut Lua) -> Ret {
    push_object(lua, &CLASS, || {
        Ok(PollObject {
            set: PollSet::new(),
            ready: Vec::new(),
        })
    })?
    .map_or_else(|e| os_error(lua, e), |()| ret(1))
}

#[inline(always)]
fn mask(lua: &Lua, i: c_int, func: &str, default: Option<i64>) -> Result<u16, super::stack::Error> {
    // Fast path: an integer mask in range (register/modify run in churn loops).
    if let Some(v) = lua.exact_integer(i) {
        if (0..=0xffff).contains(&v) {
            return Ok(v as u16);
        }
    }
    mask_slow(lua, i, func, default)
}

#[inline(never)]
fn mask_slow(
    lua: &Lua,
    i: c_int,
    func: &str,
    default: Option<i64>,
) -> Result<u16, super::stack::Error> {
    // Python: OverflowError for any whole number outside an unsigned short.
    let out_of_range = match lua.number(i) {
        Some(Num::Int(v)) => (!(0..=0xffff).contains(&v)).then(|| v.to_string()),
        Some(Num::Float(f)) if f.fract() == 0.0 || f.is_infinite() => {
            (!(0.0..=65535.0).contains(&f)).then(|| show_num(f))
        }
        _ => None,
    };
    if let Some(m) = out_of_range {
        return arg_error(func, 2, format!("event mask must be in 0..65535, got {m}"));
    }
    Ok(int_arg(lua, i, func, 2, 0, 0xffff, default)? as u16)
}

fn register(lua: &mut Lua) -> Ret {
    let fd = fd_arg(lua, 2, "register", 1)?;
    let events = mask(lua, 3, "register", Some(DEFAULT_MASK))?;
    // The set lives in memory only: its one failure is running out of it.
    if this::<PollObject>(lua, &CLASS, "register")?
        .set
        .register(fd, events)
        .is_err()
    {
        return Err(results::no_memory());
    }
    lua.push_bool(true);
    ret(1)
}

fn modify(lua: &mut Lua) -> Ret {
    let fd = fd_arg(lua, 2, "modify", 1)?;
    let events = mask(lua, 3, "modify", None)?;
    let found = this::<PollObject>(lua, &CLASS, "modify")?
        .set
        .modify(fd, events);
    ok_or_os(
        lua,
        if found {
            Ok(())
        } else {
            Err(OsError(libc::ENOENT))
        },
    )
}

fn unregister(lua: &mut Lua) -> Ret {
    let fd = fd_arg(lua, 2, "unregister", 1)?;
    if !this::<PollObject>(lua, &CLASS, "unregister")?
        .set
        .unregister(fd)
    {
        return arg_error(
            "unregister",
            1,
            format!("file descriptor {fd} is not registered"),
        );
    }
    lua.push_bool(true);
    ret(1)
}

fn poll(lua: &mut Lua) -> Ret {
    let deadline = timeout::millis(lua, 2, "poll", 1)?;
    let out = if lua.top() < 3 {
        Ok(None)
    } else {
        results::out_arg(lua, 3, "poll", 2)
    };
    let obj = this::<PollObject>(lua, &CLASS, "poll")?;
    let out = out?;
    if let Err(e) = obj.set.poll(deadline) {
        return os_error(lua, e);
    }
    let n = obj.set.ready_count();
    if n > 0 {
        let ready = obj.set.ready().map(|(fd, ev)| (fd as i64, ev as i64));
        results::fill(&mut obj.ready, n, ready)?;
    } else {
        obj.ready.clear();
    }
    let large = !results::fits_kept(&obj.ready);
    results::finish(lua, n, out, ready_pairs, large)
}

/// The ready pairs of the poll object in slot 1 (see `results::Source`).
fn ready_pairs(lua: &mut Lua) -> Option<&mut Vec<(i64, i64)>> {
    match lua.userdata::<PollObject>(1, class::tag(&CLASS)) {
        Some(Some(obj)) => Some(&mut obj.ready),
        _ => None,
    }
}

fn gc(lua: &mut Lua) -> Ret {
    gc_object::<PollObject>(lua, &CLASS);
    ret(0)
}

fn to_string(lua: &mut Lua) -> Ret {
    tostring(lua, &CLASS)?;
    ret(1)
}
