//! Lua-visible object types: a metatable per type, methods that find their
//! object through it, and (for objects that can be closed) a second metatable.
//!
//! A closable object (epoll, kqueue) swaps to its "closed" metatable on close.
//! Both metatables index plain method tables that differ only in `closed =
//! false/true`, so `ep.closed` and every method lookup stay plain table reads
//! on the hot path, with no `__index` function call.
//!
//! Every function of a type gets three upvalues: the open and the closed
//! metatable (the same table twice for types that cannot be closed), and one
//! extra value the type asks for (the kevent metatable, for kqueue), or nil.

use std::ffi::{c_int, CStr};

use mlua::ffi::lua_CFunction;

use super::args::closed_error;
use super::stack::{upvalue, Error, Lua, Miss, Raw};
use crate::core::error::OsError;

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
pub const EXTRA: c_int = 3;

/// Pushes the type's open and closed metatables (two stack slots), with every
/// method and metamethod installed; `extra` is the stack slot of the value
/// every function gets as upvalue 3 (nil when `None`).
pub fn push_class(lua: &mut Raw, spec: &ClassSpec, extra: Option<c_int>) {
    let extra = extra.map(|i| lua.abs(i));
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
        push_upvalues(lua, open, closed, extra);
        lua.set_functions(methods, spec.methods, 3);
        if spec.closable {
            lua.push_bool(is_closed);
            lua.raw_set_field(methods, c"closed");
        }
        lua.raw_set_field(mt, c"__index");
        push_upvalues(lua, open, closed, extra);
        lua.set_functions(mt, spec.meta, 3);
        lua.push_str(spec.name.to_str().unwrap_or("select"));
        lua.raw_set_field(mt, c"__name");
    }
}

fn push_upvalues(lua: &mut Raw, open: c_int, closed: c_int, extra: Option<c_int>) {
    lua.push_value(open);
    lua.push_value(closed);
    match extra {
        Some(i) => lua.push_value(i),
        None => lua.push_nil(),
    }
}

/// Pushes a closure of the type's function `f` with the type's upvalues: its
/// two metatables (at `open` and `closed` on the stack) and `extra`.
pub fn push_type_fn(
    lua: &mut Raw,
    f: lua_CFunction,
    open: c_int,
    closed: c_int,
    extra: Option<c_int>,
) {
    let (open, closed) = (lua.abs(open), lua.abs(closed));
    let extra = extra.map(|i| lua.abs(i));
    push_upvalues(lua, open, closed, extra);
    lua.push_cfn(f, 3);
}

/// Sets `funcs` on the table at `t` as functions of the type whose metatables
/// are at `open` and `closed`.
pub fn set_type_fns(
    lua: &mut Raw,
    t: c_int,
    funcs: &[(&CStr, lua_CFunction)],
    open: c_int,
    closed: c_int,
    extra: Option<c_int>,
) {
    let (t, open, closed) = (lua.abs(t), lua.abs(open), lua.abs(closed));
    let extra = extra.map(|i| lua.abs(i));
    push_upvalues(lua, open, closed, extra);
    lua.set_functions(t, funcs, 3);
}

/// The open object `self` (stack slot 1) of a method `func` of type `spec`.
/// Inlined into every method: the success path is a tag compare.
#[inline(always)]
pub fn this<'a, T>(
    lua: &'a mut Lua,
    spec: &'static ClassSpec,
    func: &str,
) -> Result<&'a mut T, Error> {
    match lua.object::<T>(1, tag(spec)) {
        Ok(obj) => Ok(obj),
        Err(miss) => Err(self_error(spec, func, miss)),
    }
}

#[cold]
#[inline(never)]
fn self_error(spec: &ClassSpec, func: &str, miss: Miss) -> Error {
    match miss {
        Miss::Closed => closed_error::<()>(spec.what).unwrap_err(),
        Miss::Wrong(got) => bad_self(spec, func, got),
    }
}

/// `calling 'func' on bad self (select.epoll expected, got number)`.
fn bad_self(spec: &ClassSpec, func: &str, got: &str) -> Error {
    Error::Msg(format!(
        "calling '{func}' on bad self ({} expected, got {got})",
        spec.name.to_str().unwrap_or("object")
    ))
}

/// The tag of the objects of a class: the address of its description, which
/// is a `static` (so unique). Each class holds one Rust type: a module's
/// functions use its `CLASS` with its own object type only.
pub fn tag(spec: &'static ClassSpec) -> usize {
    spec as *const ClassSpec as usize
}

/// The slot of slot 1 if it is an object of the class, open or closed.
fn any_slot<'a, T>(lua: &'a mut Lua, spec: &'static ClassSpec) -> Option<&'a mut Option<T>> {
    lua.userdata::<T>(1, tag(spec))
}

/// Pushes a new object of the running function's class (its metatable is
/// upvalue `OPEN_MT`) holding what `make` returns, or returns `make`'s error
/// with nothing pushed. The userdata is made first, so that a raise while
/// making it (out of memory, a finalizer's error) finds no descriptor yet to
/// leak.
pub fn push_object<T>(
    lua: &mut Lua,
    spec: &'static ClassSpec,
    make: impl FnOnce() -> Result<T, OsError>,
) -> Result<Result<(), OsError>, Error> {
    push_object_mt(lua, spec, upvalue(OPEN_MT), make)
}

/// `push_object` with the metatable at `mt`.
pub fn push_object_mt<T>(
    lua: &mut Lua,
    spec: &'static ClassSpec,
    mt: c_int,
    make: impl FnOnce() -> Result<T, OsError>,
) -> Result<Result<(), OsError>, Error> {
    fn step<T>(raw: &mut Raw, tag: usize) -> c_int {
        raw.push_empty_userdata::<T>(tag);
        raw.push_value(1);
        raw.set_metatable(-2);
        1
    }
    lua.push_value(mt);
    lua.protect(1, 1, step::<T>, tag(spec))?;
    match make() {
        Ok(value) => {
            if let Some(slot) = lua.userdata::<T>(-1, tag(spec)) {
                *slot = Some(value);
            }
            Ok(Ok(()))
        }
        Err(e) => {
            lua.pop(1);
            Ok(Err(e))
        }
    }
}

/// Closes the object in slot 1: drops its value and swaps in the closed
/// metatable; true if it was open. Safe to call again, and on an object
/// already collected; anything but an object of the type is a bad self.
pub fn close_object<T>(lua: &mut Lua, spec: &'static ClassSpec) -> Result<bool, Error> {
    let Some(slot) = any_slot::<T>(lua, spec) else {
        return Err(bad_self(spec, "close", lua.type_name(1)));
    };
    let was_open = slot.take().is_some();
    lua.push_value(upvalue(CLOSED_MT));
    lua.set_metatable(1);
    Ok(was_open)
}

/// `__gc`: drops the value (closing its descriptor) without touching the
/// metatable (Lua is finalising it).
pub fn gc_object<T>(lua: &mut Lua, spec: &'static ClassSpec) {
    if let Some(slot) = any_slot::<T>(lua, spec) {
        drop(slot.take());
    }
}

/// `tostring(obj)`: `select.poll: 0x...`.
pub fn tostring(lua: &mut Lua, spec: &ClassSpec) -> Result<(), Error> {
    let text = format!(
        "{}: 0x{:x}",
        spec.name.to_str().unwrap_or("select"),
        lua.pointer(1)
    );
    lua.push_string(&text)
}
