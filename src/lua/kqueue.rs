//! `select.kqueue()`, `select.kqueue.fromfd(fd)` and `kq:control(...)`.
//!
//! udata travels as a token of the queue's udata store (`udata.rs`).
//!
//! `control` is check, collect, call, return: the arguments and the
//! changelist are read in Rust; one protected step stores the udata values
//! and writes their tokens into the changes; the core runs; the call's tail
//! makes the result kevents and releases the tokens the core let go.

use std::ffi::c_int;

use super::args::{int_arg, os_error};
use super::class::{self, close_object, gc_object, push_object, this, tostring, ClassSpec, EXTRA};
use super::fdarg::fd_arg;
use super::kevent::{self, make_kevent};
use super::results::{self, no_memory};
use super::stack::{arg_error, cfn, ret, upvalue, Error, Kind, Lua, Raw, Ret, Step};
use super::timeout::{self, Negative};
use super::udata::Store;
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
    lua.protect(1, 0, Store::attach, id)?;
    ret(1)
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
        return Err(forked());
    }
    Ok(obj)
}

#[cold]
fn forked() -> Error {
    Error::Msg("kqueue object was inherited across fork() and cannot be used in the child".into())
}

/// `control`'s arguments 1..4 (slots 2..5): the changelist's kind,
/// maxevents, the deadline and the results table's slot. Reads only those
/// slots and calls nothing back, so that a bad self can be reported first.
fn control_args(
    lua: &mut Lua,
    top: c_int,
) -> Result<(Kind, usize, Deadline, Option<c_int>), Error> {
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
    let maxevents = match lua.exact_integer(3) {
        // The usual call: an integer in range, checked once.
        Some(n) if (0..=i32::MAX as i64).contains(&n) => n as usize,
        Some(n) if n < 0 => {
            return arg_error(
                "control",
                2,
                format!("maxevents must be 0 or positive, got {n}"),
            )
        }
        _ => int_arg(lua, 3, "control", 2, 0, i32::MAX as i64, None)? as usize,
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
    Ok((kind, maxevents, deadline, results))
}

fn control(lua: &mut Lua) -> Ret {
    let top = lua.top();
    let (kind, maxevents, deadline, results) = match control_args(lua, top) {
        Ok(args) => args,
        Err(e) => {
            // Self first, as Python binds the method before it looks at
            // arguments. (Looked up once on the usual path, by `run`; a
            // queue inherited across fork() is refused by the core there,
            // at no cost to the polling call.)
            this::<KqueueObject>(lua, &CLASS, "control")?;
            return Err(e);
        }
    };
    // Slots 1..5 are the arguments; slot 6 is for the udata store, fetched
    // when a change or an event needs it (`STORE`).
    if top > 5 {
        lua.set_top(5);
    }
    if kind != Kind::Table {
        // The polling loop's call: nothing to collect.
        return run(lua, &[], maxevents, deadline, results);
    }
    // The object's change buffer is borrowed for the call (an early error
    // just drops it).
    // Refused before any udata is stored for a queue that cannot take it.
    let mut changes = std::mem::take(&mut usable(lua, "control")?.changes);
    let collected = collect(lua, &mut changes);
    let result = collected.and_then(|()| run(lua, &changes, maxevents, deadline, results));
    if let Some(obj) = slot_object(lua) {
        changes.clear();
        obj.changes = keep(changes);
    }
    result
}

/// Reads the changelist (slot 2) into `changes`, then stores the udata of
/// those that carry one and gives them its token.
fn collect(lua: &mut Lua, changes: &mut Vec<KEvent>) -> Result<(), Error> {
    changes.clear();
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
        Store::mark(&mut ev, has_udata);
        with_udata |= has_udata;
        changes.push(ev);
    }
    if with_udata {
        STORE.fetch(lua)?.stash(lua, 2, changes)?;
    }
    Ok(())
}

/// The udata store's slot in `control` (slots 1..5 are its arguments).
const STORE: Store = Store { slot: 6 };

/// Runs the core's control with the collected changes and hands back the
/// events (or `nil, msg, errno`), releasing the tokens the core let go.
#[inline(always)]
fn run(
    lua: &mut Lua,
    changes: &[KEvent],
    maxevents: usize,
    deadline: Deadline,
    results: Option<c_int>,
) -> Ret {
    // Found again: collect's step may have run finalizers (which may close it).
    let obj = this::<KqueueObject>(lua, &CLASS, "control")?;
    // Left in the object, where the tail reads them.
    let (out, released) = (&mut obj.out, &mut obj.released);
    released.clear();
    let result = obj
        .kq
        .control_releasing(changes, out, released, maxevents, deadline);
    if results.is_none() && result.is_ok() && out.is_empty() && released.is_empty() {
        // The idle polling call: an empty table, nothing else to look at.
        return Step::tail(results::new_table, ());
    }
    let needs_store = !released.is_empty() || out.iter().any(|ev| ev.udata != 0);
    let idle = out.is_empty() && released.is_empty();
    // What the tail delivers: counted again after fetching the store, a
    // step that may run finalizers (which may use this queue).
    let mut counts = (out.len(), released.len());
    if result.is_err() {
        out.clear();
        if obj.kq.is_forked() {
            return Err(forked());
        }
    }
    if needs_store {
        STORE.fetch(lua)?;
        counts = slot_object(lua).map_or((0, 0), |o| (o.out.len(), o.released.len()));
    }
    if let Err(e) = result {
        // The tokens the core let go leave the store before the error.
        if let Some(obj) = slot_object(lua).filter(|o| !o.released.is_empty()) {
            let mut taken = std::mem::take(&mut obj.released);
            let done = STORE.release_all(lua, &taken);
            taken.clear();
            if let Some(obj) = slot_object(lua) {
                obj.released = keep(taken);
            }
            done?;
        }
        return os_error(lua, e);
    }
    match results {
        Some(t) if idle && lua.raw_len(t) == 0 => {
            results::return_table(lua, t);
            ret(1)
        }
        _ => {
            let (n, nreleased) = counts;
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
    /// Whether the udata store was fetched (some token is involved).
    has_store: bool,
}

/// Tail: the result kevents, read from the object's `out` (found again
/// after every allocation: a finalizer may use the same queue meanwhile),
/// with their udata from the store, into a new array or the
/// results table; then the released tokens leave the store, after every
/// event that carries one was made.
fn deliver(lua: &mut Raw, d: Deliver) -> c_int {
    let mt = upvalue(KEVENT_MT);
    // The object stays in slot 1 throughout.
    let me = lua.pin::<KqueueObject>(1, class::tag(&CLASS));
    let event =
        |lua: &mut Raw, k: usize| -> Option<KEvent> { me?.slot(lua).as_ref()?.out.get(k).copied() };
    let t = if d.t != 0 {
        d.t
    } else {
        lua.new_table(d.n, 0);
        lua.top()
    };
    let mut k = 0;
    while k < d.n {
        // Copied out before the allocations that make its kevent.
        let Some(mut ev) = event(lua, k) else {
            break;
        };
        let key = k as i64 + 1;
        let token = std::mem::take(&mut ev.udata);
        // The event's udata, on the stack while its kevent is made (none
        // when no event of the call has one).
        let udata = if d.has_store {
            STORE.push(lua, token);
            Some(lua.top())
        } else {
            None
        };
        let reused = d.t != 0 && {
            lua.raw_geti(t, key);
            let ok = kevent::refill(lua, -1, ev, udata);
            lua.pop(1);
            ok
        };
        if !reused {
            make_kevent(lua, ev, mt, udata, true);
            lua.raw_seti(t, key);
        }
        if udata.is_some() {
            lua.pop(1);
        }
        k += 1;
    }
    if d.t != 0 {
        results::clear_from(lua, t, k);
    }
    if d.has_store {
        for i in 0..d.nreleased {
            let token = me.and_then(|me| me.slot(lua).as_ref()?.released.get(i).copied());
            let Some(token) = token else {
                break;
            };
            STORE.release(lua, token);
        }
    }
    if let Some(o) = me.and_then(|me| me.slot(lua).as_mut()) {
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
