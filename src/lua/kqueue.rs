//! `select.kqueue()`, `select.kqueue.fromfd(fd)` and `kq:control(...)`.
//!
//! udata: a change that carries a udata stores the value in the queue's
//! udata store (a table, the userdata's uservalue, shared by every object on
//! the same queue) under a token from the store's own free list (`luaL_ref`:
//! small integers, reused once released, so no counter ever runs out); the
//! core stores only the token, and reports tokens it no longer holds so the
//! store drops them. The store is reachable only through the objects, so the
//! GC can collect cycles through it.
//!
//! `control` is check, collect, call, return: the arguments and the
//! changelist are read in Rust; one protected step stores the udata values
//! and writes their tokens into the changes; the core runs; one protected
//! step makes the result kevents and releases the tokens the core let go.

use std::ffi::c_int;

use super::args::{int_arg, os_error};
use super::class::{self, close_object, gc_object, push_object, this, tostring, ClassSpec, EXTRA};
use super::fdarg::fd_arg;
use super::kevent::{self, make_kevent};
use super::results::{self, no_memory};
use super::stack::{arg_error, cfn, ret, upvalue, Error, Kind, Lua, Num, Raw, Ret, Step, REGISTRY};
use super::timeout::{self, Negative};
use crate::core::deadline::Deadline;
use crate::core::error::OsResult;
use crate::core::kqueue::{KEvent, Kqueue};

pub struct KqueueObject {
    kq: Kqueue,
    changes: Vec<KEvent>,
    out: Vec<KEvent>,
    released: Vec<u64>,
}

pub static CLASS: ClassSpec = ClassSpec {
    name: c"select.kqueue",
    what: "kqueue",
    methods: &[
        (c"control", cfn(control)),
        (c"close", cfn(close)),
        (c"fileno", cfn(fileno)),
    ],
    meta: &[
        (c"__gc", cfn(gc)),
        (c"__tostring", cfn(to_string)),
        #[cfg(feature = "lua54")]
        (c"__close", cfn(close)),
    ],
    closable: true,
};

/// The kevent metatable: the extra upvalue of every kqueue function.
const KEVENT_MT: c_int = EXTRA;

/// Registry key of the weak table queue id -> udata store.
const STORES: &std::ffi::CStr = c"select.kqueue.udata-stores";

/// Pushes a new kqueue object around what `make` opens, with its queue's
/// udata store as uservalue.
fn wrap(lua: &mut Lua, make: impl FnOnce() -> OsResult<Kqueue>) -> Ret {
    let made = push_object(lua, &CLASS, || {
        make().map(|kq| KqueueObject {
            kq,
            changes: Vec::new(),
            out: Vec::new(),
            released: Vec::new(),
        })
    })?;
    if let Err(e) = made {
        return os_error(lua, e);
    }
    let id = match lua.userdata::<KqueueObject>(-1, class::tag(&CLASS)) {
        Some(Some(obj)) => obj.kq.queue_id(),
        _ => 0,
    };
    lua.push_value(-1);
    lua.protect(1, 0, attach_store, id)?;
    ret(1)
}

/// Step: gives the kqueue object in slot 1 the udata store of queue `id`,
/// creating it (and the weak registry table that finds it for `fromfd`) on
/// first use.
fn attach_store(lua: &mut Raw, id: u64) -> c_int {
    if lua.raw_get_field(REGISTRY, STORES) != Kind::Table {
        lua.pop(1);
        lua.new_table(0, 4);
        lua.new_table(0, 1);
        lua.push_str("v");
        lua.raw_set_field(-2, c"__mode");
        lua.set_metatable(-2);
        lua.push_value(-1);
        lua.raw_set_field(REGISTRY, STORES);
    }
    let stores = lua.abs(-1);
    let key = (id % (i32::MAX as u64)) as i64 + 1;
    if lua.raw_geti(stores, key) != Kind::Table {
        lua.pop(1);
        lua.new_table(0, 0);
        lua.push_value(-1);
        lua.raw_seti(stores, key);
    }
    lua.set_uservalue(1);
    0
}

/// `select.kqueue()`, through the `select.kqueue` table's `__call`.
pub fn new(lua: &mut Lua) -> Ret {
    wrap(lua, Kqueue::new)
}

/// `select.kqueue.fromfd(fd)`: a second object on the same queue.
pub fn fromfd(lua: &mut Lua) -> Ret {
    let fd = fd_arg(lua, 1, "fromfd", 1)?;
    wrap(lua, || Kqueue::from_fd(fd))
}

fn usable<'a>(lua: &'a mut Lua, func: &str) -> Result<&'a mut KqueueObject, Error> {
    let obj = this::<KqueueObject>(lua, &CLASS, func)?;
    if obj.kq.is_forked() {
        return Err(Error::Msg(
            "kqueue object was inherited across fork() and cannot be used in the child".into(),
        ));
    }
    Ok(obj)
}

fn control(lua: &mut Lua) -> Ret {
    let top = lua.top();
    // Self first, as Python binds the method before it looks at arguments.
    // Its change buffer is borrowed for the call (nothing below runs user
    // code before `collect`; an early error just drops the buffer).
    let mut changes = std::mem::take(&mut usable(lua, "control")?.changes);
    let kind = lua.kind(2);
    if !matches!(kind, Kind::Table | Kind::Nil | Kind::None) {
        return arg_error(
            "control",
            1,
            format!(
                "changelist must be a table or nil, got {}",
                lua.type_name(2)
            ),
        );
    }
    let maxevents = match lua.number(3) {
        // The usual call: an integer in range, checked once.
        Some(Num::Int(n)) if (0..=i32::MAX as i64).contains(&n) => n as usize,
        n => match n.and_then(|n| n.exact_int()) {
            Some(n) if n < 0 => {
                return arg_error(
                    "control",
                    2,
                    format!("maxevents must be 0 or positive, got {n}"),
                )
            }
            _ => int_arg(lua, 3, "control", 2, 0, i32::MAX as i64, None)? as usize,
        },
    };
    // kq:control(changes, maxevents) waits forever: nothing more to check.
    let deadline = if top < 4 {
        Deadline::Forever
    } else {
        timeout::seconds(
            lua,
            4,
            "control",
            3,
            Negative::Reject("timeout must be positive or nil"),
        )?
    };
    let results = if top < 5 {
        None
    } else {
        results::out_arg(lua, 5, "control", 4)?
    };
    // Slots 1..5 are the arguments (absent ones nil); slot 6 is for the
    // udata store, fetched when a change or an event needs it.
    lua.set_top(5);
    let collected = collect(lua, &mut changes, kind == Kind::Table);
    let result = collected.and_then(|()| run(lua, &changes, maxevents, deadline, results));
    if let Some(Some(obj)) = lua.userdata::<KqueueObject>(1, class::tag(&CLASS)) {
        changes.clear();
        obj.changes = keep(changes);
    }
    result
}

/// Reads the changelist (slot 2) into `changes`, then stores the udata of
/// those that carry one and gives them its token.
fn collect(lua: &mut Lua, changes: &mut Vec<KEvent>, any: bool) -> Result<(), Error> {
    changes.clear();
    if !any {
        return Ok(());
    }
    let n = lua.raw_len(2);
    if changes.try_reserve(n).is_err() {
        return Err(no_memory());
    }
    let mut with_udata = false;
    for i in 1..=n {
        lua.raw_geti(2, i as i64);
        let Some((mut ev, has_udata)) = kevent::get(lua, -1) else {
            let got = lua.type_name(-1);
            return arg_error(
                "control",
                1,
                format!("changelist[{i}] must be a select.kevent, got {got}"),
            );
        };
        lua.pop(1);
        // A marker for the step below; the token replaces it.
        ev.udata = if has_udata { MARK } else { 0 };
        with_udata |= has_udata;
        changes.push(ev);
    }
    if with_udata {
        fetch_store(lua);
        store_table(lua)?;
        lua.push_value(2);
        lua.push_value(6);
        let arg = (changes.as_mut_ptr(), changes.len());
        if let Err(e) = lua.protect(2, 0, store_udata, arg) {
            // Tokens handed out before the error go back to the store (a
            // second failure here leaves them to the store's collection).
            let tokens: Vec<u64> = changes.iter().map(|c| c.udata).collect();
            lua.push_value(6);
            if lua
                .protect(1, 0, release, (tokens.as_ptr(), tokens.len()))
                .is_err()
            {
                lua.pop(1);
            }
            return Err(e);
        }
    }
    Ok(())
}

/// Marks a change whose udata `store_udata` must store.
const MARK: u64 = u64::MAX;

/// Step: drops the given tokens from the store in slot 1.
fn release(lua: &mut Raw, (p, n): (*const u64, usize)) -> c_int {
    // SAFETY: p and n come from a slice the caller owns for the step.
    let tokens = unsafe { std::slice::from_raw_parts(p, n) };
    unref_all(lua, 1, tokens);
    0
}

/// Drops the tokens (those a `luaL_ref` could have made) from the store at `t`.
fn unref_all(lua: &mut Raw, t: c_int, tokens: &[u64]) {
    for &token in tokens {
        if let Ok(r) = c_int::try_from(token) {
            if r > 0 {
                lua.unref(t, r);
            }
        }
    }
}

/// Puts the udata store in slot 6, once (`control` set the top to 5).
fn fetch_store(lua: &mut Lua) {
    if lua.top() == 5 {
        lua.get_uservalue(1);
    }
}

/// The udata store (slot 6) must be a table: the debug library can replace
/// an object's uservalue.
fn store_table(lua: &Lua) -> Result<(), Error> {
    if lua.kind(6) == Kind::Table {
        Ok(())
    } else {
        Err(Error::Msg(
            "kqueue udata store is missing (uservalue replaced)".into(),
        ))
    }
}

/// Step: for each change marked as carrying a udata (`MARK`), stores the
/// udata of the changelist's kevent (slot 1) in the store (slot 2) and puts
/// its token in the change. A finalizer run by the allocations here may
/// change the changelist: an entry that is no longer a kevent with a udata
/// then carries none.
fn store_udata(lua: &mut Raw, (p, n): (*mut KEvent, usize)) -> c_int {
    // SAFETY: p and n come from the Vec that collect() owns and does not
    // touch until this protected step returns.
    let changes = unsafe { std::slice::from_raw_parts_mut(p, n) };
    for (i, ev) in changes.iter_mut().enumerate() {
        if ev.udata != MARK {
            continue;
        }
        ev.udata = 0;
        lua.raw_geti(1, i as i64 + 1);
        if let Some((_, true)) = kevent::get(lua, -1) {
            kevent::push_udata(lua, -1, true);
            ev.udata = lua.make_ref(2).max(0) as u64;
        }
        lua.set_top(2);
    }
    0
}

/// Runs the core's control with the collected changes and hands back the
/// events (or `nil, msg, errno`), releasing the tokens the core let go.
fn run(
    lua: &mut Lua,
    changes: &[KEvent],
    maxevents: usize,
    deadline: Deadline,
    results: Option<c_int>,
) -> Ret {
    // Found again: collect's step may have run finalizers (which may close it).
    let obj = this::<KqueueObject>(lua, &CLASS, "control")?;
    let mut out = std::mem::take(&mut obj.out);
    let mut released = std::mem::take(&mut obj.released);
    released.clear();
    let result = obj
        .kq
        .control_releasing(changes, &mut out, &mut released, maxevents, deadline);
    let needs_store = !released.is_empty() || out.iter().any(|ev| ev.udata != 0);
    let idle = out.is_empty() && released.is_empty();
    if result.is_err() {
        out.clear();
    }
    // Back in the object, where the tail reads them.
    obj.out = out;
    obj.released = released;
    if needs_store {
        fetch_store(lua);
        store_table(lua)?;
    }
    if let Err(e) = result {
        // The tokens the core let go leave the store before the error.
        if let Some(obj) = slot_object(lua).filter(|o| !o.released.is_empty()) {
            let mut taken = std::mem::take(&mut obj.released);
            lua.push_value(6);
            let done = lua.protect(1, 0, release, (taken.as_ptr(), taken.len()));
            taken.clear();
            if let Some(obj) = slot_object(lua) {
                obj.released = keep(taken);
            }
            done?;
        }
        return os_error(lua, e);
    }
    match results {
        None if idle => Step::tail(results::new_table, ()),
        Some(t) if idle && lua.raw_len(t) == 0 => {
            results::return_table(lua, t);
            ret(1)
        }
        _ => {
            let (n, nreleased) =
                slot_object(lua).map_or((0, 0), |o| (o.out.len(), o.released.len()));
            Step::tail(
                deliver,
                Deliver {
                    t: results.unwrap_or(0),
                    n,
                    nreleased,
                    has_store: needs_store,
                },
            )
        }
    }
}

/// The kqueue object in slot 1, if it is still one (open or closed).
fn slot_object(lua: &mut Lua) -> Option<&mut KqueueObject> {
    lua.userdata::<KqueueObject>(1, class::tag(&CLASS))
        .and_then(|s| s.as_mut())
}

/// What the `deliver` tail needs to know.
#[derive(Clone, Copy)]
struct Deliver {
    /// The results table's slot in the reuse form, or 0.
    t: c_int,
    /// Events and released tokens the object held when the method ended.
    n: usize,
    nreleased: usize,
    /// Whether slot 6 holds the udata store (some token is involved).
    has_store: bool,
}

/// Tail: the result kevents, read from the object's `out` (found again
/// after every allocation: a finalizer may use the same queue meanwhile),
/// with their udata from the store (slot 6), into a new array or the
/// results table; then the released tokens leave the store, after every
/// event that carries one was made.
fn deliver(lua: &mut Raw, d: Deliver) -> c_int {
    let (store, mt) = (6, upvalue(KEVENT_MT));
    let t = if d.t != 0 {
        d.t
    } else {
        lua.new_table(d.n, 0);
        lua.top()
    };
    let mut k = 0;
    while k < d.n {
        // Copied out before the allocations that make its kevent.
        let Some(mut ev) = slot_object(lua).and_then(|o| o.out.get(k).copied()) else {
            break;
        };
        let key = k as i64 + 1;
        let token = std::mem::take(&mut ev.udata);
        if token != 0 && d.has_store {
            lua.raw_geti(store, token.min(i32::MAX as u64) as i64);
        } else {
            lua.push_nil();
        }
        let udata = lua.top();
        let reused = d.t != 0 && {
            lua.raw_geti(t, key);
            let ok = kevent::refill(lua, -1, ev, udata);
            lua.pop(1);
            ok
        };
        if !reused {
            make_kevent(lua, ev, mt, udata);
            lua.raw_seti(t, key);
        }
        lua.pop(1);
        k += 1;
    }
    if d.t != 0 {
        results::clear_from(lua, t, k);
    }
    if d.has_store {
        for i in 0..d.nreleased {
            let Some(token) = slot_object(lua).and_then(|o| o.released.get(i).copied()) else {
                break;
            };
            unref_all(lua, store, &[token]);
        }
    }
    if let Some(o) = slot_object(lua) {
        o.out = keep(std::mem::take(&mut o.out));
        o.released.clear();
    }
    results::return_table(lua, t);
    1
}

/// A buffer to keep for the next call, so that a steady loop allocates
/// nothing; past `KEEP` entries it is dropped instead: one changelist that
/// registers thousands of descriptors at once would otherwise hold 40 bytes
/// per change for the life of the queue.
fn keep<T>(v: Vec<T>) -> Vec<T> {
    const KEEP: usize = 1024;
    if v.capacity() > KEEP {
        Vec::new()
    } else {
        v
    }
}

fn close(lua: &mut Lua) -> Ret {
    if close_object::<KqueueObject>(lua, &CLASS)? {
        // This object no longer holds the udata store; other objects on the
        // same queue still do.
        fn drop_store(lua: &mut Raw, (): ()) -> c_int {
            lua.new_table(0, 0);
            lua.set_uservalue(1);
            0
        }
        lua.set_top(1);
        return Step::tail(drop_store, ());
    }
    ret(0)
}

fn fileno(lua: &mut Lua) -> Ret {
    let fd = usable(lua, "fileno")?.kq.fileno();
    lua.push_int(fd as i64);
    ret(1)
}

fn gc(lua: &mut Lua) -> Ret {
    gc_object::<KqueueObject>(lua, &CLASS);
    ret(0)
}

fn to_string(lua: &mut Lua) -> Ret {
    tostring(lua, &CLASS)?;
    ret(1)
}
