//! Runs the module inside a real Lua 5.4 state, from `cargo test --features
//! lua54 --lib`: the binding's own unit tests. In module mode the library
//! leaves the Lua C API undefined (the interpreter provides it); the test
//! binary gets it from the system's liblua5.4 (Debian's `liblua5.4-dev`).

use std::ffi::{c_int, CStr, CString};

use mlua::ffi;

#[link(name = "lua5.4")]
extern "C" {}

/// Runs `code` in a fresh state where `select` is the module; returns the
/// error message if the chunk raised.
fn run(code: &str) -> Result<(), String> {
    let chunk = CString::new(code).expect("no NUL in test code");
    // SAFETY: a fresh state used on this thread only, closed before returning;
    // every call follows the C API's stack discipline.
    unsafe {
        let l = ffi::luaL_newstate();
        assert!(!l.is_null());
        ffi::luaL_openlibs(l);
        ffi::lua_pushcfunction(l, open_select);
        let rc = ffi::lua_pcall(l, 0, 1, 0);
        assert_eq!(rc, 0, "luaopen_select failed");
        ffi::lua_setglobal(l, c"S".as_ptr());
        let mut rc = ffi::luaL_loadstring(l, chunk.as_ptr());
        if rc == 0 {
            rc = ffi::lua_pcall(l, 0, 0, 0);
        }
        let result = if rc == 0 {
            Ok(())
        } else {
            let p = ffi::lua_tolstring(l, -1, std::ptr::null_mut());
            Err(if p.is_null() {
                "(non-string error)".to_owned()
            } else {
                CStr::from_ptr(p).to_string_lossy().into_owned()
            })
        };
        ffi::lua_close(l);
        result
    }
}

unsafe extern "C-unwind" fn open_select(l: *mut ffi::lua_State) -> c_int {
    super::luaopen_select(l) as c_int
}

#[test]
fn fileno_converts_and_names_its_errors() {
    run(r#"
        assert(S.fileno(3) == 3 and math.type(S.fileno(3.0)) == "integer")
        assert(S.fileno(io.stderr) == 2)
        assert(S.fileno({ getfd = function() return 7 end }) == 7)
        local ok, err = pcall(S.fileno, -1)
        assert(not ok and err ==
          "bad argument #1 to 'fileno' (file descriptor cannot be a negative integer (-1))", err)
        ok, err = pcall(S.fileno, {}, "watch", 2)
        assert(not ok and err ==
          "bad argument #2 to 'watch' (file descriptor expected, got table without getfd or fileno method)", err)
    "#)
    .unwrap();
}

#[test]
fn errors_are_plain_strings() {
    let err = run(r#"S.poll():register(nil)"#).unwrap_err();
    assert_eq!(
        err,
        "bad argument #1 to 'register' (file descriptor expected, got nil)"
    );
}

#[test]
fn requiring_leaves_the_global_select_alone() {
    run(r##"assert(select("#", 1, 2) == 2 and type(S.select) == "function")"##).unwrap();
}

#[test]
fn compat_socket_select_answers_as_luasocket() {
    run(r#"
        local sel = S._compat_socket_select
        local f = assert(io.open("/dev/null"))
        local fd = S.fileno(f)
        local obj = { getfd = function() return fd end }
        -- a regular file: readable and writable at once
        local r, w, err = sel({ obj }, { obj }, 0)
        assert(err == nil and #r == 1 and #w == 1, tostring(err))
        assert(r[1] == obj and r[obj] == 1 and math.type(r[obj]) == "float")
        assert(w[1] == obj and w[obj] == 1)
        -- dirty objects first, reported at once
        local class = { getfd = function(self) return self.fd end, dirty = function() return true end }
        local f2 = assert(io.open("/dev/null"))
        local fd2 = S.fileno(f2)
        local d = setmetatable({ fd = fd2 }, { __index = class })
        r = sel({ obj, d, d }, nil, 1e9)
        assert(#r == 3 and r[1] == d and r[2] == d and r[3] == obj and r[d] == 2 and r[obj] == 3)
        -- a dirty entry's descriptor is not waited for: another object on it is not reported
        r = sel({ { getfd = function() return fd2 end }, d }, nil, 0)
        assert(#r == 1 and r[1] == d)
        -- nothing ready: two empty tables and "timeout"
        local p = assert(io.popen("sleep 0.2"))
        local late = { getfd = function() return S.fileno(p) end }
        r, w, err = sel({ late, { getfd = function() return -1 end }, {} }, nil, 0)
        assert(next(r) == nil and next(w) == nil and err == "timeout")
        -- luasocket's errors
        local ok, e = pcall(sel, nil, nil, "x")
        assert(not ok and e == "bad argument #3 to 'select' (number expected, got string)", e)
        ok, e = pcall(sel, nil, 5)
        assert(not ok and e == "bad argument #2 to 'select' (table expected, got number)", e)
        ok, e = pcall(sel, { late }, nil, 2^31)
        assert(not ok and e == "select failed", e)
        -- an error from getfd propagates, and the next call works
        ok, e = pcall(sel, { { getfd = function() error("mine", 0) end } }, nil, 0)
        assert(not ok and e == "mine", e)
        r = sel({ obj }, nil, 0)
        assert(r[1] == obj)
        p:close()
        f:close()
        f2:close()
    "#)
    .unwrap();
}
