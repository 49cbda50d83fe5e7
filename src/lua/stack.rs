//! The binding's one window onto the Lua C API.
//!
//! Every `unsafe` block of the binding lives in this file, but for
//! `compat.rs`, a raw C function that keeps the same rule by hand (no Rust
//! value with a destructor in any of its frames, no `catch_unwind`). The rest of
//! `src/lua/` sees safe handles, valid for the duration of one call from Lua
//! into a C function, and C functions made from plain Rust functions with
//! [`cfn`].
//!
//! # The error discipline
//!
//! A Lua API call that allocates can raise a Lua error: out of memory
//! anywhere, and on 5.1-5.3 an error thrown by a `__gc` finalizer that the
//! allocation's garbage-collection step runs. PUC Lua raises with `longjmp`,
//! which skips Rust destructors; LuaJIT unwinds, and `catch_unwind` aborts
//! the process on that foreign exception. So the API is split in two:
//!
//! - [`Lua`], the handle a function body gets, offers only calls that never
//!   raise (reads, `lua_pushinteger`, `lua_pushvalue`, `lua_rawgeti`, ...).
//!   The body runs under `catch_unwind` (a panic becomes a Lua error) and may
//!   own Rust values.
//! - [`Raw`] adds the calls that can raise (tables, strings, userdata,
//!   `lua_rawseti`, metamethod lookups). It exists only inside a *Lua step*:
//!   a plain `fn(&mut Raw, A) -> c_int` whose argument is `Copy` (so it owns
//!   nothing that needs dropping), run either
//!   - by [`Lua::protect`], as a protected call (`lua_pcall`): an error comes
//!     back to the body as `Err` and is raised after its values are dropped;
//!     the step may read Rust-owned memory through pointers in `A`, which the
//!     body owns exclusively for the duration; or
//!   - as the body's tail ([`Next::Tail`]), after `catch_unwind` has returned
//!     and every Rust value of the call is gone, at no cost: the hot paths
//!     (an empty result table, `select`'s result lists) end this way.
//!
//! A Lua step must not panic (no indexing that can fail, no `unwrap`): nothing
//! catches a panic there. Errors are raised as plain Lua strings, the way
//! Lua's own C libraries raise them, copied out of Rust memory first.

use std::ffi::{c_int, c_void, CStr};
use std::marker::PhantomData;
use std::mem::{align_of, size_of, MaybeUninit};
use std::panic::{catch_unwind, AssertUnwindSafe};

use mlua::ffi;

/// What a Lua-callable Rust function returns: what to hand back to Lua, or
/// the error to raise.
pub type Ret = Result<Next, Error>;

/// How a function body ends (when it does not raise).
pub enum Next {
    /// Return the top `n` values of the stack.
    Return(c_int),
    /// Run a Lua step after the body's values are dropped; it leaves the
    /// results and returns their count.
    Tail(Step),
}

/// `Ok(Next::Return(n))`: the body pushed its `n` results.
#[inline(always)]
pub fn ret(n: c_int) -> Ret {
    Ok(Next::Return(n))
}

/// A Lua step with its argument, held by value in plain words (see
/// [`Step::new`]), to run as a body's tail.
#[derive(Clone, Copy)]
pub struct Step {
    run: unsafe fn(&mut Raw, *const u8, *const ()) -> c_int,
    f: *const (),
    arg: MaybeUninit<[u64; 4]>,
}

impl Step {
    /// `f(raw, a)` as a tail. `A` is `Copy`, so it owns nothing that a
    /// raise could skip dropping; it is at most 32 bytes.
    pub fn new<A: Copy>(f: fn(&mut Raw, A) -> c_int, a: A) -> Step {
        const {
            assert!(
                size_of::<A>() <= 32 && align_of::<A>() <= 8,
                "Step argument too large"
            )
        };
        let mut arg = MaybeUninit::<[u64; 4]>::uninit();
        // SAFETY: A fits the buffer (checked above) and its alignment is at
        // most the buffer's; it is read back as an A by run_step::<A> only.
        unsafe { arg.as_mut_ptr().cast::<A>().write(a) };
        Step {
            run: run_step::<A>,
            f: f as *const (),
            arg,
        }
    }

    /// `Next::Tail(Step::new(f, a))`.
    pub fn tail<A: Copy>(f: fn(&mut Raw, A) -> c_int, a: A) -> Ret {
        Ok(Next::Tail(Step::new(f, a)))
    }
}

/// Calls the step function `f` (a `fn(&mut Raw, A) -> c_int`) on the `A` at `arg`.
///
/// # Safety
/// `f` and `arg` must come from one `Step::new::<A>`.
unsafe fn run_step<A: Copy>(raw: &mut Raw, arg: *const u8, f: *const ()) -> c_int {
    // SAFETY: per the contract, f was a fn(&mut Raw, A) -> c_int and arg
    // holds an A written by Step::new.
    unsafe {
        let f: fn(&mut Raw, A) -> c_int = std::mem::transmute(f);
        f(raw, arg.cast::<A>().read())
    }
}

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
            Num::Float(f) if (-9.223_372_036_854_776e18..9.223_372_036_854_776e18).contains(&f) => {
                // SAFETY: f is within i64's range and not NaN (NaN fails the
                // range test), so truncating it is defined; this skips the
                // saturation checks of `as`, on every number argument.
                let i = unsafe { f.to_int_unchecked::<i64>() };
                (i as f64 == f).then_some(i)
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

/// An object's block found on the stack by [`Lua::pin`]. Lua never moves a
/// full userdata, and one on the stack is not collected, so the block stays
/// valid while the value stays in its stack slot; what the slot holds may
/// change meanwhile (a finalizer may close the object), so it is read anew
/// at each look.
pub struct Pinned<T> {
    block: *mut Block<T>,
}

// A pointer, copied whatever `T` is (a derive would ask `T: Copy`).
impl<T> Clone for Pinned<T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for Pinned<T> {}

impl<T> Pinned<T> {
    /// The object's slot (`None` once closed). The reference borrows `lua`,
    /// so no Lua call can run while it is held.
    #[inline(always)]
    pub fn slot<'a>(&self, _lua: &'a mut Lua) -> &'a mut Option<T> {
        // SAFETY: the block is alive (see the type's comment: the caller of
        // `pin` keeps the value on the stack), and the exclusive borrow of
        // `lua` keeps any other reference to it (every one comes through
        // `lua`) from being made while this one lives.
        unsafe { &mut (*self.block).slot }
    }
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

    /// Whether the value at `i` is a number with the integer subtype (before
    /// 5.3, where numbers have no subtypes: a number with an exact integer
    /// value), i.e. one that `push_int` would give back equal and alike.
    pub fn is_integer(&self, i: c_int) -> bool {
        match self.number(i) {
            Some(Num::Int(_)) => true,
            #[cfg(not(any(feature = "lua53", feature = "lua54")))]
            Some(n @ Num::Float(_)) => n.exact_int().is_some(),
            _ => false,
        }
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

    /// Removes the value at `i`, shifting the ones above it down.
    pub fn remove(&mut self, i: c_int) {
        // SAFETY: callers pass a valid, non-pseudo index.
        unsafe { ffi::lua_remove(self.l, i) }
    }

    pub fn push_value(&mut self, i: c_int) {
        // SAFETY: see push_nil; an invalid index pushes nil.
        unsafe { ffi::lua_pushvalue(self.l, i) }
    }

    /// Pushes `t[n]` without metamethods and returns its kind.
    pub fn raw_geti(&mut self, t: c_int, n: i64) -> Kind {
        // 5.1 and LuaJIT take a C int (mlua's shim panics past it).
        #[cfg(not(any(feature = "lua53", feature = "lua54")))]
        let n = n.clamp(c_int::MIN as i64, c_int::MAX as i64);
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
        #[cfg(not(any(feature = "lua53", feature = "lua54")))]
        let n = n.clamp(c_int::MIN as i64, c_int::MAX as i64);
        // SAFETY: callers pass the index of a table.
        let ty = unsafe { ffi::lua_rawgeti(self.l, t, n as ffi::lua_Integer) };
        if ty != ffi::LUA_TNUMBER {
            return None;
        }
        self.number_as_integer(-1)
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

    /// The userdata at `i`, if it is an object made with `tag`, found once so
    /// that a loop can look at its slot again without API calls (see
    /// [`Pinned`]). The caller keeps the value at `i` for as long as it uses
    /// the result.
    pub fn pin<T>(&self, i: c_int, tag: usize) -> Option<Pinned<T>> {
        self.block::<T>(i, tag).map(|block| Pinned { block })
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

    /// Whether the value at `i` is the number 0 (`0` or `0.0`, not `"0"`):
    /// the polling loop's timeout, in one type test and one read.
    #[inline]
    pub fn is_zero(&self, i: c_int) -> bool {
        // SAFETY: lua_type accepts any index; lua_tonumber of a slot that
        // holds a number converts nothing.
        unsafe {
            ffi::lua_type(self.l, i) == ffi::LUA_TNUMBER && ffi::lua_tonumber(self.l, i) == 0.0
        }
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
}

/// The Lua state inside a Lua step (see the module header): every call of
/// [`Lua`], plus those that can raise. Only [`Lua::protect`] and the tail of
/// [`call`] make one, so the calls that can raise run where a raise skips no
/// destructor and crosses no `catch_unwind`.
pub struct Raw(Lua);

impl std::ops::Deref for Raw {
    type Target = Lua;
    fn deref(&self) -> &Lua {
        &self.0
    }
}

impl std::ops::DerefMut for Raw {
    fn deref_mut(&mut self) -> &mut Lua {
        &mut self.0
    }
}

impl Raw {
    fn new(l: *mut ffi::lua_State) -> Raw {
        Raw(Lua {
            l,
            _not_send: PhantomData,
        })
    }

    /// Makes sure `n` more slots can be pushed; false if Lua cannot grow the
    /// stack (5.1, 5.2 and LuaJIT raise when the reallocation fails).
    pub fn check_stack(&mut self, n: c_int) -> bool {
        // SAFETY: a Lua step may raise.
        unsafe { ffi::lua_checkstack(self.l, n) != 0 }
    }

    pub fn push_str(&mut self, s: &str) {
        self.push_bytes(s.as_bytes())
    }

    pub fn push_bytes(&mut self, s: &[u8]) {
        // SAFETY: Lua copies the bytes; a Lua step may raise.
        unsafe {
            ffi::lua_pushlstring(self.l, s.as_ptr().cast(), s.len());
        }
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
        // SAFETY: a Lua step may raise.
        unsafe { ffi::lua_createtable(self.l, narr, nrec) }
    }

    /// Pops a value and stores it as `t[n]` without metamethods. `n` must fit
    /// a C int (5.1 and LuaJIT take nothing wider).
    pub fn raw_seti(&mut self, t: c_int, n: i64) {
        #[cfg(not(any(feature = "lua53", feature = "lua54")))]
        let n = n.clamp(c_int::MIN as i64, c_int::MAX as i64);
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

    /// Pushes a new full userdata holding `value`, tagged `tag` (see [`Block`]).
    /// The slot is an `Option<T>`: `None` once the object is closed or
    /// collected. If the allocation raises, `value` was never moved in, so it
    /// must own nothing (callers pass `None`-like or heap-free values and
    /// fill the slot afterwards).
    pub fn push_userdata<T: Copy>(&mut self, tag: usize, value: Option<T>) {
        self.push_block::<T>(tag, || value);
    }

    /// Pushes a new userdata for a `T`, its slot empty (`None`): the Rust
    /// phase that follows fills it ([`Lua::userdata`]).
    pub fn push_empty_userdata<T>(&mut self, tag: usize) {
        self.push_block::<T>(tag, || None);
    }

    fn push_block<T>(&mut self, tag: usize, value: impl FnOnce() -> Option<T>) {
        const { assert!(align_of::<Block<T>>() <= 8) };
        // SAFETY: Lua returns a block of the requested size aligned for any
        // standard C type (8 bytes here, checked above), or raises before
        // anything is moved; we initialise it at once.
        unsafe {
            #[cfg(feature = "lua54")]
            let p = ffi::lua_newuserdatauv(self.l, size_of::<Block<T>>(), 1);
            #[cfg(not(feature = "lua54"))]
            let p = ffi::lua_newuserdata(self.l, size_of::<Block<T>>());
            p.cast::<Block<T>>().write(Block { tag, slot: value() });
        }
    }

    /// Pushes `registry[key]` (module set-up: the io library's `"FILE*"`).
    pub fn registry_field(&mut self, key: &CStr) -> Kind {
        // SAFETY: the registry is a table; getfield may raise in a Lua step.
        unsafe { ffi::lua_getfield(self.l, REGISTRY, key.as_ptr()) };
        self.kind(-1)
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

    /// Pops the value on top into the table at `t` under a new reference
    /// (`luaL_ref`: the table's own free list of small integers); the
    /// reference, or a negative number for nil.
    pub fn make_ref(&mut self, t: c_int) -> c_int {
        let t = self.abs(t);
        // SAFETY: t is a table (callers check); luaL_ref may raise in a step.
        unsafe { ffi::luaL_ref(self.l, t) }
    }

    /// Frees reference `r` of the table at `t` (`luaL_unref`).
    pub fn unref(&mut self, t: c_int, r: c_int) {
        let t = self.abs(t);
        // SAFETY: t is a table (callers check); luaL_unref may raise in a step.
        unsafe { ffi::luaL_unref(self.l, t, r) }
    }

    /// Pushes a message held in Rust memory as a Lua string.
    pub fn push_text(&mut self, t: &Text) {
        self.push_bytes(t.as_bytes())
    }

    /// Raises the value on top of the stack. Never returns.
    pub fn error(&mut self) -> c_int {
        // SAFETY: a Lua step owns nothing; the value to raise is on top.
        unsafe { ffi::lua_error(self.l) }
    }
}

/// A short text kept in plain bytes (no heap), so that a Lua step can take
/// it by value: a message, a `tostring` result. Longer texts are cut at a
/// character boundary.
#[derive(Clone, Copy)]
pub struct Text {
    buf: [u8; 1000],
    len: usize,
}

impl Text {
    pub fn new(s: &str) -> Text {
        let mut t = Text {
            buf: [0; 1000],
            len: 0,
        };
        let mut n = s.len().min(t.buf.len());
        while !s.is_char_boundary(n) {
            n -= 1;
        }
        t.buf[..n].copy_from_slice(&s.as_bytes()[..n]);
        t.len = n;
        t
    }

    pub fn as_bytes(&self) -> &[u8] {
        self.buf.get(..self.len).unwrap_or_default()
    }
}

impl Lua {
    /// Runs the Lua step `f(raw, a)` as a protected call on the top `nargs`
    /// values, leaving `nresults` results in their place. A Lua error (memory,
    /// a finalizer's, one the step raises) comes back as `Err(Rethrow)` with
    /// the error value on top. `a` may carry pointers to memory the caller
    /// owns and does not touch meanwhile (finalizers run by the step's
    /// allocations may call this module again, but cannot reach it).
    /// Needs two free stack slots.
    pub fn protect<A: Copy>(
        &mut self,
        nargs: c_int,
        nresults: c_int,
        f: fn(&mut Raw, A) -> c_int,
        a: A,
    ) -> Result<(), Error> {
        let step = Step::new(f, a);
        let job = Job {
            step: &step,
            check: JOB_CHECK,
        };
        // SAFETY: the dispatcher is fetched from the registry with calls that
        // never raise (a light userdata key, a raw get), pushed below the
        // arguments with a light userdata pointing at `job`, which outlives
        // the call. lua_pcall catches every error the step raises.
        let job_ptr = (&job as *const Job).cast::<c_void>();
        STARTING.with(|s| s.set(job_ptr));
        let rc = unsafe {
            ffi::lua_pushlightuserdata(self.l, dispatch_key());
            ffi::lua_rawget(self.l, REGISTRY);
            ffi::lua_insert(self.l, -(nargs + 1));
            ffi::lua_pushlightuserdata(self.l, job_ptr.cast_mut());
            ffi::lua_insert(self.l, -(nargs + 1));
            ffi::lua_pcall(self.l, nargs + 1, nresults, 0)
        };
        STARTING.with(|s| s.set(std::ptr::null()));
        if rc == 0 {
            Ok(())
        } else {
            Err(Error::Rethrow)
        }
    }

    /// Pushes a Lua string with the bytes of `s` (a protected step: making
    /// a string allocates).
    pub fn push_string(&mut self, s: &str) -> Result<(), Error> {
        fn push(raw: &mut Raw, (p, n): (*const u8, usize)) -> c_int {
            // SAFETY: p and n come from a &str that protect()'s caller keeps
            // alive and unchanged for the duration of the step.
            raw.push_bytes(unsafe { std::slice::from_raw_parts(p, n) });
            1
        }
        self.protect(0, 1, push, (s.as_ptr(), s.len()))
    }

    /// Makes sure `n` more slots can be pushed: `Ok(false)` if Lua cannot grow
    /// the stack that far. 5.3 and 5.4 never raise here; older versions
    /// raise when the reallocation fails, so there it is a protected call.
    pub fn reserve(&mut self, n: c_int) -> Result<bool, Error> {
        #[cfg(any(feature = "lua53", feature = "lua54"))]
        {
            // SAFETY: lua_checkstack runs the growth protected in 5.3 and 5.4.
            Ok(unsafe { ffi::lua_checkstack(self.l, n) } != 0)
        }
        #[cfg(not(any(feature = "lua53", feature = "lua54")))]
        {
            fn grow(raw: &mut Raw, n: c_int) -> c_int {
                let ok = raw.check_stack(n.saturating_add(4));
                raw.push_bool(ok);
                1
            }
            self.protect(0, 1, grow, n)?;
            let ok = self.boolean(-1);
            self.pop(1);
            // Again from this function's own frame: 5.1 and 5.2 record the
            // room in the running call (the step's, above), and their
            // garbage collector shrinks the stack down to what the calls
            // record. The stack is already that large, so this call grows
            // nothing and cannot raise.
            // SAFETY: see above; lua_checkstack only records the room here.
            Ok(ok && unsafe { ffi::lua_checkstack(self.l, n) } != 0)
        }
    }
}

/// What `protect` hands the dispatcher: the step, and a word that tells a
/// genuine job from a light userdata made up by Lua code (the dispatcher is
/// reachable through `debug.getregistry()`).
struct Job<'a> {
    step: &'a Step,
    check: usize,
}

const JOB_CHECK: usize = 0x5e1e_c7ab_1e00_0001;

thread_local! {
    /// The job `protect` is starting, so that the dispatcher runs only that one.
    static STARTING: std::cell::Cell<*const c_void> = const { std::cell::Cell::new(std::ptr::null()) };
}

static DISPATCH_KEY: u8 = 0;

fn dispatch_key() -> *mut c_void {
    (&DISPATCH_KEY as *const u8).cast_mut().cast()
}

/// The C function every protected step runs in: reads its job from the light
/// userdata in slot 1 and runs it. It owns nothing, so an error the step
/// raises unwinds (or longjmps) through it to `lua_pcall` harmlessly.
unsafe extern "C-unwind" fn dispatch(l: *mut ffi::lua_State) -> CRet {
    // SAFETY: slot 1 is read without trusting it: the pointer is used only
    // when it is the job protect() is starting on this thread right now.
    unsafe {
        let p = ffi::lua_touserdata(l, 1).cast_const();
        let expected = STARTING.with(|s| s.replace(std::ptr::null()));
        if p.is_null() || p != expected || (*p.cast::<Job>()).check != JOB_CHECK {
            ffi::lua_pushstring(l, c"select: internal function called from Lua".as_ptr());
            ffi::lua_error(l);
        }
        let step = *(*p.cast::<Job>()).step;
        ffi::lua_remove(l, 1);
        let mut raw = Raw::new(l);
        (step.run)(&mut raw, step.arg.as_ptr().cast(), step.f) as CRet
    }
}

/// Registers the dispatcher of protected steps in the registry (module set-up).
pub fn install_dispatcher(raw: &mut Raw) {
    // SAFETY: a Lua step may raise; the key is a light userdata.
    unsafe {
        ffi::lua_pushlightuserdata(raw.l, dispatch_key());
        ffi::lua_pushcclosure(raw.l, as_cfunction(dispatch), 0);
        ffi::lua_rawset(raw.l, REGISTRY);
    }
}

/// Runs a Rust function as the body of a Lua C function: the body under
/// `catch_unwind` (a panic becomes a Lua error), then, with every Rust value
/// of the body dropped, its tail step or the raise of its error.
pub fn call(l: *mut ffi::lua_State, f: impl FnOnce(&mut Lua) -> Ret) -> c_int {
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        let mut lua = Lua {
            l,
            _not_send: PhantomData,
        };
        f(&mut lua)
    }));
    let next = match outcome {
        Ok(Ok(next)) => next,
        Ok(Err(e)) => return raise(l, e),
        Err(payload) => {
            drop(payload);
            return raise(l, Error::Msg("select: internal error (Rust panic)".into()));
        }
    };
    match next {
        Next::Return(n) => n,
        // SAFETY: the step came from Step::new, which pairs f and arg.
        Next::Tail(step) => unsafe {
            (step.run)(&mut Raw::new(l), step.arg.as_ptr().cast(), step.f)
        },
    }
}

#[cold]
#[inline(never)]
fn raise(l: *mut ffi::lua_State, e: Error) -> c_int {
    let text = match e {
        Error::Msg(msg) => Some(Text::new(&msg)),
        Error::Rethrow => None,
    };
    // The message now lives in this frame's plain bytes: nothing owns heap
    // memory any more, so neither the push (which can raise) nor lua_error
    // skips a destructor.
    let mut raw = Raw::new(l);
    if let Some(t) = &text {
        raw.push_text(t);
    }
    raw.error()
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

/// What [`fd_probe`] found out about a value.
pub enum Probe {
    /// A Lua file handle: its descriptor, or `None` when it is closed.
    File(Option<i32>),
    /// The result of its `getfd` or `fileno` method, left on the stack.
    Method,
    /// Neither a file nor an object with such a method.
    Neither,
}

impl Lua {
    /// Finds out what the descriptor-like value at `i` is, in one protected
    /// step: a Lua file handle (read directly), or an object whose
    /// `getfd()`/`fileno()` is called (user code: it may raise, which comes
    /// back as `Err(Rethrow)`). Needs three free stack slots.
    ///
    /// `room` is how many free stack slots the caller needs above the value
    /// afterwards: the step's allocations may run a garbage-collection step
    /// that shrinks the stack (LuaJIT sizes it by what is in use), so the
    /// step grows it back before it returns.
    pub fn fd_probe(&mut self, i: c_int, room: c_int) -> Result<Probe, Error> {
        let i = self.abs(i);
        self.push_value(i);
        self.protect(1, 2, probe_step, room)?;
        let probe = match self.exact_integer(-2) {
            Some(0) => Probe::Neither,
            Some(1) => Probe::File(self.exact_integer(-1).map(|fd| fd as i32)),
            _ => {
                // The method's result stays on top for the caller.
                self.remove(-2);
                return Ok(Probe::Method);
            }
        };
        self.pop(2);
        Ok(probe)
    }
}

/// The size of the io library's handle block: `FILE **` on 5.1, `luaL_Stream
/// { FILE *f; lua_CFunction closef; }` on 5.2+, LuaJIT's `IOFileUD { FILE
/// *fp; uint32_t type; }` padded to 16 bytes.
#[cfg(not(any(
    feature = "lua52",
    feature = "lua53",
    feature = "lua54",
    feature = "luajit"
)))]
const FILE_BLOCK: usize = size_of::<*mut c_void>();
#[cfg(any(
    feature = "lua52",
    feature = "lua53",
    feature = "lua54",
    feature = "luajit"
))]
const FILE_BLOCK: usize = 2 * size_of::<*mut c_void>();

/// The step of `fd_probe`, on the value in slot 1: pushes `1, fd` (fd nil for a
/// closed file) for a Lua file, `2, result` after calling its `getfd` or
/// `fileno` method, or `0, nil`.
fn probe_step(raw: &mut Raw, room: c_int) -> c_int {
    let n = probe(raw);
    if room > 0 && !raw.check_stack(room + 4) {
        raw.push_str("stack overflow");
        return raw.error();
    }
    n
}

fn probe(raw: &mut Raw) -> c_int {
    if raw.kind(1) == Kind::Userdata {
        let is_file = raw.registry_field(c"FILE*") == Kind::Table && raw.has_metatable(1, -1);
        raw.pop(1);
        // A file is known by its metatable and by its block's size: the debug
        // library can give any userdata the io metatable, and reading some
        // other block as a FILE would crash.
        if is_file && raw.raw_len(1) == FILE_BLOCK {
            raw.push_int(1);
            match raw.file_descriptor(1) {
                Some(fd) => raw.push_int(fd as i64),
                None => raw.push_nil(),
            }
            return 2;
        }
    }
    for name in [c"getfd", c"fileno"] {
        // SAFETY: a Lua step may raise; getfield runs metamethods and the
        // call runs user code, whose errors reach protect() as Err.
        unsafe {
            ffi::lua_getfield(raw.l, 1, name.as_ptr());
            if ffi::lua_type(raw.l, -1) == ffi::LUA_TFUNCTION {
                ffi::lua_pushinteger(raw.l, 2);
                ffi::lua_insert(raw.l, -2);
                ffi::lua_pushvalue(raw.l, 1);
                ffi::lua_call(raw.l, 1, 1);
                return 2;
            }
            ffi::lua_settop(raw.l, 1);
        }
    }
    raw.push_int(0);
    raw.push_nil();
    2
}

impl Lua {
    /// The descriptor of the io library handle at `i` (known to be one, by
    /// metatable and block size): `None` when closed.
    fn file_descriptor(&self, i: c_int) -> Option<i32> {
        // SAFETY: the block is an io handle (checked by the caller); it
        // starts with the `FILE *` (see FILE_BLOCK), closed when NULL, or on
        // 5.2+ when closef is NULL. fileno only reads the stream's descriptor.
        unsafe {
            let block = ffi::lua_touserdata(self.l, i).cast::<*mut c_void>();
            if block.is_null() {
                return None;
            }
            let stream = *block;
            #[cfg(any(feature = "lua52", feature = "lua53", feature = "lua54"))]
            let closed = (*block.add(1)).is_null();
            #[cfg(not(any(feature = "lua52", feature = "lua53", feature = "lua54")))]
            let closed = stream.is_null();
            if closed || stream.is_null() {
                return None;
            }
            let fd = libc::fileno(stream.cast::<libc::FILE>());
            (fd >= 0).then_some(fd)
        }
    }
}

/// Entry point glue: runs the module's opener on the state `luaopen_select` got.
pub fn open(l: *mut ffi::lua_State, f: fn(&mut Lua) -> Ret) -> CRet {
    call(l, f) as CRet
}
