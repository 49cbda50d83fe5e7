//! `select.kqueue()`, `select.kqueue.fromfd(fd)` and `kq:control(...)`.
//!
//! udata: each change that carries a udata gets a fresh token; the value is
//! kept in the queue's udata store (a table, the userdata's uservalue, shared
//! by every object on the same queue), the core stores only the token, and the
//! core reports tokens it no longer holds so the store drops them. The store is
//! reachable only through the objects, so the GC can collect cycles through it.

use std::ffi::c_int;
use std::sync::atomic::{AtomicU64, Ordering};

use super::args::{int_arg, os_error};
use super::class::{self, close_object, gc_object, push_object, this, tostring, ClassSpec, EXTRA};
use super::fdarg::fd_arg;
use super::kevent::{self, push_kevent};
use super::results;
use super::stack::{arg_error, cfn, upvalue, Error, Kind, Lua, Num, Ret, REGISTRY};
use super::timeout::{self, Negative};
use crate::core::deadline::Deadline;
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

static NEXT_TOKEN: AtomicU64 = AtomicU64::new(1);

fn wrap(lua: &mut Lua, kq: Kqueue) -> Ret {
    let id = kq.queue_id();
    push_object(
        lua,
        &CLASS,
        KqueueObject {
            kq,
            changes: Vec::new(),
            out: Vec::new(),
            released: Vec::new(),
        },
    );
    let obj = lua.abs(-1);
    push_store(lua, id);
    lua.set_uservalue(obj);
    Ok(1)
}

/// Pushes the udata store of queue `id`, creating it (and the weak registry
/// table that finds it for `fromfd`) on first use.
fn push_store(lua: &mut Lua, id: u64) {
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
    if lua.raw_geti(stores, id as i64) != Kind::Table {
        lua.pop(1);
        lua.new_table(0, 0);
        lua.push_value(-1);
        lua.raw_seti(stores, id as i64);
    }
    lua.remove(stores);
}

/// Pushes the events as kevents: a new array, or (the opt-in reuse form) the
/// caller's array at `results` refilled, its kevents overwritten in place and
/// its entries past the end cleared, so a steady loop allocates nothing but
/// the udata holders.
fn push_events(lua: &mut Lua, events: &[KEvent], store: c_int, results: Option<c_int>) {
    let t = match results {
        Some(t) => t,
        None => {
            lua.new_table(events.len(), 0);
            lua.top()
        }
    };
    let mt = upvalue(KEVENT_MT);
    for (k, ev) in events.iter().enumerate() {
        let k = k as i64 + 1;
        let mut ev = *ev;
        let token = std::mem::take(&mut ev.udata);
        let udata = (token != 0).then(|| {
            lua.raw_geti(store, token as i64);
            lua.top()
        });
        let reused = results.is_some() && {
            lua.raw_geti(t, k);
            let ok = kevent::refill(lua, -1, ev, udata);
            lua.pop(1);
            ok
        };
        if !reused {
            push_kevent(lua, ev, udata, mt);
            lua.raw_seti(t, k);
        }
        if udata.is_some() {
            lua.pop(1);
        }
    }
    if results.is_some() {
        results::finish_refill(lua, t, events.len());
    }
}

/// `select.kqueue()`, through the `select.kqueue` table's `__call`.
pub fn new(lua: &mut Lua) -> Ret {
    match Kqueue::new() {
        Ok(kq) => wrap(lua, kq),
        Err(e) => os_error(lua, e),
    }
}

/// `select.kqueue.fromfd(fd)`: a second object on the same queue.
pub fn fromfd(lua: &mut Lua) -> Ret {
    let fd = fd_arg(lua, 1, "fromfd", 1)?;
    match Kqueue::from_fd(fd) {
        Ok(kq) => wrap(lua, kq),
        Err(e) => os_error(lua, e),
    }
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
    changes.clear();
    // The udata store goes in slot 6 when a change or an event needs it.
    let store = 6;
    let mut have_store = false;
    if kind == Kind::Table {
        let n = lua.raw_len(2);
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
            ev.udata = 0;
            if has_udata {
                if !have_store {
                    lua.pop(1);
                    fetch_store(lua);
                    have_store = true;
                    lua.raw_geti(2, i as i64);
                }
                let token = NEXT_TOKEN.fetch_add(1, Ordering::Relaxed);
                kevent::push_udata(lua, -1, true);
                lua.raw_seti(store, token as i64);
                ev.udata = token;
            }
            lua.pop(1);
            changes.push(ev);
        }
    }
    // Found again: the first look's borrow ended when the changelist was read.
    let obj = usable(lua, "control")?;
    let mut out = std::mem::take(&mut obj.out);
    let mut released = std::mem::take(&mut obj.released);
    released.clear();
    let result = obj
        .kq
        .control_releasing(&changes, &mut out, &mut released, maxevents, deadline);
    obj.changes = keep(changes);
    if !have_store && (!released.is_empty() || out.iter().any(|ev| ev.udata != 0)) {
        fetch_store(lua);
    }
    let n = match result {
        Ok(()) => {
            push_events(lua, &out, store, results);
            1
        }
        Err(e) => {
            os_error(lua, e)?;
            3
        }
    };
    for token in released.iter() {
        lua.push_nil();
        lua.raw_seti(store, *token as i64);
    }
    if let Some(Some(obj)) = lua.userdata::<KqueueObject>(1, class::tag(&CLASS)) {
        obj.out = keep(out);
        obj.released = keep(released);
    }
    Ok(n)
}

/// Puts the udata store in slot 6 (the arguments padded to 5).
fn fetch_store(lua: &mut Lua) {
    lua.set_top(5);
    lua.get_uservalue(1);
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
        lua.new_table(0, 0);
        lua.set_uservalue(1);
    }
    Ok(0)
}

fn fileno(lua: &mut Lua) -> Ret {
    let fd = usable(lua, "fileno")?.kq.fileno();
    lua.push_int(fd as i64);
    Ok(1)
}

fn gc(lua: &mut Lua) -> Ret {
    gc_object::<KqueueObject>(lua, &CLASS);
    Ok(0)
}

fn to_string(lua: &mut Lua) -> Ret {
    tostring(lua, &CLASS);
    Ok(1)
}
