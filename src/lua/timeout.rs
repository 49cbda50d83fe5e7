//! Timeout arguments: seconds (`select`, `epoll`, `kqueue`) or milliseconds
//! (`poll`), with Python's rules for nil, negative, NaN and huge values.

use std::ffi::c_int;
use std::time::Duration;

use super::stack::{arg_error, Error, Kind, Lua};
use crate::core::deadline::Deadline;

/// What a negative timeout means for a given function.
#[derive(Clone, Copy)]
pub enum Negative {
    /// An error with this text (`select`, `kqueue.control`).
    Reject(&'static str),
}

/// The largest wait, in seconds, a `timespec`-based call accepts (as Python,
/// about 292 years: what fits in 64-bit nanoseconds).
const MAX_SECONDS: f64 = 9.2e9;

/// Largest wait, in milliseconds, of `poll(2)`/`epoll_wait(2)`.
const MAX_MS: f64 = c_int::MAX as f64;

#[inline(always)]
fn number(lua: &Lua, i: c_int, func: &str, arg: c_int) -> Result<Option<f64>, Error> {
    // Fast path for the polling loop's `0`: one type test and one read.
    if lua.is_zero(i) {
        return Ok(Some(0.0));
    }
    any_number(lua, i, func, arg)
}

#[inline(never)]
fn any_number(lua: &Lua, i: c_int, func: &str, arg: c_int) -> Result<Option<f64>, Error> {
    match lua.kind(i) {
        Kind::None | Kind::Nil => Ok(None),
        Kind::Number => {
            let t = lua.number(i).map(|n| n.as_f64()).unwrap_or(f64::NAN);
            if t.is_nan() {
                return arg_error(func, arg, "timeout must be a number, got NaN");
            }
            Ok(Some(t))
        }
        _ => arg_error(
            func,
            arg,
            format!("timeout must be a number or nil, got {}", lua.type_name(i)),
        ),
    }
}

/// A timeout in seconds; `nil` waits forever.
#[inline]
pub fn seconds(
    lua: &Lua,
    i: c_int,
    func: &str,
    arg: c_int,
    neg: Negative,
) -> Result<Deadline, Error> {
    // The polling loop's `0`, with no further look.
    if lua.is_zero(i) {
        return Ok(Deadline::Immediate);
    }
    any_seconds(lua, i, func, arg, neg)
}

#[inline(never)]
fn any_seconds(
    lua: &Lua,
    i: c_int,
    func: &str,
    arg: c_int,
    neg: Negative,
) -> Result<Deadline, Error> {
    let Some(t) = number(lua, i, func, arg)? else {
        return Ok(Deadline::Forever);
    };
    if t == 0.0 {
        return Ok(Deadline::Immediate);
    }
    if t < 0.0 {
        return match neg {
            Negative::Reject(msg) => arg_error(func, arg, msg),
        };
    }
    if t > MAX_SECONDS {
        return arg_error(func, arg, "timeout is too large");
    }
    Ok(Deadline::after(Some(Duration::from_secs_f64(t))))
}

/// A timeout in seconds that the call turns into milliseconds (`epoll.poll`):
/// rounded up, and at most `INT_MAX` ms as in Python.
#[cfg(target_os = "linux")]
pub fn seconds_as_ms(lua: &Lua, i: c_int, func: &str, arg: c_int) -> Result<Deadline, Error> {
    let Some(t) = number(lua, i, func, arg)? else {
        return Ok(Deadline::Forever);
    };
    if t == 0.0 {
        return Ok(Deadline::Immediate);
    }
    if t < 0.0 {
        return Ok(Deadline::Forever);
    }
    if (t * 1000.0).ceil() > MAX_MS {
        return arg_error(func, arg, "timeout is too large");
    }
    Ok(Deadline::after(Some(Duration::from_secs_f64(t))))
}

/// A timeout in milliseconds (`poll.poll`): `nil` or negative waits forever.
pub fn millis(lua: &Lua, i: c_int, func: &str, arg: c_int) -> Result<Deadline, Error> {
    let Some(t) = number(lua, i, func, arg)? else {
        return Ok(Deadline::Forever);
    };
    if t == 0.0 {
        return Ok(Deadline::Immediate);
    }
    if t < 0.0 {
        return Ok(Deadline::Forever);
    }
    if t.ceil() > MAX_MS {
        return arg_error(func, arg, "timeout is too large");
    }
    Ok(Deadline::after(Some(Duration::from_secs_f64(t / 1000.0))))
}
