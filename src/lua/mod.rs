//! The Lua binding: one file per Lua-visible object, plus argument conversion
//! (`fdarg`, `timeout`, `args`) and the error rule (`stack`). It converts and
//! delegates to `crate::core`; it holds no OS logic.

mod args;
mod class;
mod compat;
mod consts;
#[cfg(target_os = "linux")]
mod epoll;
mod fdarg;
mod fileno;
mod kevent;
mod kqueue;
mod poll;
mod results;
mod select;
mod stack;
#[cfg(all(test, feature = "lua54"))]
mod tests;
mod timeout;
mod udata;

use std::ffi::c_int;

use mlua::ffi::lua_State;

use class::push_class;
use stack::{cfn, Lua, Raw, Ret, Step};

/// `require "select"`. Declared by Lua as `int luaopen_select(lua_State *)`;
/// it returns a widened count for LuaJIT's sake (see `stack::CRet`).
#[no_mangle]
pub extern "C-unwind" fn luaopen_select(l: *mut lua_State) -> stack::CRet {
    stack::open(l, open)
}

fn open(_: &mut Lua) -> Ret {
    // Set-up only makes Lua values: all of it is one Lua step.
    Step::tail(open_step, ())
}

fn open_step(lua: &mut Raw, (): ()) -> c_int {
    // A C function may only count on LUA_MINSTACK (20) free slots; set-up
    // holds several metatables and upvalue copies at once.
    if !lua.check_stack(64) {
        lua.push_str("select: not enough Lua stack to open the module");
        return lua.error();
    }
    stack::install_dispatcher(lua);
    lua.new_table(0, 128);
    let module = lua.abs(-1);
    consts::install(lua, module);

    lua.push_cfn(cfn(select::select), 0);
    lua.raw_set_field(module, c"select");

    lua.push_cfn(cfn(fileno::fileno), 0);
    lua.raw_set_field(module, c"fileno");

    // The native body of select.compat.socket_select (lua/select/compat.lua).
    compat::push(lua);
    lua.raw_set_field(module, c"_compat_socket_select");

    push_class(lua, &poll::CLASS, None);
    class::push_type_fn(lua, cfn(poll::new), -2, -1, None);
    lua.raw_set_field(module, c"poll");
    lua.pop(2);

    // select.epoll and select.kqueue are callable tables: select.epoll()
    // creates, select.epoll.fromfd(fd) wraps. No epoll where the OS has none.
    #[cfg(target_os = "linux")]
    {
        push_class(lua, &epoll::CLASS, None);
        callable(
            lua,
            &[(c"fromfd", cfn(epoll::fromfd))],
            cfn(epoll::new),
            None,
        );
        lua.raw_set_field(module, c"epoll");
        lua.pop(2);
    }

    push_class(lua, &kevent::CLASS, None);
    class::push_type_fn(lua, cfn(kevent::new), -2, -1, None);
    lua.raw_set_field(module, c"kevent");
    let kevent_mt = lua.abs(-2);
    push_class(lua, &kqueue::CLASS, Some(kevent_mt));
    callable(
        lua,
        &[(c"fromfd", cfn(kqueue::fromfd))],
        cfn(kqueue::new),
        Some(kevent_mt),
    );
    lua.raw_set_field(module, c"kqueue");
    lua.pop(4);

    lua.push_str(env!("CARGO_PKG_VERSION"));
    lua.raw_set_field(module, c"_VERSION");
    1
}

/// With a type's two metatables on top of the stack (and `extra` for upvalue 3), pushes a table whose
/// `__call` runs `ctor` and whose fields are `funcs`, every function getting
/// the metatables as upvalues.
fn callable(
    lua: &mut Raw,
    funcs: &[(&std::ffi::CStr, mlua::ffi::lua_CFunction)],
    ctor: mlua::ffi::lua_CFunction,
    extra: Option<c_int>,
) {
    let open = lua.abs(-2);
    let closed = lua.abs(-1);
    lua.new_table(0, funcs.len());
    let t = lua.abs(-1);
    class::set_type_fns(lua, t, funcs, open, closed, extra);
    lua.new_table(0, 1);
    class::push_type_fn(lua, ctor, open, closed, extra);
    lua.raw_set_field(-2, c"__call");
    lua.set_metatable(t);
}
