//! `select.fileno(obj [, fname [, argn]])`: the module's own conversion of a
//! descriptor-like value to an integer, for Lua code built on the module
//! (`select.selectors` uses it), so that it takes exactly what every native
//! entry point takes and words its errors the same way.

use std::ffi::c_int;

use super::args::int_arg;
use super::fdarg::{to_fd, NotFd};
use super::stack::{arg_error, ret, Error, Kind, Lua, Ret};

pub fn fileno(lua: &mut Lua) -> Ret {
    // The optional naming arguments are checked first, so that a bad call is
    // reported even when the value converts.
    if !matches!(lua.kind(2), Kind::None | Kind::Nil | Kind::String) {
        return arg_error(
            "fileno",
            2,
            format!("string expected, got {}", lua.type_name(2)),
        );
    }
    let argn = int_arg(lua, 3, "fileno", 3, 1, c_int::MAX as i64, Some(1))? as c_int;
    match to_fd(lua, 1) {
        Ok(fd) => {
            lua.push_int(fd as i64);
            ret(1)
        }
        Err(NotFd::Raised) => Err(Error::Rethrow),
        Err(NotFd::Bad(msg)) => {
            // Only now is anything owned: the message, raised by the caller
            // of this function once it has been dropped into a Lua string.
            let func = match lua.bytes(2) {
                Some(b) => String::from_utf8_lossy(b).into_owned(),
                None => "fileno".to_owned(),
            };
            arg_error(&func, argn, msg)
        }
    }
}
