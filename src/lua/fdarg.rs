//! File-descriptor arguments: integers, Lua file handles, and objects with a
//! `getfd()` (luasocket) or `fileno()` method.

use std::ffi::c_int;
use std::os::fd::RawFd;

use super::args::show_num;
use super::stack::{arg_error, Error, Kind, Lua, Num, FD_METHOD};

/// Why a value is not a descriptor, worded for the `(...)` of a bad-argument
/// message.
pub enum NotFd {
    Bad(String),
    /// The object's `getfd`/`fileno` raised: its error value is on the stack.
    Raised,
}

/// Reads the descriptor at stack index `i`.
#[inline]
pub fn to_fd(lua: &mut Lua, i: c_int) -> Result<RawFd, NotFd> {
    // Fast path: a small non-negative integer, the common case in hot loops.
    // Inlined into the loops that call it (select reads one per list entry);
    // everything else is out of line, so it adds no register saving here.
    if let Some(fd) = lua.exact_integer(i).and_then(as_fd) {
        return Ok(fd);
    }
    to_fd_slow(lua, i)
}

/// An integer as a descriptor, when it is one (0..=RawFd::MAX).
#[inline(always)]
pub fn as_fd(v: i64) -> Option<RawFd> {
    RawFd::try_from(v).ok().filter(|&fd| fd >= 0)
}

/// `to_fd` for a value that is not a plain descriptor number: a float, a
/// file handle, an object with a `getfd`/`fileno` method, or an error.
#[inline(never)]
pub fn to_fd_slow(lua: &mut Lua, i: c_int) -> Result<RawFd, NotFd> {
    match lua.kind(i) {
        Kind::Number => from_number(lua.number(i)),
        Kind::Userdata | Kind::Table => {
            if let Some(fd) = lua.file_handle_fd(i) {
                return fd
                    .ok_or_else(|| NotFd::Bad("file descriptor expected, got closed file".into()));
            }
            from_method(lua, i)
        }
        _ => Err(NotFd::Bad(format!(
            "file descriptor expected, got {}",
            lua.type_name(i)
        ))),
    }
}

/// The descriptor argument `arg` of function `func` at stack index `i`.
#[inline(always)]
pub fn fd_arg(lua: &mut Lua, i: c_int, func: &str, arg: c_int) -> Result<RawFd, Error> {
    to_fd(lua, i).map_err(|e| fd_arg_error(func, arg, e))
}

#[cold]
#[inline(never)]
fn fd_arg_error(func: &str, arg: c_int, e: NotFd) -> Error {
    match e {
        NotFd::Bad(msg) => arg_error::<()>(func, arg, msg).unwrap_err(),
        NotFd::Raised => Error::Rethrow,
    }
}

fn from_number(n: Option<Num>) -> Result<RawFd, NotFd> {
    let Some(n) = n else {
        return Err(NotFd::Bad("file descriptor expected, got no number".into()));
    };
    match n.exact_int() {
        // A whole number too large for an integer (2^63, 1e308, infinity).
        None if n.as_f64().abs() >= 1e15 => {
            let f = n.as_f64();
            Err(NotFd::Bad(if f < 0.0 {
                format!(
                    "file descriptor cannot be a negative integer ({})",
                    show_num(f)
                )
            } else {
                format!("file descriptor is greater than maximum ({})", show_num(f))
            }))
        }
        None => Err(NotFd::Bad(format!(
            "file descriptor expected, got non-integer number {}",
            show_num(n.as_f64())
        ))),
        Some(i) if i < 0 => Err(NotFd::Bad(format!(
            "file descriptor cannot be a negative integer ({i})"
        ))),
        Some(i) if i > RawFd::MAX as i64 => Err(NotFd::Bad(format!(
            "file descriptor is greater than maximum ({i})"
        ))),
        Some(i) => Ok(i as RawFd),
    }
}

/// Calls `obj:getfd()` or `obj:fileno()` under `pcall`: user code may raise.
fn from_method(lua: &mut Lua, i: c_int) -> Result<RawFd, NotFd> {
    let i = lua.abs(i);
    let kind = lua.type_name(i);
    if !lua.check_stack(3) {
        return Err(NotFd::Bad("stack overflow".into()));
    }
    lua.push_cfn(FD_METHOD, 0);
    lua.push_value(i);
    if !lua.pcall(1, 1) {
        return Err(NotFd::Raised);
    }
    let result = match lua.kind(-1) {
        Kind::Nil => Err(NotFd::Bad(format!(
            "file descriptor expected, got {kind} without getfd or fileno method"
        ))),
        Kind::Number => from_number(lua.number(-1)),
        _ => Err(NotFd::Bad(format!(
            "file descriptor expected, getfd/fileno returned {}",
            lua.type_name(-1)
        ))),
    };
    lua.pop(1);
    result
}
