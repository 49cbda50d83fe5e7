//! File-descriptor arguments: integers, Lua file handles, and objects with a
//! `getfd()` (luasocket) or `fileno()` method.

use std::ffi::c_int;
use std::os::fd::RawFd;

use super::args::show_num;
use super::stack::{arg_error, Error, Kind, Lua, Num, Probe};

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
    to_fd_slow(lua, i, 0)
}

/// An integer as a descriptor, when it is one (0..=RawFd::MAX).
#[inline(always)]
pub fn as_fd(v: i64) -> Option<RawFd> {
    RawFd::try_from(v).ok().filter(|&fd| fd >= 0)
}

/// `to_fd` for a value that is not a plain descriptor number: a float, a
/// file handle, an object with a `getfd`/`fileno` method, or an error.
#[inline(never)]
/// `room`: free stack slots the caller needs afterwards (see `Lua::fd_probe`).
pub fn to_fd_slow(lua: &mut Lua, i: c_int, room: c_int) -> Result<RawFd, NotFd> {
    match lua.kind(i) {
        Kind::Number => from_number(lua.number(i)),
        Kind::Userdata | Kind::Table => from_object(lua, i, room),
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

/// A Lua file's descriptor, or the result of `obj:getfd()` or
/// `obj:fileno()`, called in a protected step: user code may raise.
fn from_object(lua: &mut Lua, i: c_int, room: c_int) -> Result<RawFd, NotFd> {
    let kind = lua.type_name(i);
    match lua.fd_probe(i, room) {
        Err(_) => Err(NotFd::Raised),
        Ok(Probe::File(Some(fd))) => Ok(fd),
        Ok(Probe::File(None)) => Err(NotFd::Bad(
            "file descriptor expected, got closed file".into(),
        )),
        Ok(Probe::Neither) => Err(NotFd::Bad(format!(
            "file descriptor expected, got {kind} without getfd or fileno method"
        ))),
        Ok(Probe::Method) => {
            let result = match lua.kind(-1) {
                Kind::Number => from_number(lua.number(-1)),
                Kind::Nil => Err(NotFd::Bad(format!(
                    "file descriptor expected, got {kind} without getfd or fileno method"
                ))),
                _ => Err(NotFd::Bad(format!(
                    "file descriptor expected, getfd/fileno returned {}",
                    lua.type_name(-1)
                ))),
            };
            lua.pop(1);
            result
        }
    }
}
