//! The fuzz driver: turns arbitrary bytes into a sequence of operations on
//! one kqueue emulation (`select::core::kqueue::Kqueue`) and checks that
//! nothing panics, every answer is well formed, and nothing leaks.
//!
//! Each input gets fresh objects: a pipe, a socketpair, an unnamed regular
//! file and /dev/null. Bytes are read in order (missing bytes read as 0):
//! an op byte picks `control` (with 0-4 raw changes: ident picked from the
//! objects, the queue's own fd, a just-closed number, small or raw numbers,
//! this process's pid; any filter number; raw flags, fflags and data), a
//! write, a read, opening or closing a second handle (`from_fd`), closing
//! one of the objects (so its number can be reused by what the queue opens
//! next), or `take_released`. SIGNAL idents are mapped onto signals that are
//! safe to block here (and the invalid numbers 0, 9, 19, 32, 65, 2^40).
//!
//! Checked: `control` never returns more than `maxevents` entries; an event's
//! udata is 0 or a token passed in and not yet released; at the end every
//! token passed in is released exactly once; the process has as many open
//! descriptors after the input as before.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use select::core::deadline::Deadline;
use select::core::kqueue::{
    KEvent, Kqueue, FILTER_AIO, FILTER_PROC, FILTER_READ, FILTER_SIGNAL, FILTER_TIMER, FILTER_USER,
    FILTER_VNODE, FILTER_WRITE,
};

struct Bytes<'a> {
    data: &'a [u8],
    pos: usize,
}

impl Bytes<'_> {
    fn more(&self) -> bool {
        self.pos < self.data.len()
    }

    fn u8(&mut self) -> u8 {
        let b = self.data.get(self.pos).copied().unwrap_or(0);
        self.pos += 1;
        b
    }

    fn le<const N: usize>(&mut self) -> [u8; N] {
        std::array::from_fn(|_| self.u8())
    }
}

fn own(fd: libc::c_int) -> Option<OwnedFd> {
    // SAFETY: fd was just returned by a successful libc call and is owned
    // by nothing else.
    (fd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(fd) })
}

/// The objects an input plays with: pipe read, pipe write, socket a,
/// socket b, regular file, /dev/null.
fn objects() -> Vec<Option<OwnedFd>> {
    let mut p = [-1; 2];
    let mut s = [-1; 2];
    // SAFETY: p and s are arrays of two ints for pipe2/socketpair to fill.
    unsafe {
        libc::pipe2(p.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC);
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            0,
            s.as_mut_ptr(),
        );
    }
    // SAFETY: open with constant NUL-terminated paths and plain flags.
    let file = unsafe {
        libc::open(
            c"/tmp".as_ptr(),
            libc::O_TMPFILE | libc::O_RDWR | libc::O_CLOEXEC,
            0o600,
        )
    };
    // SAFETY: as above.
    let null = unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_RDWR | libc::O_CLOEXEC) };
    [p[0], p[1], s[0], s[1], file, null]
        .into_iter()
        .map(own)
        .collect()
}

fn open_fd_count() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count())
}

/// Signals that may be blocked in this process for a while, and numbers
/// that are no signal one may watch.
fn signal_ident(raw: u64) -> u64 {
    let rtmin = libc::SIGRTMIN() as u64;
    let table = [
        libc::SIGUSR1 as u64,
        libc::SIGUSR2 as u64,
        libc::SIGWINCH as u64,
        libc::SIGURG as u64,
        rtmin + 3,
        0,
        9,
        19,
        32,
        65,
        1 << 40,
    ];
    table[(raw % table.len() as u64) as usize]
}

struct World {
    kq: Option<Kqueue>,
    second: Option<Kqueue>,
    objs: Vec<Option<OwnedFd>>,
    closed: RawFd,
    next_token: u64,
    passed: Vec<u64>,
    released: Vec<u64>,
}

impl World {
    fn fd(&self, i: usize) -> RawFd {
        self.objs[i].as_ref().map_or(self.closed, |f| f.as_raw_fd())
    }

    fn ident(&mut self, b: &mut Bytes) -> u64 {
        match b.u8() % 12 {
            0..=5 => {
                let i = (b.u8() % 6) as usize;
                self.fd(i) as u64
            }
            6 => self.kq.as_ref().map_or(0, |k| k.fileno() as u64),
            7 => self.closed as u64,
            8 => u64::from(b.u8() % 16),
            9 => u64::from_le_bytes(b.le()),
            10 => u64::from(u32::from_le_bytes(b.le())),
            _ => u64::from(std::process::id()),
        }
    }

    fn change(&mut self, b: &mut Bytes) -> KEvent {
        let mut ident = self.ident(b);
        let filter = match b.u8() % 10 {
            0 | 9 => FILTER_READ,
            1 => FILTER_WRITE,
            2 => FILTER_AIO,
            3 => FILTER_VNODE,
            4 => FILTER_PROC,
            5 => FILTER_SIGNAL,
            6 => FILTER_TIMER,
            7 => FILTER_USER,
            _ => i16::from_le_bytes(b.le()),
        };
        if filter == FILTER_SIGNAL {
            ident = signal_ident(ident);
        }
        let flags = u16::from_le_bytes(b.le());
        let fflags = u32::from_le_bytes(b.le());
        let data = match b.u8() % 4 {
            0 => 0,
            1 => i64::from(b.u8()),
            _ => i64::from_le_bytes(b.le()),
        };
        let udata = if b.u8() & 1 == 0 {
            0
        } else {
            self.next_token += 1;
            self.passed.push(self.next_token);
            self.next_token
        };
        KEvent {
            ident,
            filter,
            flags,
            fflags,
            data,
            udata,
        }
    }

    fn take(&mut self) {
        let mut got = Vec::new();
        for kq in self.kq.iter().chain(self.second.iter()) {
            kq.take_released(&mut got);
        }
        self.released.extend(got);
    }

    fn control(&mut self, b: &mut Bytes) {
        let n = b.u8() % 5;
        let changes: Vec<KEvent> = (0..n).map(|_| self.change(b)).collect();
        let maxevents = match b.u8() % 10 {
            9 => 300,
            m => usize::from(m),
        };
        let via_second = b.u8() & 1 == 1;
        let kq = match (&self.second, via_second) {
            (Some(s), true) => s,
            _ => self.kq.as_ref().unwrap(),
        };
        let mut out = Vec::new();
        let _ = kq.control(&changes, &mut out, maxevents, Deadline::Immediate);
        assert!(out.len() <= maxevents, "{} events > {maxevents}", out.len());
        for ev in &out {
            assert!(
                ev.udata == 0
                    || (self.passed.contains(&ev.udata) && !self.released.contains(&ev.udata)),
                "event {ev:?} carries a token that is unknown or already released"
            );
        }
        self.take();
    }

    fn io(&mut self, b: &mut Bytes, write: bool) {
        let i = [1usize, 2, 3, 4, 0][usize::from(b.u8() % 5)];
        let n = usize::from(b.u8()) * 16;
        let Some(fd) = self.objs[i].as_ref().map(|f| f.as_raw_fd()) else {
            return;
        };
        let mut buf = vec![0u8; n];
        // SAFETY: buf is n bytes, readable and writable; MSG_NOSIGNAL keeps a
        // closed peer from raising SIGPIPE (pipes: Rust ignores SIGPIPE).
        unsafe {
            if write {
                if i == 2 || i == 3 {
                    libc::send(fd, buf.as_ptr().cast(), n, libc::MSG_NOSIGNAL);
                } else {
                    libc::write(fd, buf.as_ptr().cast(), n);
                }
            } else {
                libc::read(fd, buf.as_mut_ptr().cast(), n);
            }
        }
    }

    fn finish(mut self) {
        if let Some(s) = self.second.take() {
            self.released.extend(s.close());
        }
        let kq = self.kq.take().unwrap();
        self.released.extend(kq.close());
        self.released.sort_unstable();
        self.passed.sort_unstable();
        assert_eq!(
            self.released, self.passed,
            "udata tokens: released vs passed"
        );
    }
}

/// Runs one input. Panics on any broken rule.
pub fn run(data: &[u8]) {
    // libFuzzer's main, unlike Rust's, leaves SIGPIPE fatal: a write to a
    // pipe whose reader is closed must fail with EPIPE instead.
    // SAFETY: SIG_IGN is a valid disposition for SIGPIPE.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
    let before = open_fd_count();
    {
        let objs = objects();
        let closed = {
            // A number just closed (the queue's own descriptors may take it).
            // SAFETY: eventfd returns a new fd or -1; it is closed at once.
            let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC) };
            drop(own(fd));
            fd.max(0)
        };
        let Ok(kq) = Kqueue::new() else { return };
        let mut w = World {
            kq: Some(kq),
            second: None,
            objs,
            closed,
            next_token: 0,
            passed: Vec::new(),
            released: Vec::new(),
        };
        let mut b = Bytes { data, pos: 0 };
        let mut ops = 0;
        while b.more() && ops < 64 {
            ops += 1;
            match b.u8() % 10 {
                0..=4 => w.control(&mut b),
                5 => w.io(&mut b, true),
                6 => w.io(&mut b, false),
                7 => {
                    if let Some(s) = w.second.take() {
                        w.released.extend(s.close());
                    } else {
                        let fd = w.kq.as_ref().unwrap().fileno();
                        w.second = Kqueue::from_fd(fd).ok();
                    }
                }
                8 => {
                    let i = usize::from(b.u8() % 6);
                    w.objs[i] = None;
                }
                _ => {
                    // from_fd on an object (or on the closed number, which
                    // the queue itself may have taken): only a queue works.
                    let fd = w.fd(usize::from(b.u8() % 6));
                    if let Ok(k) = Kqueue::from_fd(fd) {
                        let kq = w.kq.as_ref().unwrap();
                        assert_eq!((fd, k.queue_id()), (kq.fileno(), kq.queue_id()));
                        w.released.extend(k.close());
                    }
                    w.take();
                }
            }
        }
        w.finish();
    }
    let after = open_fd_count();
    assert_eq!(before, after, "open descriptors before and after the input");
}
