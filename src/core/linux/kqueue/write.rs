//! EVFILT_WRITE: data = free space in the socket send buffer or the pipe;
//! EV_EOF when the reader is gone. Regular files are always writable (data 0,
//! as on FreeBSD).

use std::os::fd::RawFd;

use super::consts::*;
use super::ctx::Ctx;
use super::fds::{self, Direction};
use super::fdtable::{Dir, FileKind};
use super::filter::Filter;
use super::knote::{Info, Ready};
use crate::core::error::OsResult;
use crate::core::kevent::KEvent;
use crate::core::linux::sys::{self, Stat};

const EPOLLOUT: u32 = libc::EPOLLOUT as u32;
const EPOLLHUP: u32 = libc::EPOLLHUP as u32;
const EPOLLERR: u32 = libc::EPOLLERR as u32;

/// The WRITE direction of the fd table (fds.rs).
pub struct Write;

impl Direction for Write {
    const DIR: &'static Dir = &WRITE;
}

/// Creates a WRITE registration (kept in the fd table, see fds.rs).
pub fn attach(cx: &mut Ctx, kn: &Info, _kev: &KEvent) -> OsResult<Box<dyn Filter>> {
    fds::attach::<Write>(cx, kn)
}

pub const WRITE: Dir = Dir {
    index: 1,
    keeps_sock_err: false,
    filter: FILTER_WRITE,
    interest: EPOLLOUT,
    ready: EPOLLOUT | EPOLLHUP | EPOLLERR,
    mark,
    data,
    always,
};

/// EV_EOF when the reader is gone: a pipe whose readers left reports
/// EPOLLERR; a socket whose peer closed both ways reports EPOLLHUP.
fn mark(_fd: RawFd, _kind: FileKind, revents: u32, _sock_err: &mut i32) -> Ready {
    let eof = revents & (EPOLLHUP | EPOLLERR) != 0;
    Ready {
        flags: if eof { EV_EOF } else { 0 },
        ..Ready::default()
    }
}

/// Room to write: in the socket's send buffer, or in the pipe.
fn data(fd: RawFd, kind: FileKind, _revents: u32) -> i64 {
    let free = match kind {
        FileKind::Socket => socket_space(fd),
        FileKind::Fifo => pipe_space(fd),
        FileKind::Other => 0,
    };
    free.max(0)
}

fn always(_fd: RawFd, _st: &Stat) -> Ready {
    Ready::default()
}

/// A failure (the number closed meanwhile) counts as 0.
fn or_zero(got: OsResult<i32>) -> i64 {
    i64::from(got.unwrap_or(0))
}

/// SO_SNDBUF minus what is queued (SIOCOUTQ, the same number as TIOCOUTQ).
fn socket_space(fd: RawFd) -> i64 {
    let size = or_zero(sys::getsockopt_int(fd, libc::SOL_SOCKET, libc::SO_SNDBUF));
    size - or_zero(sys::ioctl_int(fd, libc::TIOCOUTQ))
}

/// The pipe's capacity minus the bytes in it.
fn pipe_space(fd: RawFd) -> i64 {
    let size = or_zero(sys::fcntl_int(fd, libc::F_GETPIPE_SZ));
    size - or_zero(sys::ioctl_int(fd, libc::FIONREAD))
}

#[cfg(test)]
mod tests {
    use std::os::fd::AsRawFd;

    use super::super::testkit::*;
    use super::super::*;
    use crate::core::testutil::{pipe, socketpair, write_all};

    #[test]
    fn a_pipe_reports_its_free_space() {
        let kq = Kqueue::new().unwrap();
        let (_r, w) = pipe();
        let size =
            crate::core::linux::sys::fcntl_int(w.as_raw_fd(), libc::F_GETPIPE_SZ).unwrap() as i64;
        apply(&kq, &[kev(fd_ident(&w), FILTER_WRITE, EV_ADD)]);
        assert_eq!(wait(&kq, 0)[0].data, size);
        write_all(&w, b"12345");
        let evs = wait(&kq, 0);
        assert_eq!((evs.len(), evs[0].data), (1, size - 5));
        assert_eq!(evs[0].flags & EV_EOF, 0);
    }

    #[test]
    fn a_socket_reports_send_buffer_space() {
        let kq = Kqueue::new().unwrap();
        let (a, _b) = socketpair();
        apply(&kq, &[kev(fd_ident(&a), FILTER_WRITE, EV_ADD)]);
        let evs = wait(&kq, 0);
        assert_eq!(evs.len(), 1);
        assert!(evs[0].data > 0);
    }

    #[test]
    fn eof_when_the_reader_is_gone() {
        let kq = Kqueue::new().unwrap();
        let (r, w) = pipe();
        apply(&kq, &[kev(fd_ident(&w), FILTER_WRITE, EV_ADD)]);
        drop(r);
        let evs = wait(&kq, 1000);
        assert_eq!(evs.len(), 1);
        assert_ne!(evs[0].flags & EV_EOF, 0);
        let (a, b) = socketpair();
        apply(&kq, &[kev(fd_ident(&a), FILTER_WRITE, EV_ADD | EV_ONESHOT)]);
        drop(b);
        let evs: Vec<_> = wait(&kq, 1000)
            .into_iter()
            .filter(|e| e.ident == fd_ident(&a))
            .collect();
        assert_ne!(evs[0].flags & EV_EOF, 0);
    }

    #[test]
    fn a_full_pipe_is_not_writable() {
        let kq = Kqueue::new().unwrap();
        let (_r, w) = pipe();
        // SAFETY: sets O_NONBLOCK on an open fd.
        unsafe { libc::fcntl(w.as_raw_fd(), libc::F_SETFL, libc::O_NONBLOCK) };
        let chunk = [0u8; 4096];
        // SAFETY: chunk is 4096 readable bytes.
        while unsafe { libc::write(w.as_raw_fd(), chunk.as_ptr().cast(), chunk.len()) } > 0 {}
        apply(&kq, &[kev(fd_ident(&w), FILTER_WRITE, EV_ADD)]);
        assert!(wait(&kq, 0).is_empty());
    }

    #[test]
    fn a_regular_file_is_always_writable() {
        let kq = Kqueue::new().unwrap();
        let dir = temp_dir("regwrite");
        let f = std::fs::File::create(dir.join("f")).unwrap();
        apply(&kq, &[kev(fd_ident(&f), FILTER_WRITE, EV_ADD)]);
        for _ in 0..2 {
            let evs = wait(&kq, 0);
            assert_eq!((evs.len(), evs[0].data), (1, 0));
        }
        drop(f);
        let _ = std::fs::remove_dir_all(dir);
    }
}
