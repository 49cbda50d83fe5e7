//! `select.epoll([sizehint [, flags]])` and `select.epoll.fromfd(fd)`.

use super::args::{int_arg, ok_or_os, os_error};
use super::class::{self, close_object, gc_object, push_object, this, tostring, ClassSpec};
use super::fdarg::fd_arg;
use super::results;
use super::stack::{arg_error, cfn, ret, Lua, Ret};
use super::timeout;
use crate::core::epoll::Epoll;

pub struct EpollObject {
    ep: Epoll,
    /// The last poll's ready pairs, for the result table.
    ready: Vec<(i64, i64)>,
}

pub static CLASS: ClassSpec = ClassSpec {
    name: c"select.epoll",
    what: "epoll",
    methods: &[
        (c"register", cfn(register)),
        (c"modify", cfn(modify)),
        (c"unregister", cfn(unregister)),
        (c"poll", cfn(poll)),
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

const DEFAULT_MASK: i64 = (libc::EPOLLIN | libc::EPOLLPRI | libc::EPOLLOUT) as i64;

/// Pushes a new epoll object around what `make` opens.
fn wrap(lua: &mut Lua, make: impl FnOnce() -> crate::core::error::OsResult<Epoll>) -> Ret {
    match push_object(lua, &CLASS, || {
        make().map(|ep| EpollObject {
            ep,
            ready: Vec::new(),
        })
    })? {
        Ok(()) => ret(1),
        Err(e) => os_error(lua, e),
    }
}

/// `select.epoll(sizehint, flags)`; called through the `select.epoll` table's
/// `__call`, so the arguments start at stack slot 2.
pub fn new(lua: &mut Lua) -> Ret {
    let sizehint = int_arg(
        lua,
        2,
        "epoll",
        1,
        i32::MIN as i64,
        i32::MAX as i64,
        Some(-1),
    )?;
    if sizehint == 0 || sizehint < -1 {
        return arg_error("epoll", 1, "negative sizehint");
    }
    let flags = int_arg(
        lua,
        3,
        "epoll",
        2,
        i32::MIN as i64,
        i32::MAX as i64,
        Some(0),
    )?;
    if flags != 0 && flags != libc::EPOLL_CLOEXEC as i64 {
        return os_error(lua, crate::core::error::OsError(libc::EINVAL));
    }
    wrap(lua, Epoll::new)
}

/// `select.epoll.fromfd(fd)`: takes ownership of an epoll descriptor.
pub fn fromfd(lua: &mut Lua) -> Ret {
    let fd = fd_arg(lua, 1, "fromfd", 1)?;
    wrap(lua, || Epoll::from_fd(fd))
}

fn mask(lua: &Lua, func: &str, default: Option<i64>) -> Result<u32, super::stack::Error> {
    Ok(int_arg(lua, 3, func, 2, 0, u32::MAX as i64, default)? as u32)
}

fn register(lua: &mut Lua) -> Ret {
    let fd = fd_arg(lua, 2, "register", 1)?;
    let events = mask(lua, "register", Some(DEFAULT_MASK))?;
    let r = this::<EpollObject>(lua, &CLASS, "register")?
        .ep
        .register(fd, events);
    ok_or_os(lua, r)
}

fn modify(lua: &mut Lua) -> Ret {
    let fd = fd_arg(lua, 2, "modify", 1)?;
    let events = mask(lua, "modify", None)?;
    let r = this::<EpollObject>(lua, &CLASS, "modify")?
        .ep
        .modify(fd, events);
    ok_or_os(lua, r)
}

fn unregister(lua: &mut Lua) -> Ret {
    let fd = fd_arg(lua, 2, "unregister", 1)?;
    let r = this::<EpollObject>(lua, &CLASS, "unregister")?
        .ep
        .unregister(fd);
    ok_or_os(lua, r)
}

fn poll(lua: &mut Lua) -> Ret {
    let deadline = timeout::seconds_as_ms(lua, 2, "poll", 1)?;
    // The usual call is ep:poll(t): skip the optional arguments' checks.
    let top = lua.top();
    let maxevents = if top < 3 || lua.is_none_or_nil(3) {
        -1
    } else {
        int_arg(
            lua,
            3,
            "poll",
            2,
            i32::MIN as i64,
            i32::MAX as i64,
            Some(-1),
        )?
    };
    let maxevents = match maxevents {
        -1 => None,
        n if n > 0 => Some(n as usize),
        n => {
            return arg_error(
                "poll",
                2,
                format!("maxevents must be greater than 0, got {n}"),
            )
        }
    };
    let out = if top < 4 {
        Ok(None)
    } else {
        results::out_arg(lua, 4, "poll", 3)
    };
    let obj = this::<EpollObject>(lua, &CLASS, "poll")?;
    let out = out?;
    if let Err(e) = obj.ep.wait(deadline, maxevents) {
        // epoll_wait(2) never fails with ENOMEM: that is the event buffer
        // (sized by maxevents) that could not be allocated.
        if e.errno() == libc::ENOMEM {
            return Err(results::no_memory());
        }
        return os_error(lua, e);
    }
    let n = obj.ep.ready_count();
    if n > 0 {
        let ready = obj.ep.ready().map(|(fd, ev)| (fd as i64, ev as i64));
        results::fill(&mut obj.ready, n, ready)?;
    } else {
        obj.ready.clear();
    }
    obj.ep.trim();
    let large = !results::fits_kept(&obj.ready);
    results::finish(lua, n, out, ready_pairs, large)
}

/// The ready pairs of the epoll object in slot 1 (see `results::Source`).
fn ready_pairs(lua: &mut Lua) -> Option<&mut Vec<(i64, i64)>> {
    match lua.userdata::<EpollObject>(1, class::tag(&CLASS)) {
        Some(Some(obj)) => Some(&mut obj.ready),
        _ => None,
    }
}

/// `ep:close()` (and `__close`): idempotent, but only on an epoll object.
fn close(lua: &mut Lua) -> Ret {
    close_object::<EpollObject>(lua, &CLASS)?;
    ret(0)
}

fn fileno(lua: &mut Lua) -> Ret {
    let fd = this::<EpollObject>(lua, &CLASS, "fileno")?.ep.fileno();
    lua.push_int(fd as i64);
    ret(1)
}

fn gc(lua: &mut Lua) -> Ret {
    gc_object::<EpollObject>(lua, &CLASS);
    ret(0)
}

fn to_string(lua: &mut Lua) -> Ret {
    tostring(lua, &CLASS)?;
    ret(1)
}
