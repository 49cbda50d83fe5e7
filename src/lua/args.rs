//! Plain arguments (integers in a range) and the two halves of the error rule:
//! misuse raises, an OS failure returns `nil, message, errno`.

use std::ffi::c_int;

use super::stack::{arg_error, ret, Error, Kind, Lua, Ret};
use crate::core::error::OsError;

/// An integer argument within `lo..=hi`; `default` when absent or nil (if any).
#[inline(always)]
pub fn int_arg(
    lua: &Lua,
    i: c_int,
    func: &str,
    arg: c_int,
    lo: i64,
    hi: i64,
    default: Option<i64>,
) -> Result<i64, Error> {
    // Fast path: an integer in range (one type check, one conversion).
    if let Some(v) = lua.exact_integer(i) {
        if (lo..=hi).contains(&v) {
            return Ok(v);
        }
    }
    int_arg_slow(lua, i, func, arg, lo, hi, default)
}

#[inline(never)]
fn int_arg_slow(
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
        let f = n.as_f64();
        let why = if f.is_finite() && f.fract() == 0.0 {
            format!("value out of range: {} is not in {lo}..{hi}", show_num(f))
        } else {
            format!("number has no integer representation ({})", show_num(f))
        };
        return arg_error(func, arg, why);
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

/// A number as an error message shows it: whole numbers as integers, very
/// large or small ones in exponent form (Rust's `{}` would print the 309
/// digits of `1e308`), `nan`, `inf` and `-inf` as Lua prints them.
pub fn show_num(f: f64) -> String {
    if f.is_nan() {
        "nan".into()
    } else if f.is_infinite() {
        if f > 0.0 { "inf" } else { "-inf" }.into()
    } else if f.fract() == 0.0 && f.abs() < 1e15 {
        format!("{}", f as i64)
    } else if f != 0.0 && !(1e-4..1e15).contains(&f.abs()) {
        format!("{f:e}")
    } else {
        format!("{f}")
    }
}

/// Returns `nil, strerror(errno), errno` to Lua.
pub fn os_error(lua: &mut Lua, e: OsError) -> Ret {
    lua.push_nil();
    lua.push_string(&e.message())?;
    lua.push_int(e.errno() as i64);
    ret(3)
}

/// Returns `true`, or `nil, message, errno`.
pub fn ok_or_os(lua: &mut Lua, r: Result<(), OsError>) -> Ret {
    match r {
        Ok(()) => {
            lua.push_bool(true);
            ret(1)
        }
        Err(e) => os_error(lua, e),
    }
}

/// `I/O operation on closed <what> object`, Python's ValueError text.
pub fn closed_error<T>(what: &str) -> Result<T, Error> {
    Err(Error::Msg(format!("I/O operation on closed {what} object")))
}

#[cfg(test)]
mod tests {
    use super::show_num;

    #[test]
    fn numbers_in_messages_stay_short() {
        assert_eq!(show_num(3.5), "3.5");
        assert_eq!(show_num(-1.0), "-1");
        assert_eq!(show_num(2f64.powi(31)), "2147483648");
        assert_eq!(show_num(1e308), "1e308");
        assert_eq!(show_num(2f64.powi(53)), "9.007199254740992e15");
        assert_eq!(show_num(-2f64.powi(63)), "-9.223372036854776e18");
        assert_eq!(show_num(1e-7), "1e-7");
        assert_eq!(show_num(f64::NAN), "nan");
        assert_eq!(show_num(f64::NEG_INFINITY), "-inf");
    }
}
