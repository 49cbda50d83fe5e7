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
