//! `select.kevent(...)`: a BSD `struct kevent` as a Lua value.
//!
//! The five integer fields live in the userdata; `udata` may be any Lua value
//! and lives in the userdata's uservalue table (slot 1), which the GC traces.
//!
//! A kevent returned by `control` may carry its `data` unmeasured (the Linux
//! emulation's READ and WRITE: the core's `is_deferred`): it is measured at
//! the first look at it (reading `data`, comparing, `tostring`, passing the
//! kevent to `control`, or assigning any field), and kept.

use std::ffi::c_int;

use super::class::{tag, ClassSpec, OPEN_MT};
use super::fdarg::{to_fd, NotFd};
use super::stack::{arg_error, cfn, ret, upvalue, Error, Kind, Lua, Num, Raw, Ret};
use crate::core::kevent::{Filter, Flags};
use crate::core::kqueue::{self, KEvent, EV_ADD, FILTER_READ};

#[derive(Clone, Copy)]
pub struct KeventObject {
    pub ev: KEvent,
    /// Whether the uservalue table holds a non-nil `udata`.
    pub has_udata: bool,
    /// `ev.data` is still to be measured (see the header).
    pub deferred: bool,
}

impl KeventObject {
    /// The event, its `data` measured if it was not yet.
    #[inline]
    fn settled(&mut self) -> &KEvent {
        if self.deferred {
            kqueue::measure_deferred(&mut self.ev);
            self.deferred = false;
        }
        &self.ev
    }
}

pub static CLASS: ClassSpec = ClassSpec {
    name: c"select.kevent",
    what: "kevent",
    methods: &[],
    meta: &[
        (c"__index", cfn(index)),
        (c"__newindex", cfn(newindex)),
        (c"__eq", cfn(eq)),
        (c"__lt", cfn(lt)),
        (c"__le", cfn(le)),
        (c"__tostring", cfn(to_string)),
    ],
    closable: false,
};

const FIELDS: [&str; 6] = ["ident", "filter", "flags", "fflags", "data", "udata"];
const FIELD_KEYS: [&std::ffi::CStr; 6] =
    [c"ident", c"filter", c"flags", c"fflags", c"data", c"udata"];

/// Valid range of each integer field (ident, filter, flags, fflags, data).
const RANGES: [(i64, i64); 5] = [
    (0, i64::MAX),
    (Filter::MIN as i64, Filter::MAX as i64),
    (0, Flags::MAX as i64),
    (0, u32::MAX as i64),
    (i64::MIN, i64::MAX),
];

/// Why a value does not fit a field: a message, or an error raised by the
/// value's own `getfd`/`fileno` (on the stack).
enum Bad {
    Msg(String),
    Raised,
}

/// Checks the value at stack slot `i` for field `k` (0..5).
fn field_value(lua: &mut Lua, i: c_int, k: usize) -> Result<i64, Bad> {
    if k == 0 && lua.kind(i) != Kind::Number {
        // ident: any descriptor-like value, stored as its fd.
        return match to_fd(lua, i) {
            Ok(fd) => Ok(fd as i64),
            Err(NotFd::Bad(msg)) => Err(Bad::Msg(format!("ident: {msg}"))),
            Err(NotFd::Raised) => Err(Bad::Raised),
        };
    }
    let name = FIELDS[k];
    let Some(n) = lua.number(i) else {
        return Err(Bad::Msg(format!(
            "{name}: integer expected, got {}",
            lua.type_name(i)
        )));
    };
    let v = match n {
        Num::Int(v) => v,
        Num::Float(f) => match n.exact_int() {
            Some(v) if f.abs() < 9.2e18 => v,
            _ => {
                return Err(Bad::Msg(format!(
                    "{name}: number has no integer representation ({f})"
                )))
            }
        },
    };
    let (lo, hi) = RANGES[k];
    if v < lo || v > hi {
        return Err(Bad::Msg(format!(
            "{name}: value out of range: {v} is not in {lo}..{hi}"
        )));
    }
    Ok(v)
}

/// `field_value` for argument `arg` of `select.kevent`.
fn field_arg(lua: &mut Lua, i: c_int, k: usize, arg: c_int) -> Result<i64, Error> {
    field_value(lua, i, k).or_else(|e| match e {
        Bad::Msg(m) => arg_error("kevent", arg, m),
        Bad::Raised => Err(Error::Rethrow),
    })
}

fn set_field(ev: &mut KEvent, k: usize, v: i64) {
    match k {
        0 => ev.ident = v as u64,
        1 => ev.filter = v as Filter,
        2 => ev.flags = v as Flags,
        3 => ev.fflags = v as u32,
        _ => ev.data = v,
    }
}

fn get_field(ev: &KEvent, k: usize) -> i64 {
    match k {
        0 => ev.ident as i64,
        1 => ev.filter as i64,
        2 => ev.flags as i64,
        3 => ev.fflags as i64,
        _ => ev.data,
    }
}

/// `select.kevent(ident, filter, flags, fflags, data, udata)` or
/// `select.kevent{ident = ..., filter = ..., ...}`.
pub fn new(lua: &mut Lua) -> Ret {
    let mut ev = KEvent {
        filter: FILTER_READ,
        flags: EV_ADD,
        ..KEvent::default()
    };
    // A plain table with an `ident` key is the keyword form; any other table
    // is a descriptor-like object (one with `fileno`/`getfd`).
    let udata_slot = if lua.kind(1) == Kind::Table {
        let base = lua.top();
        lua.push_value(1);
        // Slots base+1..=base+6: the six fields, read raw (looking a string
        // key up may allocate it, hence a step).
        lua.protect(1, 6, read_fields, ())?;
        if lua.kind(base + 1) != Kind::Nil {
            for k in 0..5 {
                let i = base + 1 + k as c_int;
                if lua.kind(i) != Kind::Nil {
                    let v = field_arg(lua, i, k, 1)?;
                    set_field(&mut ev, k, v);
                }
            }
            Some(base + 6)
        } else {
            lua.set_top(base);
            None
        }
    } else {
        None
    };
    let udata_slot = match udata_slot {
        Some(slot) => slot,
        None => {
            if lua.is_none_or_nil(1) {
                return arg_error(
                    "kevent",
                    1,
                    format!(
                        "ident: file descriptor or integer expected, got {}",
                        lua.type_name(1)
                    ),
                );
            }
            for k in 0..5 {
                let i = k as c_int + 1;
                if k == 0 || !lua.is_none_or_nil(i) {
                    let v = field_arg(lua, i, k, i)?;
                    set_field(&mut ev, k, v);
                }
            }
            6
        }
    };
    push_kevent(lua, ev, Some(udata_slot), upvalue(OPEN_MT))?;
    ret(1)
}

/// Step: pushes the six fields of the table in slot 1, read without
/// metamethods.
fn read_fields(lua: &mut Raw, (): ()) -> c_int {
    for key in FIELD_KEYS {
        lua.raw_get_field(1, key);
    }
    6
}

/// Pushes a new kevent whose metatable is at `mt`; `udata` is the stack slot of
/// its udata value, if any.
pub fn push_kevent(
    lua: &mut Lua,
    ev: KEvent,
    udata: Option<c_int>,
    mt: c_int,
) -> Result<(), Error> {
    // A slot above the top (fewer than six arguments) holds no udata: it
    // would be the metatable once that is pushed.
    let top = lua.top();
    let udata = udata.map(|i| lua.abs(i)).filter(|&i| i <= top);
    lua.push_value(mt);
    match udata {
        Some(i) => lua.push_value(i),
        None => lua.push_nil(),
    }
    lua.protect(2, 1, new_kevent, ev)
}

/// Step: a new kevent holding `ev`, its metatable in slot 1 and its udata in
/// slot 2.
fn new_kevent(lua: &mut Raw, ev: KEvent) -> c_int {
    make_kevent(lua, ev, 1, Some(2), false);
    1
}

/// Pushes a new kevent holding `ev`, with the metatable at `mt` and the
/// udata at `udata` (none: nil) (a Lua step: it allocates). `delivered`:
/// `ev` comes from `control`, and its `data` may be deferred.
pub fn make_kevent(lua: &mut Raw, ev: KEvent, mt: c_int, udata: Option<c_int>, delivered: bool) {
    let mt = lua.abs(mt);
    let udata = udata.map(|i| lua.abs(i));
    lua.push_userdata(
        tag(&CLASS),
        Some(KeventObject {
            ev,
            has_udata: false,
            deferred: delivered && kqueue::is_deferred(&ev),
        }),
    );
    lua.push_value(mt);
    lua.set_metatable(-2);
    if let Some(udata) = udata.filter(|&i| !lua.is_none_or_nil(i)) {
        // A new kevent has no udata: only a value needs setting.
        set_udata(lua, -1, udata);
    }
}

/// Gives the kevent at `obj` the udata at stack slot `value` (nil: none). A
/// cleared udata is dropped, not just hidden, so that the GC can collect it.
pub fn set_udata(lua: &mut Raw, obj: c_int, value: c_int) {
    let (obj, value) = (lua.abs(obj), lua.abs(value));
    let has = !lua.is_none_or_nil(value);
    // Only a holder this module made may be emptied: before one is made the
    // uservalue of a 5.1 or LuaJIT userdata is the global environment.
    let had = matches!(
        lua.userdata::<KeventObject>(obj, tag(&CLASS)),
        Some(Some(o)) if o.has_udata
    );
    if has {
        // 5.1 and 5.2 accept only a table as uservalue: keep the value in one.
        lua.new_table(1, 0);
        lua.push_value(value);
        lua.raw_seti(-2, 1);
        lua.set_uservalue(obj);
    } else if had {
        if lua.get_uservalue(obj) == Kind::Table {
            lua.push_nil();
            lua.raw_seti(-2, 1);
        }
        lua.pop(1);
    }
    if let Some(Some(o)) = lua.userdata::<KeventObject>(obj, tag(&CLASS)) {
        o.has_udata = has;
    }
}

/// Overwrites the kevent at `obj` with `ev`, an event `control` returns,
/// and the udata at `value` (none: nil); false if the value at `obj` is not
/// a kevent.
pub fn refill(lua: &mut Raw, obj: c_int, ev: KEvent, value: Option<c_int>) -> bool {
    match lua.userdata::<KeventObject>(obj, tag(&CLASS)) {
        Some(Some(o)) => {
            o.ev = ev;
            o.deferred = kqueue::is_deferred(&ev);
        }
        _ => return false,
    }
    match value {
        Some(value) => set_udata(lua, obj, value),
        None => clear_udata(lua, obj),
    }
    true
}

/// Gives the kevent at `obj` no udata (`set_udata` with nil, pushing none).
fn clear_udata(lua: &mut Raw, obj: c_int) {
    let obj = lua.abs(obj);
    if let Some(Some(o)) = lua.userdata::<KeventObject>(obj, tag(&CLASS)) {
        if !o.has_udata {
            return;
        }
    }
    lua.push_nil();
    set_udata(lua, obj, -1);
    lua.pop(1);
}

/// The kevent at stack slot `i`, if it is one (its `data` measured).
pub fn get(lua: &mut Lua, i: c_int) -> Option<(KEvent, bool)> {
    lua.userdata::<KeventObject>(i, tag(&CLASS))
        .and_then(|s| s.as_mut())
        .map(|o| (*o.settled(), o.has_udata))
}

/// Pushes the udata of the kevent at slot `i` (nil if none).
pub fn push_udata(lua: &mut Lua, i: c_int, has_udata: bool) {
    let i = lua.abs(i);
    if has_udata && lua.get_uservalue(i) == Kind::Table {
        lua.raw_geti(-1, 1);
        lua.remove(-2);
    } else {
        if has_udata {
            lua.pop(1);
        }
        lua.push_nil();
    }
}

fn this(lua: &mut Lua, func: &str) -> Result<(KEvent, bool), Error> {
    get(lua, 1).ok_or_else(|| bad_self(lua, func))
}

#[cold]
fn bad_self(lua: &Lua, func: &str) -> Error {
    Error::Msg(format!(
        "calling '{func}' on bad self (select.kevent expected, got {})",
        lua.type_name(1)
    ))
}

fn field_index(lua: &Lua, i: c_int) -> Option<usize> {
    field_of(lua.bytes(i)?)
}

/// Which field a key names: one match on the bytes (this is every field
/// read, `ev.ident`).
#[inline]
fn field_of(name: &[u8]) -> Option<usize> {
    match name {
        b"ident" => Some(0),
        b"filter" => Some(1),
        b"flags" => Some(2),
        b"fflags" => Some(3),
        b"data" => Some(4),
        b"udata" => Some(5),
        _ => None,
    }
}

fn index(lua: &mut Lua) -> Ret {
    // The key first: a field read copies nothing but its own value.
    let k = field_index(lua, 2);
    let Some(Some(obj)) = lua.userdata::<KeventObject>(1, tag(&CLASS)) else {
        return Err(bad_self(lua, "__index"));
    };
    match k {
        Some(5) => {
            let has_udata = obj.has_udata;
            push_udata(lua, 1, has_udata);
        }
        Some(4) => {
            let v = obj.settled().data;
            lua.push_int(v);
        }
        Some(k) => {
            let v = get_field(&obj.ev, k);
            lua.push_int(v);
        }
        None => lua.push_nil(),
    }
    ret(1)
}

fn newindex(lua: &mut Lua) -> Ret {
    this(lua, "__newindex")?;
    let Some(k) = field_index(lua, 2) else {
        let key = match lua.bytes(2) {
            Some(b) => String::from_utf8_lossy(b).into_owned(),
            None => lua.type_name(2).to_string(),
        };
        return Err(Error::Msg(format!("select.kevent has no field '{key}'")));
    };
    if k == 5 {
        fn step(lua: &mut Raw, (): ()) -> c_int {
            set_udata(lua, 1, 2);
            0
        }
        lua.set_top(3);
        lua.remove(2);
        lua.protect(2, 0, step, ())?;
        return ret(0);
    }
    let v = match field_value(lua, 3, k) {
        Ok(v) => v,
        Err(Bad::Msg(m)) => {
            return Err(Error::Msg(format!(
                "bad value for select.kevent field ({m})"
            )))
        }
        Err(Bad::Raised) => return Err(Error::Rethrow),
    };
    if let Some(Some(o)) = lua.userdata::<KeventObject>(1, tag(&CLASS)) {
        set_field(&mut o.ev, k, v);
    }
    ret(0)
}

fn key(ev: &KEvent) -> (u64, Filter, Flags, u32, i64) {
    (ev.ident, ev.filter, ev.flags, ev.fflags, ev.data)
}

fn udata_equal(lua: &mut Lua, a_has: bool, b_has: bool) -> bool {
    push_udata(lua, 1, a_has);
    push_udata(lua, 2, b_has);
    let same = lua.raw_equal(-1, -2);
    lua.pop(2);
    same
}

fn eq(lua: &mut Lua) -> Ret {
    let a = get(lua, 1);
    let b = get(lua, 2);
    let same = match (a, b) {
        (Some((a, ah)), Some((b, bh))) => key(&a) == key(&b) && udata_equal(lua, ah, bh),
        _ => false,
    };
    lua.push_bool(same);
    ret(1)
}

fn compare(lua: &mut Lua, or_equal: bool) -> Ret {
    let (Some((a, ah)), Some((b, bh))) = (get(lua, 1), get(lua, 2)) else {
        return Err(Error::Msg(format!(
            "attempt to compare {} with {}",
            kind_name(lua, 1),
            kind_name(lua, 2)
        )));
    };
    let result = match key(&a).cmp(&key(&b)) {
        std::cmp::Ordering::Less => true,
        std::cmp::Ordering::Greater => false,
        std::cmp::Ordering::Equal => {
            push_udata(lua, 1, ah);
            push_udata(lua, 2, bh);
            let r = match (lua.number(-2), lua.number(-1)) {
                (Some(x), Some(y)) => {
                    let (x, y) = (x.as_f64(), y.as_f64());
                    if or_equal {
                        x <= y
                    } else {
                        x < y
                    }
                }
                _ => or_equal && lua.raw_equal(-1, -2),
            };
            lua.pop(2);
            r
        }
    };
    lua.push_bool(result);
    ret(1)
}

fn kind_name(lua: &mut Lua, i: c_int) -> &'static str {
    if get(lua, i).is_some() {
        "select.kevent"
    } else {
        lua.type_name(i)
    }
}

fn lt(lua: &mut Lua) -> Ret {
    compare(lua, false)
}

fn le(lua: &mut Lua) -> Ret {
    compare(lua, true)
}

fn to_string(lua: &mut Lua) -> Ret {
    let (ev, has) = this(lua, "__tostring")?;
    push_udata(lua, 1, has);
    let udata = describe(lua, -1);
    let text = format!(
        "<select.kevent ident={} filter={} flags={:#x} fflags={:#x} data={:#x} udata={}>",
        ev.ident, ev.filter, ev.flags, ev.fflags, ev.data, udata
    );
    lua.push_string(&text)?;
    ret(1)
}

/// A short description of a value without calling metamethods.
fn describe(lua: &Lua, i: c_int) -> String {
    match lua.kind(i) {
        Kind::None | Kind::Nil => "nil".into(),
        Kind::Boolean => lua.boolean(i).to_string(),
        Kind::Number => match lua.number(i) {
            Some(Num::Int(v)) => format!("{v:#x}"),
            Some(n) => match n.exact_int() {
                Some(v) => format!("{v:#x}"),
                None => n.as_f64().to_string(),
            },
            None => "?".into(),
        },
        Kind::String => format!(
            "{:?}",
            String::from_utf8_lossy(lua.bytes(i).unwrap_or_default())
        ),
        _ => format!("{}: 0x{:x}", lua.type_name(i), lua.pointer(i)),
    }
}
