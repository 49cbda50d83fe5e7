//! The Lua binding: one file per Lua-visible object, plus argument conversion
//! (`fdarg`, `timeout`, `args`) and the error rule (`stack`). It converts and
//! delegates to `crate::core`; it holds no OS logic.

mod args;
mod class;
mod consts;
mod epoll;
mod fdarg;
mod poll;
mod select;
mod stack;
mod timeout;

use std::ffi::c_int;

use mlua::ffi::lua_State;

use class::push_class;
use stack::{cfn, Lua, Ret};

/// `require "select"`.
#[no_mangle]
pub extern "C-unwind" fn luaopen_select(l: *mut lua_State) -> c_int {
    stack::open(l, open)
}

fn open(lua: &mut Lua) -> Ret {
    lua.new_table(0, 128);
    let module = lua.abs(-1);
    consts::install(lua, module);

    lua.push_cfn(cfn(select::select), 0);
    lua.raw_set_field(module, c"select");

    push_class(lua, &poll::CLASS);
    class::push_type_fn(lua, cfn(poll::new), -2, -1);
    lua.raw_set_field(module, c"poll");
    lua.pop(2);

    // select.epoll is a callable table: select.epoll() and select.epoll.fromfd().
    push_class(lua, &epoll::CLASS);
    callable(lua, &[(c"fromfd", cfn(epoll::fromfd))], cfn(epoll::new));
    lua.raw_set_field(module, c"epoll");
    lua.pop(2);

    lua.push_str(env!("CARGO_PKG_VERSION"));
    lua.raw_set_field(module, c"_VERSION");
    Ok(1)
}

/// With a type's two metatables on top of the stack, pushes a table whose
/// `__call` runs `ctor` and whose fields are `funcs`, every function getting
/// the metatables as upvalues.
fn callable(
    lua: &mut Lua,
    funcs: &[(&std::ffi::CStr, mlua::ffi::lua_CFunction)],
    ctor: mlua::ffi::lua_CFunction,
) {
    let open = lua.abs(-2);
    let closed = lua.abs(-1);
    lua.new_table(0, funcs.len());
    let t = lua.abs(-1);
    lua.push_value(open);
    lua.push_value(closed);
    lua.set_functions(t, funcs, 2);
    lua.new_table(0, 1);
    class::push_type_fn(lua, ctor, open, closed);
    lua.raw_set_field(-2, c"__call");
    lua.set_metatable(t);
}
