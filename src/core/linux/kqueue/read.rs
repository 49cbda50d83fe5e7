//! EVFILT_READ: data = bytes readable (FIONREAD), pending connections for a
//! listening socket, bytes from the offset to the end for a regular file
//! (always ready); EV_EOF when the peer shut down or the last writer left.
//!
//! EOF fflags carry the socket error. Linux's SO_ERROR clears the error when
//! read, so it is read only on an EOF that comes with EPOLLERR (the peer reset
//! the connection), and kept for later reports. WRITE never reads it, so the
//! usual "wait writable, then getsockopt(SO_ERROR)" check of a non-blocking
//! connect keeps working.

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

const EPOLLIN: u32 = libc::EPOLLIN as u32;
const EPOLLRDHUP: u32 = libc::EPOLLRDHUP as u32;
const EPOLLHUP: u32 = libc::EPOLLHUP as u32;
const EPOLLERR: u32 = libc::EPOLLERR as u32;

/// The READ direction of the fd table (fds.rs).
pub struct Read;

impl Direction for Read {
    const DIR: &'static Dir = &READ;
}

/// Creates a READ registration (kept in the fd table, see fds.rs).
pub fn attach(cx: &mut Ctx, kn: &Info, _kev: &KEvent) -> OsResult<Box<dyn Filter>> {
    fds::attach::<Read>(cx, kn)
}

pub const READ: Dir = Dir {
    index: 0,
    keeps_sock_err: true,
    filter: FILTER_READ,
    interest: EPOLLIN | EPOLLRDHUP,
    ready: EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR,
    mark,
    data,
    always,
};

/// EV_EOF, with the socket error in fflags, when the peer shut down or
/// the last writer left (a listener never has it).
fn mark(fd: RawFd, kind: FileKind, revents: u32, sock_err: &mut i32) -> Ready {
    let socket = kind == FileKind::Socket;
    let eof = revents & (EPOLLHUP | EPOLLRDHUP) != 0;
    if !eof || (socket && listening(fd)) {
        return Ready::default();
    }
    if socket && revents & EPOLLERR != 0 && *sock_err == 0 {
        *sock_err = sys::getsockopt_int(fd, libc::SOL_SOCKET, libc::SO_ERROR).unwrap_or(0);
    }
    Ready {
        data: 0,
        fflags: *sock_err as u32,
        flags: EV_EOF,
    }
}

/// Bytes readable, or the connections waiting on a listener.
fn data(fd: RawFd, kind: FileKind, revents: u32) -> i64 {
    let queued = sys::ioctl_int(fd, libc::FIONREAD);
    // Bytes to read prove a socket is not listening (FIONREAD fails on TCP,
    // UNIX and SCTP listeners), which spares the usual event a getsockopt.
    if kind == FileKind::Socket && !matches!(queued, Ok(n) if n > 0) && listening(fd) {
        // TCP tells the accept queue length; for other listeners (AF_UNIX)
        // a readable listener has at least one connection waiting.
        let waiting = sys::tcp_accept_backlog(fd).map_or(0, i64::from);
        return waiting.max(i64::from(revents & EPOLLIN != 0));
    }
    queued.map_or(0, |n| i64::from(n.max(0)))
}

fn always(fd: RawFd, st: &Stat) -> Ready {
    let data = if st.kind() == libc::S_IFREG {
        let off = sys::offset(fd).unwrap_or(st.size);
        (st.size - off).max(0)
    } else {
        0
    };
    Ready {
        data,
        ..Ready::default()
    }
}

fn listening(fd: RawFd) -> bool {
    sys::getsockopt_int(fd, libc::SOL_SOCKET, libc::SO_ACCEPTCONN) == Ok(1)
}

#[cfg(test)]
mod tests {
    use std::io::{Read as _, Seek, SeekFrom};
    use std::net::{TcpListener, TcpStream};
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    use std::time::{Duration, Instant};

    use super::super::testkit::*;
    use super::super::*;
    use crate::core::testutil::{pipe, socketpair, write_all};

    fn read_ev(fd: &impl AsRawFd, flags: u16) -> KEvent {
        kev(fd_ident(fd), FILTER_READ, flags)
    }

    fn drain(fd: &OwnedFd, n: usize) {
        let mut buf = vec![0u8; n];
        // SAFETY: buf is n writable bytes.
        let got = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), n) };
        assert_eq!(got, n as isize);
    }

    #[test]
    fn data_is_the_bytes_readable_and_level_triggered() {
        let kq = Kqueue::new().unwrap();
        let (r, w) = pipe();
        apply(&kq, &[read_ev(&r, EV_ADD)]);
        assert!(wait(&kq, 0).is_empty());
        write_all(&w, b"hello");
        for _ in 0..2 {
            let evs = wait(&kq, 1000);
            assert_eq!(evs.len(), 1);
            assert_eq!(
                (evs[0].ident, evs[0].filter, evs[0].data),
                (fd_ident(&r), FILTER_READ, 5)
            );
            assert_eq!(evs[0].flags & EV_EOF, 0);
        }
        drain(&r, 5);
        assert!(wait(&kq, 0).is_empty());
    }

    #[test]
    fn eof_when_the_last_writer_goes() {
        let kq = Kqueue::new().unwrap();
        let (r, w) = pipe();
        apply(&kq, &[read_ev(&r, EV_ADD)]);
        write_all(&w, b"ab");
        drop(w);
        let evs = wait(&kq, 1000);
        assert_eq!(evs.len(), 1);
        assert_ne!(evs[0].flags & EV_EOF, 0);
        assert_eq!(evs[0].data, 2, "bytes still unread");
    }

    #[test]
    fn eof_when_the_peer_shuts_down_a_socket() {
        let kq = Kqueue::new().unwrap();
        let (a, b) = socketpair();
        apply(&kq, &[read_ev(&b, EV_ADD)]);
        // SAFETY: shutdown on an open socket.
        assert_eq!(unsafe { libc::shutdown(a.as_raw_fd(), libc::SHUT_WR) }, 0);
        let evs = wait(&kq, 1000);
        assert_eq!(evs.len(), 1);
        assert_ne!(evs[0].flags & EV_EOF, 0);
        assert_eq!(evs[0].fflags, 0, "no socket error");
    }

    #[test]
    fn a_reset_connection_reports_its_error_in_fflags() {
        let kq = Kqueue::new().unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        // SO_LINGER 0: close sends a RST.
        let linger = libc::linger {
            l_onoff: 1,
            l_linger: 0,
        };
        // SAFETY: linger is a valid struct of the stated size.
        let rc = unsafe {
            libc::setsockopt(
                server.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_LINGER,
                (&linger as *const libc::linger).cast(),
                std::mem::size_of::<libc::linger>() as libc::socklen_t,
            )
        };
        assert_eq!(rc, 0);
        apply(&kq, &[read_ev(&client, EV_ADD)]);
        drop(server);
        let evs = wait(&kq, 1000);
        assert_eq!(evs.len(), 1);
        assert_ne!(evs[0].flags & EV_EOF, 0);
        assert_eq!(evs[0].fflags, libc::ECONNRESET as u32);
        // Level-triggered: the next report still carries it.
        assert_eq!(wait(&kq, 0)[0].fflags, libc::ECONNRESET as u32);
    }

    #[test]
    fn a_listening_socket_counts_pending_connections() {
        let kq = Kqueue::new().unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        apply(&kq, &[read_ev(&listener, EV_ADD)]);
        assert!(wait(&kq, 0).is_empty());
        let addr = listener.local_addr().unwrap();
        let _c1 = TcpStream::connect(addr).unwrap();
        let _c2 = TcpStream::connect(addr).unwrap();
        let t = Instant::now();
        let mut data = 0;
        while t.elapsed() < Duration::from_secs(2) && data != 2 {
            data = wait(&kq, 100).first().map_or(0, |e| e.data);
        }
        assert_eq!(data, 2);
        listener.accept().unwrap();
        assert_eq!(wait(&kq, 1000)[0].data, 1);
    }

    #[test]
    fn a_regular_file_is_always_ready_with_bytes_to_eof() {
        let kq = Kqueue::new().unwrap();
        let dir = temp_dir("regread");
        let path = dir.join("f");
        std::fs::write(&path, b"0123456789").unwrap();
        let mut f = std::fs::File::open(&path).unwrap();
        let mut four = [0u8; 4];
        f.read_exact(&mut four).unwrap();
        apply(&kq, &[read_ev(&f, EV_ADD)]);
        assert!(readable(kq.fileno()));
        for _ in 0..2 {
            let evs = wait(&kq, 0);
            assert_eq!((evs.len(), evs[0].data), (1, 6));
        }
        f.seek(SeekFrom::End(0)).unwrap();
        assert_eq!(wait(&kq, 0)[0].data, 0, "at EOF: ready, nothing to read");
        // EV_CLEAR: reported once.
        apply(&kq, &[read_ev(&f, EV_ADD | EV_CLEAR)]);
        assert_eq!(wait(&kq, 0).len(), 1);
        assert!(wait(&kq, 0).is_empty());
        assert!(!readable(kq.fileno()));
        drop(f);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn clear_reports_once_per_new_arrival() {
        let kq = Kqueue::new().unwrap();
        let (a, b) = socketpair();
        apply(&kq, &[read_ev(&b, EV_ADD | EV_CLEAR)]);
        write_all(&a, b"x");
        assert_eq!(wait(&kq, 1000).len(), 1);
        assert!(wait(&kq, 0).is_empty());
        assert!(!readable(kq.fileno()));
        write_all(&a, b"y");
        let evs = wait(&kq, 1000);
        assert_eq!((evs.len(), evs[0].data), (1, 2));
    }

    #[test]
    fn read_and_write_of_one_fd_are_independent() {
        let kq = Kqueue::new().unwrap();
        let (a, b) = socketpair();
        apply(
            &kq,
            &[kev(fd_ident(&a), FILTER_WRITE, EV_ADD), read_ev(&a, EV_ADD)],
        );
        let evs = wait(&kq, 0);
        assert_eq!(evs.len(), 1);
        assert_eq!(evs[0].filter, FILTER_WRITE);
        assert!(evs[0].data > 0);
        write_all(&b, b"yo");
        let mut evs = wait(&kq, 1000);
        evs.sort_by_key(|e| e.filter);
        assert_eq!(evs.len(), 2);
        assert_eq!(
            (evs[0].filter, evs[1].filter, evs[1].data),
            (FILTER_WRITE, FILTER_READ, 2)
        );
        apply(&kq, &[kev(fd_ident(&a), FILTER_WRITE, EV_DELETE)]);
        let evs = wait(&kq, 0);
        assert_eq!((evs.len(), evs[0].filter), (1, FILTER_READ));
        apply(&kq, &[kev(fd_ident(&a), FILTER_READ, EV_DISABLE)]);
        assert!(wait(&kq, 0).is_empty());
    }

    #[test]
    fn clear_read_and_level_write_share_an_fd() {
        let kq = Kqueue::new().unwrap();
        let (a, b) = socketpair();
        apply(
            &kq,
            &[
                read_ev(&a, EV_ADD | EV_CLEAR),
                kev(fd_ident(&a), FILTER_WRITE, EV_ADD),
            ],
        );
        write_all(&b, b"z");
        let evs = wait(&kq, 1000);
        assert_eq!(evs.len(), 2);
        for _ in 0..2 {
            let evs = wait(&kq, 0);
            assert_eq!(evs.len(), 1, "WRITE stays level-triggered");
            assert_eq!(evs[0].filter, FILTER_WRITE);
        }
    }

    #[test]
    fn a_closed_fd_neither_fires_nor_wedges_the_queue() {
        let kq = Kqueue::new().unwrap();
        let (r, w) = pipe();
        apply(&kq, &[read_ev(&r, EV_ADD)]);
        write_all(&w, b"x");
        drop(r);
        let t = Instant::now();
        assert!(wait(&kq, 100).is_empty());
        assert!(t.elapsed() >= Duration::from_millis(95));

        // Closed while a duplicate keeps the file open: epoll would keep
        // reporting it; here it fires at most once, and is not delivered.
        let (r, w) = pipe();
        // SAFETY: dup of an open fd; the copy is owned below.
        let dup = unsafe { OwnedFd::from_raw_fd(libc::dup(r.as_raw_fd())) };
        let ident = fd_ident(&r);
        apply(&kq, &[kev(ident, FILTER_READ, EV_ADD)]);
        drop(r);
        write_all(&w, b"x");
        let (t, cpu) = (Instant::now(), thread_cpu());
        let evs = wait(&kq, 100);
        assert!(evs.iter().all(|e| e.ident != ident), "{evs:?}");
        assert!(t.elapsed() >= Duration::from_millis(95));
        // The entry outlives the number and stays ready: the wait must
        // sleep between its reports, not spin on them.
        let spent = thread_cpu() - cpu;
        assert!(spent < Duration::from_millis(50), "{spent:?} of CPU");
        drop(dup);
    }

    /// CPU time of the calling thread.
    fn thread_cpu() -> Duration {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: ts is a writable timespec.
        unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
        Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
    }

    #[test]
    fn a_clear_read_is_not_disturbed_by_write_of_the_same_fd() {
        let kq = Kqueue::new().unwrap();
        let (a, b) = socketpair();
        let ident = fd_ident(&a);
        write_all(&b, b"x");
        apply(&kq, &[read_ev(&a, EV_ADD | EV_CLEAR)]);
        assert_eq!(wait(&kq, 0).len(), 1);
        // Every change to WRITE, and WRITE's own readiness, leave the
        // delivered READ edge alone (the byte is still unread).
        for flags in [EV_ADD, EV_DISABLE, EV_ENABLE, EV_ADD | EV_CLEAR, EV_DELETE] {
            apply(&kq, &[kev(ident, FILTER_WRITE, flags)]);
            let evs = wait(&kq, 0);
            assert!(
                evs.iter().all(|e| e.filter == FILTER_WRITE),
                "after WRITE flags {flags:#x}: {evs:?}"
            );
        }
        // And the other way: new data is no WRITE edge.
        apply(&kq, &[kev(ident, FILTER_WRITE, EV_ADD | EV_CLEAR)]);
        assert_eq!(wait(&kq, 0).len(), 1, "WRITE's first edge");
        write_all(&b, b"y");
        let evs = wait(&kq, 1000);
        assert_eq!(evs.len(), 1, "{evs:?}");
        assert_eq!((evs[0].filter, evs[0].data), (FILTER_READ, 2));
    }

    #[test]
    fn a_reused_fd_number_can_be_added_again() {
        let kq = Kqueue::new().unwrap();
        let (r1, w1) = pipe();
        let ident = fd_ident(&r1);
        apply(
            &kq,
            &[read_ev(&r1, EV_ADD), kev(ident, FILTER_WRITE, EV_ADD)],
        );
        let (r2, w2) = pipe();
        // Put the new pipe's read end under the old number.
        // SAFETY: dup2 onto a number we own (r1), closing the old file.
        assert!(unsafe { libc::dup2(r2.as_raw_fd(), r1.as_raw_fd()) } >= 0);
        drop(w1);
        apply(&kq, &[kev(ident, FILTER_READ, EV_ADD)]);
        write_all(&w2, b"abc");
        let evs = wait(&kq, 1000);
        assert_eq!(
            evs.len(),
            1,
            "the old file's WRITE registration is gone: {evs:?}"
        );
        assert_eq!(
            (evs[0].ident, evs[0].filter, evs[0].data),
            (ident, FILTER_READ, 3)
        );
        // Deleting the old WRITE registration: it died with its file.
        let out = try_apply(&kq, &[kev(ident, FILTER_WRITE, EV_DELETE)]).unwrap();
        assert_eq!(out[0].data, libc::ENOENT as i64);
    }

    #[test]
    fn bad_descriptors_are_ebadf() {
        let kq = Kqueue::new().unwrap();
        let out = try_apply(
            &kq,
            &[
                kev(u64::MAX, FILTER_READ, EV_ADD),
                kev(999_999, FILTER_READ, EV_ADD),
            ],
        )
        .unwrap();
        assert!(out.iter().all(|e| e.data == libc::EBADF as i64), "{out:?}");
        // A registered fd closed, then deleted: EBADF, and the registration
        // is gone with it. A high number, so no other test reuses it.
        let (r, _w) = pipe();
        // SAFETY: duplicates an open fd to the lowest free number >= 900.
        let high = unsafe { libc::fcntl(r.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 900) };
        assert!(high >= 900);
        // SAFETY: high was just created and is owned by nothing else.
        let high = unsafe { OwnedFd::from_raw_fd(high) };
        let ident = fd_ident(&high);
        apply(
            &kq,
            &[KEvent {
                udata: 9,
                ..kev(ident, FILTER_READ, EV_ADD)
            }],
        );
        drop(high);
        let out = try_apply(&kq, &[kev(ident, FILTER_READ, EV_DELETE)]).unwrap();
        assert_eq!(out[0].data, libc::EBADF as i64);
        assert_eq!(released(&kq), vec![9]);
    }

    #[test]
    fn dispatch_and_oneshot_on_a_pipe() {
        let kq = Kqueue::new().unwrap();
        let (r, w) = pipe();
        write_all(&w, b"x");
        apply(&kq, &[read_ev(&r, EV_ADD | EV_DISPATCH)]);
        assert_eq!(wait(&kq, 0).len(), 1);
        assert!(wait(&kq, 0).is_empty());
        apply(&kq, &[read_ev(&r, EV_ENABLE)]);
        assert_eq!(wait(&kq, 0).len(), 1);
        apply(&kq, &[read_ev(&r, EV_ADD | EV_ONESHOT)]);
        assert_eq!(wait(&kq, 0).len(), 1);
        assert!(wait(&kq, 0).is_empty());
        let out = try_apply(&kq, &[read_ev(&r, EV_DELETE)]).unwrap();
        assert_eq!(out[0].data, libc::ENOENT as i64);
    }
}
