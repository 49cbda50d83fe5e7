//! Lua-visible object types: a metatable per type, methods that find their
//! object through it, and (for objects that can be closed) a second metatable.
//!
//! A closable object (epoll, kqueue) swaps to its "closed" metatable on close.
//! Both metatables index plain method tables that differ only in `closed =
//! false/true`, so `ep.closed` and every method lookup stay plain table reads
//! on the hot path, with no `__index` function call.
//!
//! Every function of a type gets two upvalues: the open and the closed
//! metatable (the same table twice for types that cannot be closed).

use std::ffi::{c_int, CStr};

use mlua::ffi::lua_CFunction;

use super::args::closed_error;
use super::stack::{upvalue, Error, Lua};

pub struct ClassSpec {
    /// Type name, e.g. `select.epoll`: `__name` and `tostring` prefix.
    pub name: &'static CStr,
    /// Word used in "I/O operation on closed <what> object".
    pub what: &'static str,
    pub methods: &'static [(&'static CStr, lua_CFunction)],
    pub meta: &'static [(&'static CStr, lua_CFunction)],
    pub closable: bool,
}

pub const OPEN_MT: c_int = 1;
pub const CLOSED_MT: c_int = 2;

/// Pushes the type's open and closed metatables (two stack slots), with every
/// method and metamethod installed.
pub fn push_class(lua: &mut Lua, spec: &ClassSpec) {
    lua.new_table(0, spec.meta.len() + 3);
    if spec.closable {
        lua.new_table(0, spec.meta.len() + 3);
    } else {
        lua.push_value(-1);
    }
    let open = lua.abs(-2);
    let closed = lua.abs(-1);
    let tables: &[(c_int, bool)] = if spec.closable {
        &[(open, false), (closed, true)]
    } else {
        &[(open, false)]
    };
    for &(mt, is_closed) in tables {
        lua.new_table(0, spec.methods.len() + 1);
        let methods = lua.abs(-1);
        lua.push_value(open);
        lua.push_value(closed);
        lua.set_functions(methods, spec.methods, 2);
        if spec.closable {
            lua.push_bool(is_closed);
            lua.raw_set_field(methods, c"closed");
        }
        lua.raw_set_field(mt, c"__index");
        lua.push_value(open);
        lua.push_value(closed);
        lua.set_functions(mt, spec.meta, 2);
        lua.push_str(spec.name.to_str().unwrap_or("select"));
        lua.raw_set_field(mt, c"__name");
    }
}

/// Pushes a closure of the type's function `f` with the type's two metatables
/// (which must be at `open` and `closed` on the stack) as upvalues.
pub fn push_type_fn(lua: &mut Lua, f: lua_CFunction, open: c_int, closed: c_int) {
    lua.push_value(open);
    lua.push_value(closed);
    lua.push_cfn(f, 2);
}

/// The open object `self` (stack slot 1) of a method `func` of type `spec`.
pub fn this<'a, T>(lua: &'a mut Lua, spec: &ClassSpec, func: &str) -> Result<&'a mut T, Error> {
    // Two lookups of one slot: the first only decides which error applies.
    if lua
        .userdata::<T>(1, upvalue(OPEN_MT))
        .is_some_and(|s| s.is_some())
    {
        return Ok(lua
            .userdata::<T>(1, upvalue(OPEN_MT))
            .and_then(Option::as_mut)
            .expect("checked"));
    }
    if lua.userdata::<T>(1, upvalue(OPEN_MT)).is_some()
        || lua.userdata::<T>(1, upvalue(CLOSED_MT)).is_some()
    {
        return closed_error(spec.what);
    }
    Err(Error::Msg(format!(
        "calling '{func}' on bad self ({} expected, got {})",
        spec.name.to_str().unwrap_or("object"),
        lua.type_name(1)
    )))
}

/// Pushes a new object of the type (its metatables are upvalues 1 and 2).
pub fn push_object<T>(lua: &mut Lua, value: T) {
    lua.push_userdata(value);
    lua.push_value(upvalue(OPEN_MT));
    lua.set_metatable(-2);
}

/// Closes the object in slot 1: drops its value and swaps in the closed
/// metatable. Safe to call again, and on an object already collected.
pub fn close_object<T>(lua: &mut Lua) {
    let slot = match lua.userdata::<T>(1, upvalue(OPEN_MT)) {
        Some(s) => s,
        None => match lua.userdata::<T>(1, upvalue(CLOSED_MT)) {
            Some(s) => s,
            None => return,
        },
    };
    let value = slot.take();
    drop(value);
    lua.push_value(upvalue(CLOSED_MT));
    lua.set_metatable(1);
}

/// `__gc`: drops the value (closing its descriptor) without touching the
/// metatable (Lua is finalising it).
pub fn gc_object<T>(lua: &mut Lua) {
    let slot = match lua.userdata::<T>(1, upvalue(OPEN_MT)) {
        Some(s) => s,
        None => match lua.userdata::<T>(1, upvalue(CLOSED_MT)) {
            Some(s) => s,
            None => return,
        },
    };
    drop(slot.take());
}

/// `tostring(obj)`: `select.poll: 0x...`.
pub fn tostring(lua: &mut Lua, spec: &ClassSpec) {
    let text = format!(
        "{}: 0x{:x}",
        spec.name.to_str().unwrap_or("select"),
        lua.pointer(1)
    );
    lua.push_str(&text);
}
