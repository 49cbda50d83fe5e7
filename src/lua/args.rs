//! Plain arguments (integers in a range) and the two halves of the error rule:
//! misuse raises, an OS failure returns `nil, message, errno`.

use std::ffi::c_int;

use super::stack::{arg_error, Error, Kind, Lua, Ret};
use crate::core::error::OsError;

/// An integer argument within `lo..=hi`; `default` when absent or nil (if any).
pub fn int_arg(
    lua: &Lua,
    i: c_int,
    func: &str,
    arg: c_int,
    lo: i64,
    hi: i64,
    default: Option<i64>,
) -> Result<i64, Error> {
    let kind = lua.kind(i);
    if matches!(kind, Kind::None | Kind::Nil) {
        if let Some(d) = default {
            return Ok(d);
        }
    }
    let Some(n) = lua.number(i) else {
        return arg_error(
            func,
            arg,
            format!("integer expected, got {}", lua.type_name(i)),
        );
    };
    let Some(v) = n.exact_int() else {
        return arg_error(
            func,
            arg,
            format!("number has no integer representation ({})", n.as_f64()),
        );
    };
    if v < lo || v > hi {
        return arg_error(
            func,
            arg,
            format!("value out of range: {v} is not in {lo}..{hi}"),
        );
    }
    Ok(v)
}

/// Returns `nil, strerror(errno), errno` to Lua.
pub fn os_error(lua: &mut Lua, e: OsError) -> Ret {
    lua.push_nil();
    lua.push_str(&e.message());
    lua.push_int(e.errno() as i64);
    Ok(3)
}

/// Returns `true`, or `nil, message, errno`.
pub fn ok_or_os(lua: &mut Lua, r: Result<(), OsError>) -> Ret {
    match r {
        Ok(()) => {
            lua.push_bool(true);
            Ok(1)
        }
        Err(e) => os_error(lua, e),
    }
}

/// `I/O operation on closed <what> object`, Python's ValueError text.
pub fn closed_error<T>(what: &str) -> Result<T, Error> {
    Err(Error::Msg(format!("I/O operation on closed {what} object")))
}
