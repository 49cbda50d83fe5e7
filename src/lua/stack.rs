//! The binding's one window onto the Lua C API.
//!
//! Every `unsafe` block of the binding lives in this file. The rest of
//! `src/lua/` sees a safe `Lua` handle, valid for the duration of one call from
//! Lua into a C function, and C functions made from plain Rust functions with
//! [`cfn`]. Errors are raised as plain Lua strings, the way Lua's own C libraries
//! raise them; the raise happens in [`call`] after every Rust value of the call
//! has been dropped, so no destructor is ever skipped by the longjmp (or, on
//! LuaJIT, the foreign unwind) that `lua_error` performs.

use std::ffi::{c_int, c_void, CStr};
use std::marker::PhantomData;
use std::panic::{catch_unwind, AssertUnwindSafe};

use mlua::ffi;

/// What a Lua-callable Rust function returns: how many results it pushed, or
/// the error to raise.
pub type Ret = Result<c_int, Error>;

/// An error to raise in Lua.
#[derive(Debug)]
pub enum Error {
    /// A plain message, e.g. `I/O operation on closed epoll object`.
    Msg(String),
    /// The error value is already on top of the stack (from a failed `pcall`):
    /// raise it again unchanged.
    Rethrow,
}

/// `bad argument #n to 'func' (msg)`, worded as `luaL_argerror` words it. The
/// binding names the function itself, so the message is the same in every Lua
/// version and whether a method is called with `:` or `.` (self is not counted).
pub fn arg_error<T>(func: &str, arg: c_int, msg: impl std::fmt::Display) -> Result<T, Error> {
    Err(Error::Msg(format!(
        "bad argument #{arg} to '{func}' ({msg})"
    )))
}

/// Why [`Lua::object`] found no open object.
#[derive(Clone, Copy, Debug)]
pub enum Miss {
    /// The object is closed (or already finalised).
    Closed,
    /// Not an object of the type; the value's type name.
    Wrong(&'static str),
}

/// The Kind of a `lua_type`/`lua_rawgeti` result.
fn kind_of(t: c_int) -> Kind {
    match t {
        ffi::LUA_TNIL => Kind::Nil,
        ffi::LUA_TBOOLEAN => Kind::Boolean,
        ffi::LUA_TLIGHTUSERDATA => Kind::LightUserdata,
        ffi::LUA_TNUMBER => Kind::Number,
        ffi::LUA_TSTRING => Kind::String,
        ffi::LUA_TTABLE => Kind::Table,
        ffi::LUA_TFUNCTION => Kind::Function,
        ffi::LUA_TUSERDATA => Kind::Userdata,
        ffi::LUA_TTHREAD => Kind::Thread,
        _ => Kind::None,
    }
}

/// The type of a stack slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    None,
    Nil,
    Boolean,
    LightUserdata,
    Number,
    String,
    Table,
    Function,
    Userdata,
    Thread,
}

/// A number as Lua holds it: 5.3+ integers stay integers.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Num {
    /// Only Lua 5.3 and 5.4 have an integer subtype.
    #[cfg_attr(not(any(feature = "lua53", feature = "lua54")), allow(dead_code))]
    Int(i64),
    Float(f64),
}

impl Num {
    /// The integer value, if the number has one exactly (`3.0` does, `3.5` not).
    pub fn exact_int(self) -> Option<i64> {
        match self {
            Num::Int(i) => Some(i),
            // i64's range as floats: -2^63 is exact, 2^63 is one past the end.
            // Within it, `f as i64` truncates, so the round trip is exact just
            // for whole numbers (and costs no libm call, as f.fract() does;
            // NaN fails the range test).
            Num::Float(f)
                if (-9.223_372_036_854_776e18..9.223_372_036_854_776e18).contains(&f)
                    && (f as i64) as f64 == f =>
            {
                Some(f as i64)
            }
            Num::Float(_) => None,
        }
    }

    pub fn as_f64(self) -> f64 {
        match self {
            Num::Int(i) => i as f64,
            Num::Float(f) => f,
        }
    }
}

/// The Lua state during one call of a C function. Only [`call`] makes one, so
/// the pointer is always a live state with the call's arguments on its stack.
pub struct Lua {
    l: *mut ffi::lua_State,
    _not_send: PhantomData<*mut ()>,
}

/// What every userdata this binding makes holds: a tag naming its class (the
/// address of the class's description), then the value. Methods know their
/// objects by the tag and the block's size, not by the metatable: the debug
/// library can give any userdata our metatable (so a metatable check would let
/// `debug.setmetatable(io.stdout, mt)` pass a file for an epoll object), but no
/// Lua code can write our tag into a block. It is also cheaper: two API calls
/// where a metatable check takes five.
#[repr(C)]
struct Block<T> {
    tag: usize,
    slot: Option<T>,
}

/// Index of upvalue `n` of the running C function.
pub fn upvalue(n: c_int) -> c_int {
    ffi::lua_upvalueindex(n)
}

/// The registry pseudo-index.
pub const REGISTRY: c_int = ffi::LUA_REGISTRYINDEX;

impl Lua {
    /// Number of values on the stack (the arguments, at the start of a call).
    pub fn top(&self) -> c_int {
        // SAFETY: self.l is a live state (see the type's invariant).
        unsafe { ffi::lua_gettop(self.l) }
    }

    pub fn set_top(&mut self, n: c_int) {
        // SAFETY: callers only shrink the stack or fill it with nils.
        unsafe { ffi::lua_settop(self.l, n) }
    }

    pub fn pop(&mut self, n: c_int) {
        self.set_top(-n - 1)
    }

    /// Makes sure `n` more slots can be pushed; false if Lua cannot grow the stack.
    pub fn check_stack(&mut self, n: c_int) -> bool {
        // SAFETY: lua_checkstack never raises; it reports failure by returning 0.
        unsafe { ffi::lua_checkstack(self.l, n) != 0 }
    }

    pub fn abs(&self, i: c_int) -> c_int {
        if i > 0 {
            return i; // already absolute: no call
        }
        // SAFETY: lua_absindex only computes an index.
        unsafe { ffi::lua_absindex(self.l, i) }
    }

    pub fn kind(&self, i: c_int) -> Kind {
        // SAFETY: lua_type accepts any index, returning LUA_TNONE when invalid.
        kind_of(unsafe { ffi::lua_type(self.l, i) })
    }

    pub fn is_none_or_nil(&self, i: c_int) -> bool {
        matches!(self.kind(i), Kind::None | Kind::Nil)
    }

    /// The name Lua's own messages use for the value's type ("no value" when
    /// the argument is absent).
    pub fn type_name(&self, i: c_int) -> &'static str {
        match self.kind(i) {
            Kind::None => "no value",
            Kind::Nil => "nil",
            Kind::Boolean => "boolean",
            Kind::LightUserdata | Kind::Userdata => "userdata",
            Kind::Number => "number",
            Kind::String => "string",
            Kind::Table => "table",
            Kind::Function => "function",
            Kind::Thread => "thread",
        }
    }

    /// The number at `i`, if it is a number (strings are not converted).
    pub fn number(&self, i: c_int) -> Option<Num> {
        if self.kind(i) != Kind::Number {
            return None;
        }
        #[cfg(any(feature = "lua53", feature = "lua54"))]
        {
            // SAFETY: the slot holds a number; lua_isinteger only inspects it.
            if unsafe { ffi::lua_isinteger(self.l, i) } != 0 {
                // SAFETY: the slot holds an integer, read without conversion.
                return Some(Num::Int(unsafe { ffi::lua_tointeger(self.l, i) } as i64));
            }
        }
        // SAFETY: the slot holds a number; lua_tonumber reads it.
        Some(Num::Float(unsafe { ffi::lua_tonumber(self.l, i) }))
    }

    pub fn boolean(&self, i: c_int) -> bool {
        // SAFETY: lua_toboolean accepts any index.
        unsafe { ffi::lua_toboolean(self.l, i) != 0 }
    }

    /// The bytes of the string at `i` (numbers are not converted).
    pub fn bytes(&self, i: c_int) -> Option<&[u8]> {
        if self.kind(i) != Kind::String {
            return None;
        }
        let mut len = 0usize;
        // SAFETY: the slot holds a string, so lua_tolstring returns its bytes
        // without converting anything; they live while the value is on the stack,
        // which outlasts the borrow of self.
        unsafe {
            let p = ffi::lua_tolstring(self.l, i, &mut len);
            Some(std::slice::from_raw_parts(p.cast::<u8>(), len))
        }
    }

    pub fn push_nil(&mut self) {
        // SAFETY: every push below relies on the LUA_MINSTACK (20) free slots a
        // C function starts with, or on check_stack done by the caller.
        unsafe { ffi::lua_pushnil(self.l) }
    }

    pub fn push_bool(&mut self, b: bool) {
        // SAFETY: see push_nil.
        unsafe { ffi::lua_pushboolean(self.l, b as c_int) }
    }

    pub fn push_int(&mut self, n: i64) {
        // SAFETY: see push_nil. On 5.1/LuaJIT the integer becomes a double.
        unsafe { ffi::lua_pushinteger(self.l, n as ffi::lua_Integer) }
    }

    pub fn push_str(&mut self, s: &str) {
        // SAFETY: see push_nil; Lua copies the bytes.
        unsafe {
            ffi::lua_pushlstring(self.l, s.as_ptr().cast(), s.len());
        }
    }

    /// Removes the value at `i`, shifting the ones above it down.
    pub fn remove(&mut self, i: c_int) {
        // SAFETY: callers pass a valid, non-pseudo index.
        unsafe { ffi::lua_remove(self.l, i) }
    }

    pub fn push_value(&mut self, i: c_int) {
        // SAFETY: see push_nil; an invalid index pushes nil.
        unsafe { ffi::lua_pushvalue(self.l, i) }
    }

    /// Pushes a C function with the top `nup` values as its upvalues.
    pub fn push_cfn(&mut self, f: ffi::lua_CFunction, nup: c_int) {
        // SAFETY: the caller pushed nup values for the closure to take.
        unsafe { ffi::lua_pushcclosure(self.l, f, nup) }
    }

    /// Pushes a new table with room for `narr` array and `nrec` hash entries.
    pub fn new_table(&mut self, narr: usize, nrec: usize) {
        let narr = narr.min(c_int::MAX as usize) as c_int;
        let nrec = nrec.min(c_int::MAX as usize) as c_int;
        // SAFETY: see push_nil.
        unsafe { ffi::lua_createtable(self.l, narr, nrec) }
    }

    /// Pushes `t[n]` without metamethods and returns its kind.
    pub fn raw_geti(&mut self, t: c_int, n: i64) -> Kind {
        // SAFETY: callers pass the index of a table.
        let kind = unsafe { ffi::lua_rawgeti(self.l, t, n as ffi::lua_Integer) };
        kind_of(kind)
    }

    /// Pushes `t[n]` without metamethods and returns it when it is a number
    /// with an exact integer value; `None` for anything else, which the
    /// caller then inspects at the top. One C call fewer than `raw_geti`
    /// followed by `exact_integer` (`select.select` reads its lists so).
    #[inline(always)]
    pub fn raw_geti_integer(&mut self, t: c_int, n: i64) -> Option<i64> {
        // SAFETY: callers pass the index of a table.
        let ty = unsafe { ffi::lua_rawgeti(self.l, t, n as ffi::lua_Integer) };
        if ty != ffi::LUA_TNUMBER {
            return None;
        }
        self.number_as_integer(-1)
    }

    /// Pops a value and stores it as `t[n]` without metamethods.
    pub fn raw_seti(&mut self, t: c_int, n: i64) {
        // SAFETY: callers pass the index of a table and pushed the value.
        unsafe { ffi::lua_rawseti(self.l, t, n as ffi::lua_Integer) }
    }

    /// Pushes `t[key]` without metamethods and returns its kind.
    pub fn raw_get_field(&mut self, t: c_int, key: &CStr) -> Kind {
        let t = self.abs(t);
        // SAFETY: t is a table index; key is NUL-terminated.
        unsafe {
            ffi::lua_pushstring(self.l, key.as_ptr());
            ffi::lua_rawget(self.l, t);
        }
        self.kind(-1)
    }

    /// Pops a value and stores it as `t[key]` without metamethods.
    pub fn raw_set_field(&mut self, t: c_int, key: &CStr) {
        let t = self.abs(t);
        // SAFETY: t is a table index and the value to store is on top.
        unsafe {
            ffi::lua_pushstring(self.l, key.as_ptr());
            ffi::lua_insert(self.l, -2);
            ffi::lua_rawset(self.l, t);
        }
    }

    /// `#t` without metamethods.
    pub fn raw_len(&self, t: c_int) -> usize {
        // SAFETY: lua_rawlen accepts any index and never raises.
        unsafe { ffi::lua_rawlen(self.l, t) }
    }

    pub fn raw_equal(&self, a: c_int, b: c_int) -> bool {
        // SAFETY: lua_rawequal accepts any indices and never raises.
        unsafe { ffi::lua_rawequal(self.l, a, b) != 0 }
    }

    /// Pushes the metatable of the value at `i`; false (nothing pushed) if none.
    pub fn get_metatable(&mut self, i: c_int) -> bool {
        // SAFETY: lua_getmetatable accepts any index and never raises.
        unsafe { ffi::lua_getmetatable(self.l, i) != 0 }
    }

    /// Pops a table and sets it as the metatable of the value at `i`.
    pub fn set_metatable(&mut self, i: c_int) {
        // SAFETY: callers pushed a table; setting a metatable never raises.
        unsafe {
            ffi::lua_setmetatable(self.l, i);
        }
    }

    /// Whether the value at `i` is a userdata whose metatable is the value at `mt`.
    pub fn has_metatable(&mut self, i: c_int, mt: c_int) -> bool {
        let mt = self.abs(mt);
        if !self.get_metatable(i) {
            return false;
        }
        let same = self.raw_equal(-1, mt);
        self.pop(1);
        same
    }

    /// Pushes the uservalue (a table, or nil) of the userdata at `i`.
    pub fn get_uservalue(&mut self, i: c_int) -> Kind {
        // SAFETY: callers pass a full userdata.
        unsafe {
            ffi::lua_getuservalue(self.l, i);
        }
        self.kind(-1)
    }

    /// Pops a table and makes it the uservalue of the userdata at `i`.
    pub fn set_uservalue(&mut self, i: c_int) {
        // SAFETY: callers pass a full userdata and pushed a table (the only
        // kind 5.1 and 5.2 accept).
        unsafe {
            ffi::lua_setuservalue(self.l, i);
        }
    }

    /// The address of a value, for `tostring` (`0x...`).
    pub fn pointer(&self, i: c_int) -> usize {
        // SAFETY: lua_topointer accepts any index.
        unsafe { ffi::lua_topointer(self.l, i) as usize }
    }

    /// Calls the function below `nargs` arguments in protected mode. On error the
    /// error value is left on top and `false` returned (raise it with
    /// `Error::Rethrow`).
    pub fn pcall(&mut self, nargs: c_int, nresults: c_int) -> bool {
        // SAFETY: the caller pushed a function and nargs arguments; lua_pcall
        // catches every error the call raises.
        unsafe { ffi::lua_pcall(self.l, nargs, nresults, 0) == 0 }
    }

    /// Pushes a new full userdata holding `value`, tagged `tag` (see [`Block`]).
    /// The slot is an `Option<T>`: `None` once the object is closed or collected.
    pub fn push_userdata<T>(&mut self, tag: usize, value: T) -> &mut Option<T> {
        const { assert!(std::mem::align_of::<Block<T>>() <= 8) };
        // SAFETY: Lua returns a block of the requested size aligned for any
        // standard C type (8 bytes here, checked above); we initialise it at once.
        unsafe {
            #[cfg(feature = "lua54")]
            let p = ffi::lua_newuserdatauv(self.l, std::mem::size_of::<Block<T>>(), 1);
            #[cfg(not(feature = "lua54"))]
            let p = ffi::lua_newuserdata(self.l, std::mem::size_of::<Block<T>>());
            let block = p.cast::<Block<T>>();
            block.write(Block {
                tag,
                slot: Some(value),
            });
            &mut (*block).slot
        }
    }

    /// The block at `i` if it is a userdata made by `push_userdata::<T>` with
    /// this tag: two API calls and a compare, on every method call.
    #[inline(always)]
    fn block<T>(&self, i: c_int, tag: usize) -> Option<*mut Block<T>> {
        // SAFETY: lua_touserdata and lua_rawlen accept any index and never
        // raise. lua_touserdata is non-null only for a userdata; a light one
        // has length 0, a full one the size it was made with, so the block is
        // at least a Block<T> and its first word can be read. Only
        // push_userdata writes a class tag there: a tag is the address of a
        // class description in this library, which no other code stores.
        unsafe {
            let p = ffi::lua_touserdata(self.l, i);
            if p.is_null() || ffi::lua_rawlen(self.l, i) != std::mem::size_of::<Block<T>>() {
                return None;
            }
            let block = p.cast::<Block<T>>();
            (std::ptr::addr_of!((*block).tag).read() == tag).then_some(block)
        }
    }

    /// The slot of the userdata at `i` if it is an object made with `tag`, open
    /// or closed. The caller must not hold two slots of one object at once.
    pub fn userdata<T>(&mut self, i: c_int, tag: usize) -> Option<&mut Option<T>> {
        // SAFETY: the tag identifies a block made by push_userdata::<T> (each
        // tag belongs to one Rust type), alive while it is on the stack.
        self.block::<T>(i, tag).map(|b| unsafe { &mut (*b).slot })
    }

    /// The open object at `i`: a userdata made with `tag` whose slot holds a
    /// value. This is on every method call; the error says why not, so callers
    /// need no second look at the stack.
    #[inline(always)]
    pub fn object<T>(&mut self, i: c_int, tag: usize) -> Result<&mut T, Miss> {
        match self.block::<T>(i, tag) {
            // SAFETY: as in userdata.
            Some(b) => unsafe { (*b).slot.as_mut().ok_or(Miss::Closed) },
            None => Err(self.not_object(i)),
        }
    }

    #[cold]
    #[inline(never)]
    fn not_object(&self, i: c_int) -> Miss {
        Miss::Wrong(self.type_name(i))
    }

    /// The integer value of the number at `i` if it has one exactly (`3` and
    /// `3.0` do, `3.5` does not); `None` for non-numbers, strings included.
    pub fn exact_integer(&self, i: c_int) -> Option<i64> {
        // SAFETY: lua_type accepts any index.
        if unsafe { ffi::lua_type(self.l, i) } != ffi::LUA_TNUMBER {
            return None;
        }
        self.number_as_integer(i)
    }

    /// `exact_integer` of a slot known to hold a number.
    #[inline(always)]
    fn number_as_integer(&self, i: c_int) -> Option<i64> {
        // SAFETY: the slot holds a number (not a string), so neither call
        // converts anything; both only read it.
        unsafe {
            #[cfg(any(feature = "lua53", feature = "lua54"))]
            {
                let mut isnum = 0;
                let v = ffi::lua_tointegerx(self.l, i, &mut isnum);
                (isnum != 0).then_some(v as i64)
            }
            // Numbers are doubles before 5.3: one read and the check here
            // (mlua's lua_tointegerx for them takes two or three calls).
            #[cfg(not(any(feature = "lua53", feature = "lua54")))]
            {
                Num::Float(ffi::lua_tonumber(self.l, i)).exact_int()
            }
        }
    }

    /// The descriptor behind a Lua file handle (`io.open`, `io.stdin`, ...):
    /// `None` if the value is not one, `Some(None)` if it is closed.
    pub fn file_handle_fd(&mut self, i: c_int) -> Option<Option<i32>> {
        if self.kind(i) != Kind::Userdata {
            return None;
        }
        let i = self.abs(i);
        // SAFETY: "FILE*" is the registry key of the io library's metatable.
        unsafe { ffi::lua_getfield(self.l, REGISTRY, c"FILE*".as_ptr()) };
        let is_file = self.kind(-1) == Kind::Table && self.has_metatable(i, -1);
        self.pop(1);
        if !is_file {
            return None;
        }
        // SAFETY: the io library's handles start with the `FILE *`: `FILE **` on
        // 5.1, `luaL_Stream { FILE *f; lua_CFunction closef; }` on 5.2+ (closed
        // when closef is NULL), `IOFileUD { FILE *fp; ... }` on LuaJIT (NULL when
        // closed). fileno only reads the stream's descriptor.
        unsafe {
            let block = ffi::lua_touserdata(self.l, i).cast::<*mut c_void>();
            let stream = *block;
            #[cfg(any(feature = "lua52", feature = "lua53", feature = "lua54"))]
            let closed = (*block.add(1)).is_null();
            #[cfg(not(any(feature = "lua52", feature = "lua53", feature = "lua54")))]
            let closed = stream.is_null();
            if closed || stream.is_null() {
                return Some(None);
            }
            let fd = libc::fileno(stream.cast::<libc::FILE>());
            Some((fd >= 0).then_some(fd))
        }
    }

    /// Sets `t[name] = v` on the table at `t` for every entry (module set-up).
    pub fn set_functions(&mut self, t: c_int, funcs: &[(&CStr, ffi::lua_CFunction)], nup: c_int) {
        let t = self.abs(t);
        for (name, f) in funcs {
            for _ in 0..nup {
                self.push_value(-nup);
            }
            self.push_cfn(*f, nup);
            self.raw_set_field(t, name);
        }
        self.pop(nup);
    }
}

/// Runs a Rust function as the body of a Lua C function: the result is
/// returned, an error raised after every Rust value has been dropped, a panic
/// turned into a Lua error.
pub fn call(l: *mut ffi::lua_State, f: impl FnOnce(&mut Lua) -> Ret) -> c_int {
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        let mut lua = Lua {
            l,
            _not_send: PhantomData,
        };
        f(&mut lua)
    }));
    match outcome {
        Ok(Ok(n)) => n,
        Ok(Err(e)) => raise(l, e),
        Err(payload) => {
            drop(payload);
            raise(l, Error::Msg("select: internal error (Rust panic)".into()))
        }
    }
}

#[cold]
#[inline(never)]
fn raise(l: *mut ffi::lua_State, e: Error) -> c_int {
    if let Error::Msg(msg) = e {
        // SAFETY: the message is copied into a Lua string; the Rust String is
        // dropped right after, before raising.
        unsafe { ffi::lua_pushlstring(l, msg.as_ptr().cast(), msg.len()) };
    }
    // SAFETY: the error value is on top of the stack (pushed above, or left by
    // a failed pcall for Rethrow) and no value of this frame owns memory any
    // more, so the longjmp skips no destructor.
    unsafe { ffi::lua_error(l) }
}

/// What a C function hands back to Lua: the result count, widened to 64 bits.
///
/// The C ABI returns an `int` in the low half of a register and leaves the
/// upper half unspecified, and LLVM does leave garbage there. LuaJIT's x64
/// interpreter reads the whole register after calling a `lua_CFunction`, so an
/// `int` return from Rust can crash it. Returning a zero-extended 64-bit value
/// fills the register completely, and is read back correctly by callers that
/// expect an `int` (the low half on x86-64 and AArch64 alike).
pub type CRet = i64;

/// Turns a C function that returns [`CRet`] into a `lua_CFunction`.
pub const fn as_cfunction(
    f: unsafe extern "C-unwind" fn(*mut ffi::lua_State) -> CRet,
) -> ffi::lua_CFunction {
    // SAFETY: both are C-ABI functions of one pointer argument; an i64 return
    // occupies the same register as an int return, with its low half being
    // the int. The result is only ever called by Lua's C code, never from Rust.
    unsafe { std::mem::transmute(f) }
}

/// Makes a Lua C function out of a Rust function item (or a closure that
/// captures nothing), so the binding never writes `extern` or `unsafe`.
pub const fn cfn<F: Fn(&mut Lua) -> Ret + Copy + 'static>(_f: F) -> ffi::lua_CFunction {
    const { assert!(std::mem::size_of::<F>() == 0, "cfn takes a function item") };
    as_cfunction(trampoline::<F>)
}

unsafe extern "C-unwind" fn trampoline<F: Fn(&mut Lua) -> Ret + Copy + 'static>(
    l: *mut ffi::lua_State,
) -> CRet {
    // SAFETY: F is a zero-sized function item (checked in cfn), so a value of it
    // can be read from any aligned pointer; it has no state to initialise.
    let f: F = unsafe { std::ptr::NonNull::<F>::dangling().as_ptr().read() };
    call(l, f) as CRet
}

/// `fd_method_raw` as a Lua C function.
pub const FD_METHOD: ffi::lua_CFunction = as_cfunction(fd_method_raw);

/// A raw C function for `pcall`: calls `obj:getfd()` or else `obj:fileno()` on
/// its single argument and returns the result, or nothing when the object has
/// neither method. Lookups run metamethods and user code that may raise, hence
/// it only ever runs under `pcall`, and holds no Rust value that needs dropping.
unsafe extern "C-unwind" fn fd_method_raw(l: *mut ffi::lua_State) -> CRet {
    // SAFETY: called by lua_pcall with one argument; errors unwind to that pcall
    // and this frame owns nothing.
    unsafe {
        for name in [c"getfd", c"fileno"] {
            ffi::lua_getfield(l, 1, name.as_ptr());
            if ffi::lua_type(l, -1) == ffi::LUA_TFUNCTION {
                ffi::lua_pushvalue(l, 1);
                ffi::lua_call(l, 1, 1);
                return 1;
            }
            ffi::lua_settop(l, 1);
        }
        0
    }
}

/// Entry point glue: runs the module's opener on the state `luaopen_select` got.
pub fn open(l: *mut ffi::lua_State, f: fn(&mut Lua) -> Ret) -> CRet {
    call(l, f) as CRet
}
