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
//! its watch descriptor. A directory's watch also reports changes to the
//! files in it (a write, a chmod): those are no change of the directory and
//! are dropped; only its entries coming and going count.
//!
//! As on BSD, a registration dies with its descriptor: the file identity
//! (device, inode) recorded at registration tells a closed or reused fd
//! number apart, and such a registration is dropped, not reported.

use std::ffi::CString;
use std::os::fd::{AsRawFd, RawFd};

use super::consts::*;
use super::ctx::{self, Ctx, Target};
use super::filter::Filter;
use super::knote::{Collect, Info, Ready};
use crate::core::error::{OsError, OsResult};
use crate::core::kevent::KEvent;
use crate::core::linux::sys;

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

fn inotify_fd(cx: &mut Ctx) -> OsResult<RawFd> {
    if let Some(fd) = &cx.inotify.fd {
        return Ok(fd.as_raw_fd());
    }
    let fd = sys::inotify_init()?;
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
    loop {
        let n = match sys::read(fd, &mut buf) {
            Ok(Some(n)) if n > 0 => n,
            _ => return, // EAGAIN: the queue is empty
        };
        for ev in sys::inotify_events(&buf[..n]) {
            // A named event is about an entry of a watched directory.
            let mask = if ev.len > 0 {
                ev.mask & (DIR_CHANGES | libc::IN_ISDIR)
            } else {
                ev.mask
            };
            match cx.inotify.watches.get(&ev.wd) {
                Some(ids) if mask & !libc::IN_ISDIR != 0 => {
                    hits.extend(ids.iter().map(|&id| (id, mask)));
                }
                _ => {}
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
    /// (device, inode) of the file watched.
    file: (u64, u64),
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
    Ok(Box::new(watch(cx, kn, fd, kev.fflags)?))
}

/// Watches the file `fd` names now.
fn watch(cx: &mut Ctx, kn: &Info, fd: RawFd, fflags: u32) -> OsResult<Vnode> {
    let st = sys::fstat(fd)?;
    if st.kind() == libc::S_IFSOCK {
        return Err(OsError(libc::EINVAL));
    }
    let ifd = inotify_fd(cx)?;
    let path = CString::new(format!("/proc/self/fd/{fd}")).map_err(|_| OsError(libc::EINVAL))?;
    let wd = sys::inotify_add_watch(ifd, &path, MASK)?;
    cx.inotify.watches.entry(wd).or_default().push(kn.id);
    Ok(Vnode {
        fd,
        file: st.file,
        wd,
        want: fflags & NOTES,
        seen: 0,
        nlink: st.nlink,
        size: st.size,
    })
}

impl Vnode {
    /// The fd's file now, if it is still the one watched (not closed, not
    /// closed and reused for another file).
    fn current(&self) -> Option<sys::Stat> {
        sys::fstat(self.fd).ok().filter(|st| st.file == self.file)
    }

    /// The BSD notes an inotify mask stands for (see the module comment);
    /// `st` is the file now, maybe changed by operations whose events come
    /// later in the batch: so the link count is taken in only with the
    /// events that report its changes, and the size with IN_MODIFY (an
    /// IN_MODIFY handled after an unlink must not swallow its NOTE_DELETE).
    fn notes(&mut self, mask: u32, st: &sys::Stat) -> u32 {
        let mut notes = 0;
        if mask & (libc::IN_ATTRIB | DIR_CHANGES) != 0 {
            let was = std::mem::replace(&mut self.nlink, st.nlink);
            if mask & libc::IN_ATTRIB != 0 {
                notes |= if st.nlink == 0 && was > 0 {
                    NOTE_DELETE
                } else if st.nlink != was {
                    NOTE_LINK
                } else {
                    NOTE_ATTRIB
                };
            }
        }
        if mask & libc::IN_MODIFY != 0 {
            let was = std::mem::replace(&mut self.size, st.size);
            notes |= NOTE_WRITE;
            if st.size > was {
                notes |= NOTE_EXTEND;
            } else if st.size < was {
                notes |= NOTE_ATTRIB;
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
        notes
    }
}

impl Filter for Vnode {
    fn modify(&mut self, cx: &mut Ctx, kn: &Info, kev: &KEvent) -> OsResult<()> {
        if self.current().is_none() {
            // The old file's registration died with its fd; EV_ADD on the
            // reused number watches the file it names now.
            self.detach(cx, kn);
            self.wd = -1;
            *self = watch(cx, kn, self.fd, kev.fflags)?;
            return Ok(());
        }
        self.want = kev.fflags & NOTES;
        self.seen &= self.want;
        Ok(())
    }

    fn validate(&self, _cx: &mut Ctx, _kn: &Info) -> OsResult<()> {
        let st = sys::fstat(self.fd)?;
        if st.file != self.file {
            return Err(OsError(libc::ENOENT));
        }
        Ok(())
    }

    fn arm(&mut self, _cx: &mut Ctx, kn: &Info) -> OsResult<bool> {
        Ok(kn.enabled && self.seen != 0)
    }

    fn event(&mut self, _cx: &mut Ctx, _kn: &Info, mask: u32) -> bool {
        if mask & libc::IN_IGNORED != 0 {
            self.wd = -1;
        }
        let Some(st) = self.current() else {
            return true; // its fd is gone: collect drops it
        };
        self.seen |= self.notes(mask, &st) & self.want;
        self.seen != 0
    }

    fn collect(&mut self, _cx: &mut Ctx, _kn: &Info) -> Collect {
        if self.current().is_none() {
            return Collect::Gone;
        }
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
                sys::inotify_rm_watch(fd.as_raw_fd(), self.wd);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::fs::{self, File, OpenOptions};
    use std::io::Write as _;
    use std::os::fd::AsRawFd;
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
    fn a_write_then_the_unlink_in_one_batch_is_write_extend_delete() {
        let dir = temp_dir("vnode-batch");
        let path = dir.join("f");
        let mut f = File::create(&path).unwrap();
        let kq = Kqueue::new().unwrap();
        apply(&kq, &[kevd(fd_ident(&f), FILTER_VNODE, EV_ADD, ALL, 0)]);
        f.write_all(b"abc").unwrap();
        fs::remove_file(&path).unwrap();
        assert_eq!(notes(&kq), NOTE_WRITE | NOTE_EXTEND | NOTE_DELETE);
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
        // A change to a file in it is no change of the directory.
        let mut x = OpenOptions::new().append(true).open(dir.join("x")).unwrap();
        x.write_all(b"data").unwrap();
        fs::set_permissions(dir.join("x"), fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(notes(&kq), 0);
        drop(x);
        fs::remove_file(dir.join("x")).unwrap();
        assert_eq!(notes(&kq), NOTE_WRITE);
        drop(d);
        let _ = fs::remove_dir_all(dir);
    }

    #[test]
    fn a_closed_or_reused_descriptor_takes_its_registration_with_it() {
        let dir = temp_dir("vnode-reuse");
        let mut a = File::create(dir.join("a")).unwrap();
        let mut b = File::create(dir.join("b")).unwrap();
        let kq = Kqueue::new().unwrap();
        for readd in [false, true] {
            let watched = File::open(dir.join("a")).unwrap();
            let ident = fd_ident(&watched);
            apply(&kq, &[kevd(ident, FILTER_VNODE, EV_ADD, ALL, 0)]);
            // The number now names b (closed and reused at once).
            // SAFETY: dup2 onto a number we own, closing its old file.
            assert!(unsafe { libc::dup2(b.as_raw_fd(), watched.as_raw_fd()) } >= 0);
            if readd {
                // EV_ADD on the number watches the file it names now.
                apply(&kq, &[kevd(ident, FILTER_VNODE, EV_ADD, ALL, 0)]);
                a.write_all(b"old").unwrap();
                assert_eq!(notes(&kq), 0, "a is no longer watched");
                b.write_all(b"new").unwrap();
                assert_eq!(notes(&kq), NOTE_WRITE | NOTE_EXTEND);
                apply(&kq, &[kev(ident, FILTER_VNODE, EV_DELETE)]);
            } else {
                a.write_all(b"old").unwrap();
                b.write_all(b"new").unwrap();
                assert_eq!(notes(&kq), 0, "died with its descriptor");
                let out = try_apply(&kq, &[kev(ident, FILTER_VNODE, EV_DELETE)]).unwrap();
                assert_eq!(out[0].data, libc::ENOENT as i64);
            }
        }
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
