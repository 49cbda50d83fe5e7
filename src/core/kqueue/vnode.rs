//! EVFILT_VNODE on inotify: ident = an open file or directory; the event's
//! fflags = which of the selected NOTE_* happened since the last report
//! (accumulated; always EV_CLEAR behaviour), data 0.
//!
//! The watch is placed on the inode behind the fd (inotify_add_watch follows
//! /proc/self/fd/N), so it survives renames. inotify says less than BSD, so
//! some notes are derived from fstat of the fd when an event comes in:
//! - IN_ATTRIB with the link count dropped to 0: NOTE_DELETE (an open file
//!   is not freed, so IN_DELETE_SELF would only come after the last close);
//!   with the link count changed otherwise: NOTE_LINK; else NOTE_ATTRIB.
//! - IN_MODIFY: NOTE_WRITE, plus NOTE_EXTEND if the size grew, NOTE_ATTRIB if
//!   it shrank (truncation).
//! - IN_MOVE_SELF: NOTE_RENAME; IN_DELETE_SELF: NOTE_DELETE; IN_UNMOUNT:
//!   NOTE_REVOKE.
//! - A directory's entries created, deleted or moved: NOTE_WRITE, and
//!   NOTE_LINK when the entry is a subdirectory (the link count changes).
//!
//! One inotify instance per queue; several registrations of one inode share
//! its watch descriptor.

use std::collections::HashMap;
use std::ffi::CString;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use super::consts::*;
use super::ctx::{self, Ctx, Target};
use super::filter::{Collect, Filter, Info, Ready};
use super::{sys, KEvent};
use crate::core::error::{cvt, OsError, OsResult};

/// Every registration asks for all of these; each filters by its fflags.
const MASK: u32 = libc::IN_MODIFY
    | libc::IN_ATTRIB
    | libc::IN_MOVE_SELF
    | libc::IN_DELETE_SELF
    | libc::IN_CREATE
    | libc::IN_DELETE
    | libc::IN_MOVED_FROM
    | libc::IN_MOVED_TO;

const DIR_CHANGES: u32 =
    libc::IN_CREATE | libc::IN_DELETE | libc::IN_MOVED_FROM | libc::IN_MOVED_TO;

const NOTES: u32 =
    NOTE_DELETE | NOTE_WRITE | NOTE_EXTEND | NOTE_ATTRIB | NOTE_LINK | NOTE_RENAME | NOTE_REVOKE;

/// The queue's inotify instance, made on first use.
#[derive(Default)]
pub struct Inotify {
    fd: Option<OwnedFd>,
    /// Watch descriptor -> registrations on that inode.
    watches: HashMap<i32, Vec<u64>>,
}

fn inotify_fd(cx: &mut Ctx) -> OsResult<RawFd> {
    if let Some(fd) = &cx.inotify.fd {
        return Ok(fd.as_raw_fd());
    }
    // SAFETY: inotify_init1 takes flags and returns a new fd or -1.
    let fd =
        cvt(unsafe { libc::inotify_init1(libc::IN_NONBLOCK | libc::IN_CLOEXEC) }).map(sys::own)?;
    let token = cx.add_target(Target::Source(drain_source));
    if let Err(e) = ctx::epoll_add(cx.epfd, fd.as_raw_fd(), libc::EPOLLIN as u32, token) {
        cx.forget_target(token);
        return Err(e);
    }
    let raw = fd.as_raw_fd();
    cx.inotify.fd = Some(fd);
    Ok(raw)
}

/// The epoll source: reads every queued inotify event and hands each to the
/// registrations of its watch.
fn drain_source(cx: &mut Ctx, hits: &mut Vec<(u64, u32)>) {
    let Some(fd) = cx.inotify.fd.as_ref().map(|f| f.as_raw_fd()) else {
        return;
    };
    let mut buf = [0u8; 4096];
    let head = std::mem::size_of::<libc::inotify_event>();
    loop {
        // SAFETY: buf is buf.len() writable bytes.
        let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
        if n <= 0 {
            if n < 0 && OsError::last() == OsError(libc::EINTR) {
                continue;
            }
            return; // EAGAIN: the queue is empty
        }
        let n = n as usize;
        let mut off = 0;
        while off + head <= n {
            // SAFETY: the kernel wrote a whole inotify_event header at off;
            // read_unaligned copes with the byte buffer's alignment.
            let ev: libc::inotify_event =
                unsafe { std::ptr::read_unaligned(buf[off..].as_ptr().cast()) };
            off += head + ev.len as usize;
            if let Some(ids) = cx.inotify.watches.get(&ev.wd) {
                hits.extend(ids.iter().map(|&id| (id, ev.mask)));
            }
            if ev.mask & libc::IN_IGNORED != 0 {
                // The kernel removed the watch (inode freed, unmounted).
                cx.inotify.watches.remove(&ev.wd);
            }
        }
    }
}

pub struct Vnode {
    fd: RawFd,
    /// -1 once the kernel dropped the watch.
    wd: i32,
    /// The NOTE_* this registration selected.
    want: u32,
    /// Notes seen since the last report.
    seen: u32,
    nlink: u64,
    size: i64,
}

pub fn attach(cx: &mut Ctx, kn: &Info, kev: &KEvent) -> OsResult<Box<dyn Filter>> {
    let fd = sys::ident_fd(kn.ident)?;
    let st = sys::fstat(fd)?;
    if st.kind() == libc::S_IFSOCK {
        return Err(OsError(libc::EINVAL));
    }
    let ifd = inotify_fd(cx)?;
    let path = CString::new(format!("/proc/self/fd/{fd}")).map_err(|_| OsError(libc::EINVAL))?;
    // SAFETY: path is a NUL-terminated string; ifd is our inotify fd.
    let wd = cvt(unsafe { libc::inotify_add_watch(ifd, path.as_ptr(), MASK) })?;
    cx.inotify.watches.entry(wd).or_default().push(kn.id);
    Ok(Box::new(Vnode {
        fd,
        wd,
        want: kev.fflags & NOTES,
        seen: 0,
        nlink: st.nlink,
        size: st.size,
    }))
}

impl Vnode {
    /// The BSD notes an inotify mask stands for (see the module comment).
    fn notes(&mut self, mask: u32) -> u32 {
        let st = sys::fstat(self.fd).ok();
        let mut notes = 0;
        if mask & libc::IN_ATTRIB != 0 {
            notes |= match st {
                Some(st) if st.nlink == 0 && self.nlink > 0 => NOTE_DELETE,
                Some(st) if st.nlink != self.nlink => NOTE_LINK,
                _ => NOTE_ATTRIB,
            };
        }
        if mask & libc::IN_MODIFY != 0 {
            notes |= NOTE_WRITE;
            if let Some(st) = st {
                if st.size > self.size {
                    notes |= NOTE_EXTEND;
                } else if st.size < self.size {
                    notes |= NOTE_ATTRIB;
                }
            }
        }
        if mask & libc::IN_DELETE_SELF != 0 {
            notes |= NOTE_DELETE;
        }
        if mask & libc::IN_MOVE_SELF != 0 {
            notes |= NOTE_RENAME;
        }
        if mask & libc::IN_UNMOUNT != 0 {
            notes |= NOTE_REVOKE;
        }
        if mask & DIR_CHANGES != 0 {
            notes |= NOTE_WRITE;
            if mask & libc::IN_ISDIR != 0 {
                notes |= NOTE_LINK;
            }
        }
        if let Some(st) = st {
            self.nlink = st.nlink;
            self.size = st.size;
        }
        notes
    }
}

impl Filter for Vnode {
    fn modify(&mut self, _cx: &mut Ctx, _kn: &Info, kev: &KEvent) -> OsResult<()> {
        self.want = kev.fflags & NOTES;
        self.seen &= self.want;
        Ok(())
    }

    fn arm(&mut self, _cx: &mut Ctx, kn: &Info) -> OsResult<bool> {
        Ok(kn.enabled && self.seen != 0)
    }

    fn event(&mut self, _cx: &mut Ctx, _kn: &Info, mask: u32) -> bool {
        if mask & libc::IN_IGNORED != 0 {
            self.wd = -1;
        }
        self.seen |= self.notes(mask) & self.want;
        self.seen != 0
    }

    fn collect(&mut self, _cx: &mut Ctx, _kn: &Info) -> Collect {
        if self.seen == 0 {
            return Collect::NotReady;
        }
        Collect::Ready(Ready {
            data: 0,
            fflags: self.seen,
            flags: 0,
        })
    }

    fn delivered(&mut self, _cx: &mut Ctx, _kn: &Info) -> bool {
        self.seen = 0;
        false
    }

    fn detach(&mut self, cx: &mut Ctx, kn: &Info) {
        if self.wd < 0 {
            return;
        }
        let Some(ids) = cx.inotify.watches.get_mut(&self.wd) else {
            return;
        };
        ids.retain(|&id| id != kn.id);
        if ids.is_empty() {
            cx.inotify.watches.remove(&self.wd);
            if let Some(fd) = &cx.inotify.fd {
                // SAFETY: fd is our inotify instance; a stale wd gives EINVAL.
                unsafe { libc::inotify_rm_watch(fd.as_raw_fd(), self.wd) };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::fs::{self, File, OpenOptions};
    use std::io::Write as _;
    use std::os::unix::fs::PermissionsExt;

    use super::super::testkit::*;
    use super::super::*;

    const ALL: u32 = NOTE_DELETE | NOTE_WRITE | NOTE_EXTEND | NOTE_ATTRIB | NOTE_LINK | NOTE_RENAME;

    fn notes(kq: &Kqueue) -> u32 {
        let evs = wait(kq, 0);
        assert!(evs.len() <= 1, "{evs:?}");
        evs.first().map_or(0, |e| {
            assert_eq!((e.filter, e.data), (FILTER_VNODE, 0));
            e.fflags
        })
    }

    #[test]
    fn file_changes_map_to_notes() {
        let dir = temp_dir("vnode-file");
        let path = dir.join("f");
        let mut f = OpenOptions::new()
            .create(true)
            .truncate(true)
            .read(true)
            .write(true)
            .open(&path)
            .unwrap();
        let kq = Kqueue::new().unwrap();
        apply(&kq, &[kevd(fd_ident(&f), FILTER_VNODE, EV_ADD, ALL, 0)]);
        assert_eq!(notes(&kq), 0, "nothing happened");

        f.write_all(b"abc").unwrap();
        assert!(readable(kq.fileno()));
        assert_eq!(notes(&kq), NOTE_WRITE | NOTE_EXTEND);
        assert_eq!(notes(&kq), 0, "reported once");

        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(notes(&kq), NOTE_ATTRIB);

        f.set_len(1).unwrap();
        assert_eq!(notes(&kq) & (NOTE_ATTRIB | NOTE_EXTEND), NOTE_ATTRIB);

        let other = dir.join("g");
        fs::hard_link(&path, &other).unwrap();
        assert_eq!(notes(&kq), NOTE_LINK);

        let moved = dir.join("h");
        fs::rename(&path, &moved).unwrap();
        assert_eq!(notes(&kq), NOTE_RENAME);
        f.write_all(b"more").unwrap();
        assert_eq!(
            notes(&kq),
            NOTE_WRITE | NOTE_EXTEND,
            "still watched after the rename"
        );

        fs::remove_file(&other).unwrap();
        assert_eq!(notes(&kq), NOTE_LINK, "another link went");
        fs::remove_file(&moved).unwrap();
        assert_eq!(notes(&kq), NOTE_DELETE, "the last link went");
        drop(f);
        let _ = fs::remove_dir_all(dir);
    }

    #[test]
    fn directory_entries_are_writes_and_subdirectories_links() {
        let dir = temp_dir("vnode-dir");
        let d = File::open(&dir).unwrap();
        let kq = Kqueue::new().unwrap();
        apply(
            &kq,
            &[kevd(fd_ident(&d), FILTER_VNODE, EV_ADD | EV_CLEAR, ALL, 0)],
        );
        File::create(dir.join("x")).unwrap();
        assert_eq!(notes(&kq), NOTE_WRITE);
        fs::create_dir(dir.join("sub")).unwrap();
        assert_eq!(notes(&kq), NOTE_WRITE | NOTE_LINK);
        fs::remove_file(dir.join("x")).unwrap();
        assert_eq!(notes(&kq), NOTE_WRITE);
        drop(d);
        let _ = fs::remove_dir_all(dir);
    }

    #[test]
    fn only_selected_notes_are_reported() {
        let dir = temp_dir("vnode-sel");
        let path = dir.join("f");
        let mut f = File::create(&path).unwrap();
        let kq = Kqueue::new().unwrap();
        // Two registrations of one inode (two fds) share its watch.
        let f2 = File::open(&path).unwrap();
        apply(
            &kq,
            &[
                kevd(fd_ident(&f), FILTER_VNODE, EV_ADD, NOTE_DELETE, 0),
                kevd(fd_ident(&f2), FILTER_VNODE, EV_ADD, NOTE_WRITE, 0),
            ],
        );
        f.write_all(b"x").unwrap();
        let evs = wait(&kq, 0);
        assert_eq!(evs.len(), 1);
        assert_eq!((evs[0].ident, evs[0].fflags), (fd_ident(&f2), NOTE_WRITE));
        apply(&kq, &[kev(fd_ident(&f2), FILTER_VNODE, EV_DELETE)]);
        f.write_all(b"y").unwrap();
        assert!(wait(&kq, 0).is_empty());
        fs::remove_file(&path).unwrap();
        let evs = wait(&kq, 0);
        assert_eq!((evs.len(), evs[0].fflags), (1, NOTE_DELETE));
        let _ = fs::remove_dir_all(dir);
    }
}
