//! The native body of `select.compat.socket_select`: luasocket's
//! `socket.select`, the same arguments, results and errors, on `poll(2)` (so
//! with no `FD_SETSIZE` limit), and cheaper per entry than luasocket's own.
//!
//! What it reproduces is stated in `lua/select/compat.lua` and checked against
//! luasocket by `spec/compat_spec.lua`. In short: each entry of `recvt` and
//! `sendt` (read up to the first nil, with metamethods) is asked `getfd()`;
//! entries without the method or without a valid descriptor are skipped; an
//! entry of `recvt` whose `dirty()` is true is readable at once, first in the
//! result, and the wait becomes a poll; the results hold the ready objects in
//! ascending descriptor order (the last object given for a descriptor stands
//! for it), each also mapped to its index as a float; a timeout gives two empty
//! tables and `"timeout"`; a failing system call raises `select failed`.
//!
//! Where luasocket looks the two methods up with `lua_gettable` per entry (and
//! calls `getfd` twice per entry of `recvt`), this looks them up once per
//! metatable in a call: for a userdata whose metatable's `__index` is a table,
//! `v.getfd` does not depend on `v`, so the first lookup serves every later
//! object with the same metatable (luasocket's sockets share a few).
//!
//! # Error discipline
//!
//! Reading entries runs user code (metamethods, `getfd`, `dirty`), which may
//! raise, and every allocation may raise. So this is a raw C function, not run
//! through `stack::call`: no `catch_unwind` around it, and no Rust value with a
//! destructor in its frame, ever. Per-call arrays live in a Lua userdata (the
//! scratch buffer, kept between calls as upvalue 1); objects in a Lua table.
//! Spots where an API call may raise are marked `// may raise`.

use std::ffi::c_int;
use std::time::Duration;

use mlua::ffi;

use super::stack::{as_cfunction, CRet};
use crate::core::deadline::{retry_eintr, Deadline};
use crate::core::pollset::sys_poll;

/// `socket_select` as a Lua C function. Upvalues: 1 the scratch buffer (or
/// nil), 2 `"getfd"`, 3 `"dirty"`, 4 `"__index"`.
pub const SOCKET_SELECT: ffi::lua_CFunction = as_cfunction(socket_select);

/// Pushes the C closure with its upvalues (module set-up).
pub fn push(lua: &mut super::stack::Raw) {
    lua.push_nil();
    lua.push_str("getfd");
    lua.push_str("dirty");
    lua.push_str("__index");
    lua.push_cfn(SOCKET_SELECT, 4);
}

/// An entry with a descriptor: `idx` is its position in both lists together
/// (0-based), its object being `objs[idx + 1]`.
#[repr(C)]
#[derive(Clone, Copy)]
struct Entry {
    fd: i32,
    idx: u32,
    flags: u32,
}

const WRITE: u32 = 1;
const DIRTY: u32 = 2;

/// The scratch buffer's header; then `cap` entries, `cap` pollfds and `cap`
/// dirty indices.
#[repr(C)]
struct Header {
    in_use: u32,
    cap: u32,
}

const HEADER: usize = std::mem::size_of::<Header>();
const ENTRY: usize = std::mem::size_of::<Entry>();
const PFD: usize = std::mem::size_of::<libc::pollfd>();

/// luasocket's `(int)` cast of the seconds overflows from here on: its select
/// then fails.
const MAX_SECONDS: f64 = 2147483648.0;

/// Descriptors from getfd are taken below this (luasocket casts to int).
const MAX_FD: f64 = 2147483648.0;

fn buffer_size(cap: usize) -> usize {
    HEADER + cap * (ENTRY + PFD + 4)
}

/// Raw views of a scratch buffer.
#[derive(Clone, Copy)]
struct Scratch {
    head: *mut Header,
}

impl Scratch {
    unsafe fn cap(self) -> usize {
        (*self.head).cap as usize
    }
    unsafe fn entries(self) -> *mut Entry {
        self.head.cast::<u8>().add(HEADER).cast()
    }
    unsafe fn pfds(self) -> *mut libc::pollfd {
        self.head
            .cast::<u8>()
            .add(HEADER + self.cap() * ENTRY)
            .cast()
    }
    unsafe fn dirty(self) -> *mut u32 {
        self.head
            .cast::<u8>()
            .add(HEADER + self.cap() * (ENTRY + PFD))
            .cast()
    }
}

/// Pushes a new scratch buffer of `cap` entries, marked in use, and makes it
/// upvalue 1. May raise (allocation).
unsafe fn new_scratch(l: *mut ffi::lua_State, cap: usize) -> Scratch {
    #[cfg(feature = "lua54")]
    let p = ffi::lua_newuserdatauv(l, buffer_size(cap), 0); // may raise
    #[cfg(not(feature = "lua54"))]
    let p = ffi::lua_newuserdata(l, buffer_size(cap)); // may raise
    let head = p.cast::<Header>();
    head.write(Header {
        in_use: 1,
        cap: cap as u32,
    });
    ffi::lua_pushvalue(l, -1);
    ffi::lua_replace(l, ffi::lua_upvalueindex(1));
    Scratch { head }
}

/// Stack slots of the call, after its three arguments.
const S_BUF: c_int = 4; // the scratch buffer
const S_OBJS: c_int = 5; // objs[idx + 1] = object
const S_MT: c_int = 6; // the cached metatable (or nil)
const S_GETFD: c_int = 7; // its getfd
const S_DIRTY: c_int = 8; // its dirty, once looked up

/// What the cache holds about the metatable in `S_MT`.
struct Cache {
    valid: bool,
    dirty_known: bool,
}

/// Raises `msg` (a static string: nothing to drop). The scratch buffer is
/// released first.
unsafe fn fail(l: *mut ffi::lua_State, s: Option<Scratch>, msg: &'static str) -> ! {
    if let Some(s) = s {
        (*s.head).in_use = 0;
    }
    ffi::lua_pushlstring(l, msg.as_ptr().cast(), msg.len()); // may raise
    ffi::lua_error(l);
}

/// `bad argument #n to 'select' (T expected, got U)`, built on the Lua stack.
unsafe fn type_error(l: *mut ffi::lua_State, arg: c_int, expected: &'static str) -> ! {
    let got = ffi::lua_typename(l, ffi::lua_type(l, arg));
    let head = match arg {
        1 => "bad argument #1 to 'select' (",
        2 => "bad argument #2 to 'select' (",
        _ => "bad argument #3 to 'select' (",
    };
    ffi::lua_pushlstring(l, head.as_ptr().cast(), head.len()); // may raise
    ffi::lua_pushlstring(l, expected.as_ptr().cast(), expected.len()); // may raise
    ffi::lua_pushstring(l, got); // may raise
    ffi::lua_pushlstring(l, c")".as_ptr(), 1); // may raise
    ffi::lua_concat(l, 4); // may raise
    ffi::lua_error(l);
}

/// Pushes `v[name]` for the object at `v` (absolute index), `name` being
/// upvalue `key` (`S_GETFD`'s or `S_DIRTY`'s name), using and filling the
/// per-metatable cache. Runs metamethods: may raise.
unsafe fn method(l: *mut ffi::lua_State, v: c_int, key: c_int, slot: c_int, cache: &mut Cache) {
    if ffi::lua_type(l, v) == ffi::LUA_TUSERDATA && ffi::lua_getmetatable(l, v) != 0 {
        if cache.valid && ffi::lua_rawequal(l, -1, S_MT) != 0 {
            ffi::lua_pop(l, 1);
            if slot == S_DIRTY && !cache.dirty_known {
                ffi::lua_pushvalue(l, ffi::lua_upvalueindex(key));
                ffi::lua_gettable(l, v); // may raise
                ffi::lua_pushvalue(l, -1);
                ffi::lua_replace(l, S_DIRTY);
                cache.dirty_known = true;
                return;
            }
            ffi::lua_pushvalue(l, slot);
            return;
        }
        // A metatable whose __index is a table: v[name] is that table's
        // name, whatever v is, so the result can be kept for the call.
        ffi::lua_pushvalue(l, ffi::lua_upvalueindex(4));
        ffi::lua_rawget(l, -2);
        let cacheable = ffi::lua_type(l, -1) == ffi::LUA_TTABLE;
        ffi::lua_pop(l, 1);
        if cacheable {
            ffi::lua_replace(l, S_MT);
            ffi::lua_pushnil(l);
            ffi::lua_replace(l, S_GETFD);
            ffi::lua_pushnil(l);
            ffi::lua_replace(l, S_DIRTY);
            cache.valid = true;
            cache.dirty_known = false;
            ffi::lua_pushvalue(l, ffi::lua_upvalueindex(key));
            ffi::lua_gettable(l, v); // may raise
            ffi::lua_pushvalue(l, -1);
            ffi::lua_replace(l, slot);
            if slot == S_DIRTY {
                cache.dirty_known = true;
            }
            return;
        }
        ffi::lua_pop(l, 1);
    }
    ffi::lua_pushvalue(l, ffi::lua_upvalueindex(key));
    ffi::lua_gettable(l, v); // may raise ("attempt to index a T value")
}

/// Reads list `arg` (a table) into the scratch buffer from entry `*n` on.
/// Returns the (possibly new, larger) buffer.
#[allow(clippy::too_many_arguments)]
unsafe fn collect(
    l: *mut ffi::lua_State,
    arg: c_int,
    mut s: Scratch,
    n: &mut usize,
    next_idx: &mut u32,
    ndirty: &mut usize,
    cache: &mut Cache,
) -> Scratch {
    let write = arg == 2;
    let mut i: ffi::lua_Integer = 1;
    loop {
        ffi::lua_pushinteger(l, i);
        ffi::lua_gettable(l, arg); // may raise (t[i] runs __index)
        if ffi::lua_type(l, -1) == ffi::LUA_TNIL {
            ffi::lua_pop(l, 1);
            break;
        }
        let v = ffi::lua_gettop(l);
        method(l, v, 2, S_GETFD, cache);
        let mut fd = -1i32;
        if ffi::lua_type(l, -1) != ffi::LUA_TNIL {
            ffi::lua_pushvalue(l, v);
            ffi::lua_call(l, 1, 1); // may raise (user code)
            if ffi::lua_isnumber(l, -1) != 0 {
                let x = ffi::lua_tonumber(l, -1);
                // NaN fails both comparisons; luasocket's (int) cast truncates.
                if (0.0..MAX_FD).contains(&x) {
                    fd = x as i32;
                }
            }
        }
        ffi::lua_pop(l, 1);
        if fd >= 0 {
            if *n == s.cap() {
                s = grow(l, s, *n, *ndirty);
            }
            let idx = *next_idx;
            *next_idx += 1;
            ffi::lua_pushvalue(l, v);
            ffi::lua_rawseti(l, S_OBJS, idx as ffi::lua_Integer + 1); // may raise
            let mut flags = if write { WRITE } else { 0 };
            if !write {
                method(l, v, 3, S_DIRTY, cache);
                if ffi::lua_type(l, -1) != ffi::LUA_TNIL {
                    ffi::lua_pushvalue(l, v);
                    ffi::lua_call(l, 1, 1); // may raise (user code)
                    if ffi::lua_toboolean(l, -1) != 0 {
                        flags |= DIRTY;
                        s.dirty().add(*ndirty).write(idx);
                        *ndirty += 1;
                    }
                }
                ffi::lua_pop(l, 1);
            }
            s.entries().add(*n).write(Entry { fd, idx, flags });
            *n += 1;
        }
        ffi::lua_pop(l, 1); // v
        i += 1;
    }
    s
}

/// A scratch buffer twice as large holding the first `n` entries and `ndirty`
/// dirty indices of `s`; it replaces `s` in its stack slot.
unsafe fn grow(l: *mut ffi::lua_State, s: Scratch, n: usize, ndirty: usize) -> Scratch {
    let t = new_scratch(l, s.cap() * 2); // may raise
    std::ptr::copy_nonoverlapping(s.entries(), t.entries(), n);
    std::ptr::copy_nonoverlapping(s.dirty(), t.dirty(), ndirty);
    ffi::lua_replace(l, S_BUF);
    t
}

/// Pushes a new table of the ready objects: first the `ndirty` dirty ones (if
/// any), then those of the groups ready for `want`, each also mapped to its
/// index as a float. May raise (allocation).
unsafe fn result(
    l: *mut ffi::lua_State,
    s: Scratch,
    groups: usize,
    ndirty: usize,
    ready: usize,
    want: libc::c_short,
) {
    let total = ndirty + ready;
    let size = total.min(c_int::MAX as usize) as c_int;
    ffi::lua_createtable(l, size, size); // may raise
    let t = ffi::lua_gettop(l);
    let mut k: ffi::lua_Integer = 0;
    for j in 0..ndirty {
        k += 1;
        ffi::lua_rawgeti(l, S_OBJS, *s.dirty().add(j) as ffi::lua_Integer + 1);
        ffi::lua_rawseti(l, t, k); // may raise
    }
    if ready > 0 {
        for g in 0..groups {
            let p = *s.pfds().add(g);
            if p.revents & want != 0 {
                k += 1;
                let idx = (*s.entries().add(g)).idx;
                ffi::lua_rawgeti(l, S_OBJS, idx as ffi::lua_Integer + 1);
                ffi::lua_rawseti(l, t, k); // may raise
            }
        }
    }
    for j in 1..=k {
        ffi::lua_rawgeti(l, t, j);
        ffi::lua_pushnumber(l, j as ffi::lua_Number);
        ffi::lua_rawset(l, t); // may raise
    }
}

unsafe extern "C-unwind" fn socket_select(l: *mut ffi::lua_State) -> CRet {
    // SAFETY (whole function): called by Lua as a C function with upvalues
    // set by `push`; every index used is one of the fixed slots above or a
    // value this function pushed; the scratch buffer is a userdata anchored in
    // slot S_BUF (and upvalue 1) for the whole call, so its memory stays put.
    // No value in this frame or the helpers' frames has a destructor.
    unsafe {
        ffi::lua_settop(l, 3);
        // The timeout first, as luasocket does (luaL_optnumber).
        let mut t = -1.0f64;
        if ffi::lua_type(l, 3) != ffi::LUA_TNIL {
            if ffi::lua_isnumber(l, 3) == 0 {
                type_error(l, 3, "number expected, got ");
            }
            t = ffi::lua_tonumber(l, 3);
        }
        if !matches!(ffi::lua_type(l, 1), ffi::LUA_TNIL | ffi::LUA_TTABLE) {
            type_error(l, 1, "table expected, got ");
        }
        let mut est = 16usize;
        for arg in [1, 2] {
            if ffi::lua_type(l, arg) == ffi::LUA_TTABLE {
                est += ffi::lua_rawlen(l, arg);
            }
        }
        // The scratch buffer: the cached one, unless a call further up the
        // stack (from a getfd method) holds it, or it is too small.
        ffi::lua_pushvalue(l, ffi::lua_upvalueindex(1));
        let p = ffi::lua_touserdata(l, -1).cast::<Header>();
        let mut s = if !p.is_null() && (*p).in_use == 0 && (*p).cap as usize >= est {
            (*p).in_use = 1;
            Scratch { head: p }
        } else {
            ffi::lua_pop(l, 1);
            new_scratch(l, est.max(64)) // may raise
        };
        ffi::lua_createtable(l, est.min(c_int::MAX as usize) as c_int, 0); // may raise
        ffi::lua_pushnil(l);
        ffi::lua_pushnil(l);
        ffi::lua_pushnil(l);

        let mut cache = Cache {
            valid: false,
            dirty_known: false,
        };
        let (mut n, mut next_idx, mut ndirty) = (0usize, 0u32, 0usize);
        if ffi::lua_type(l, 1) == ffi::LUA_TTABLE {
            s = collect(l, 1, s, &mut n, &mut next_idx, &mut ndirty, &mut cache);
        }
        match ffi::lua_type(l, 2) {
            ffi::LUA_TNIL => {}
            ffi::LUA_TTABLE => {
                s = collect(l, 2, s, &mut n, &mut next_idx, &mut ndirty, &mut cache);
            }
            _ => {
                (*s.head).in_use = 0;
                type_error(l, 2, "table expected, got ");
            }
        }

        // Group the entries by descriptor (ascending, as luasocket returns
        // them): one pollfd per descriptor, standing for its last object.
        let entries = std::slice::from_raw_parts_mut(s.entries(), n);
        entries.sort_unstable_by_key(|e| (e.fd, e.idx));
        let mut groups = 0usize;
        let mut i = 0usize;
        while i < n {
            let fd = entries[i].fd;
            let (mut read, mut write, mut skip, mut last) = (false, false, false, 0u32);
            while i < n && entries[i].fd == fd {
                let e = entries[i];
                if e.flags & WRITE != 0 {
                    write = true;
                } else {
                    read = true;
                    skip |= e.flags & DIRTY != 0;
                }
                last = e.idx;
                i += 1;
            }
            let mut events = 0;
            if read && !skip {
                events |= libc::POLLIN;
            }
            if write {
                events |= libc::POLLOUT;
            }
            if events != 0 {
                entries[groups].idx = last;
                s.pfds().add(groups).write(libc::pollfd {
                    fd,
                    events,
                    revents: 0,
                });
                groups += 1;
            }
        }

        if ndirty > 0 {
            t = 0.0;
        }
        let deadline = if t.is_nan() {
            Deadline::Immediate // luasocket's MAX(NaN, 0.0): a poll
        } else if t < 0.0 {
            Deadline::Forever
        } else if t >= MAX_SECONDS {
            fail(l, Some(s), "select failed");
        } else {
            Deadline::after(Duration::try_from_secs_f64(t).ok())
        };
        let pfds = std::slice::from_raw_parts_mut(s.pfds(), groups);
        let polled = retry_eintr(|| sys_poll(pfds, deadline));
        let failed = match polled {
            Err(_) => true,
            Ok(_) => pfds.iter().any(|p| p.revents & libc::POLLNVAL != 0),
        };
        let read_bits = libc::POLLIN | libc::POLLHUP | libc::POLLERR;
        let write_bits = libc::POLLOUT | libc::POLLERR;
        if failed {
            if ndirty == 0 {
                fail(l, Some(s), "select failed");
            }
            // luasocket then reads back the sets the failed call left as
            // they were: every descriptor waited for counts as ready.
            for p in pfds.iter_mut() {
                p.revents = p.events;
            }
        }
        let (mut nr, mut nw) = (0usize, 0usize);
        for p in pfds.iter_mut() {
            // Keep only what select(2) counts, per direction asked for.
            let mut r = 0;
            if p.events & libc::POLLIN != 0 && p.revents & read_bits != 0 {
                r |= libc::POLLIN;
                nr += 1;
            }
            if p.events & libc::POLLOUT != 0 && p.revents & write_bits != 0 {
                r |= libc::POLLOUT;
                nw += 1;
            }
            p.revents = r;
        }
        (*s.head).in_use = 0;
        if nr == 0 && nw == 0 && ndirty == 0 {
            ffi::lua_createtable(l, 0, 0); // may raise
            ffi::lua_createtable(l, 0, 0); // may raise
            ffi::lua_pushlstring(l, c"timeout".as_ptr(), 7); // may raise
            return 3;
        }
        result(l, s, groups, ndirty, nr, libc::POLLIN);
        result(l, s, groups, 0, nw, libc::POLLOUT);
        2
    }
}
