//! EVFILT_PROC on a pidfd: NOTE_EXIT only. The pidfd becomes readable when
//! the process exits; the status is read with waitid(WNOWAIT), so the child
//! is not reaped and its parent can still wait for it. The event has
//! EV_EOF|EV_ONESHOT set, as on FreeBSD, and data = the status as waitpid
//! gives it. A process that is not our child exits with data 0 (Linux gives
//! its status only to the parent).

use std::os::fd::{AsRawFd, OwnedFd};

use super::consts::*;
use super::ctx::{self, Ctx, Target};
use super::filter::Filter;
use super::knote::{Collect, Info, Ready};
use crate::core::error::{OsError, OsResult};
use crate::core::kevent::KEvent;
use crate::core::linux::sys;

pub struct Proc {
    fd: OwnedFd,
    token: u64,
    in_epoll: bool,
    /// NOTE_EXIT asked for: the event then carries it and the status.
    exit_note: bool,
}

pub fn attach(cx: &mut Ctx, kn: &Info, kev: &KEvent) -> OsResult<Box<dyn Filter>> {
    check_notes(kev.fflags)?;
    let pid = libc::pid_t::try_from(kn.ident)
        .ok()
        .filter(|&pid| pid > 0)
        .ok_or(OsError(libc::ESRCH))?;
    let fd = pidfd_open(pid)?;
    let token = cx.add_target(Target::Knote(kn.id));
    Ok(Box::new(Proc {
        fd,
        token,
        in_epoll: false,
        exit_note: kev.fflags & NOTE_EXIT != 0,
    }))
}

/// Fork and exec tracking have no pidfd counterpart.
fn check_notes(fflags: u32) -> OsResult<()> {
    if fflags & (NOTE_FORK | NOTE_EXEC | NOTE_TRACK) != 0 {
        return Err(OsError(libc::ENOTSUP));
    }
    Ok(())
}

fn pidfd_open(pid: libc::pid_t) -> OsResult<OwnedFd> {
    sys::pidfd_open(pid).map_err(|e| match e {
        // Kernels before 5.3: say "not supported" rather than ENOSYS.
        OsError(libc::ENOSYS) => OsError(libc::ENOTSUP),
        // A thread id rather than a process: no such process to watch.
        OsError(libc::EINVAL) => OsError(libc::ESRCH),
        e => e,
    })
}

/// The exit status in waitpid's encoding, without reaping; 0 when it is not
/// ours to read.
fn exit_status(fd: &OwnedFd) -> i64 {
    let (code, pid, status) = match sys::waitid_pidfd_nowait(fd) {
        Ok(got) => got,
        Err(_) => return 0,
    };
    if pid == 0 {
        return 0;
    }
    let status = i64::from(status);
    match code {
        libc::CLD_EXITED => (status & 0xff) << 8,
        libc::CLD_KILLED => status & 0x7f,
        libc::CLD_DUMPED => (status & 0x7f) | 0x80,
        _ => 0,
    }
}

impl Filter for Proc {
    fn modify(&mut self, _cx: &mut Ctx, _kn: &Info, kev: &KEvent) -> OsResult<()> {
        check_notes(kev.fflags)?;
        self.exit_note = kev.fflags & NOTE_EXIT != 0;
        Ok(())
    }

    fn arm(&mut self, cx: &mut Ctx, kn: &Info) -> OsResult<bool> {
        let fd = self.fd.as_raw_fd();
        ctx::watch_own_fd(cx.epfd, fd, self.token, kn.enabled, &mut self.in_epoll)?;
        Ok(false)
    }

    fn collect(&mut self, _cx: &mut Ctx, _kn: &Info) -> Collect {
        // Readable pidfd = the process has exited.
        match sys::poll_now(self.fd.as_raw_fd(), libc::POLLIN as u32) {
            Ok(r) if r & libc::POLLIN as u32 != 0 => {}
            _ => return Collect::NotReady,
        }
        let (data, fflags) = if self.exit_note {
            (exit_status(&self.fd), NOTE_EXIT)
        } else {
            (0, 0)
        };
        Collect::Ready(Ready {
            data,
            fflags,
            flags: EV_EOF | EV_ONESHOT,
        })
    }

    fn detach(&mut self, cx: &mut Ctx, _kn: &Info) {
        cx.forget_target(self.token);
        ctx::unwatch_own_fd(cx.epfd, self.fd.as_raw_fd(), &mut self.in_epoll);
    }
}

#[cfg(test)]
mod tests {
    use std::process::{Child, Command};

    use super::super::testkit::*;
    use super::super::*;

    fn sh(script: &str) -> Child {
        Command::new("sh")
            .arg("-c")
            .arg(script)
            .spawn()
            .expect("spawn sh")
    }

    fn exit_event(kq: &Kqueue, child: &Child) -> KEvent {
        apply(
            kq,
            &[kevd(child.id() as u64, FILTER_PROC, EV_ADD, NOTE_EXIT, 0)],
        );
        let evs = wait(kq, 5000);
        assert_eq!(evs.len(), 1);
        evs[0]
    }

    #[test]
    fn exit_status_as_waitpid_gives_it_without_reaping() {
        let kq = Kqueue::new().unwrap();
        for (script, status, code) in [
            ("exit 3", 3 << 8, Some(3)),
            ("exit 0", 0, Some(0)),
            ("kill -9 $$", 9, None),
        ] {
            let mut child = sh(script);
            let ev = exit_event(&kq, &child);
            assert_eq!(ev.ident, child.id() as u64);
            assert_eq!(ev.fflags, NOTE_EXIT);
            assert_eq!(ev.flags & (EV_EOF | EV_ONESHOT), EV_EOF | EV_ONESHOT);
            assert_eq!(ev.data, status, "{script}");
            // Not reaped: the parent still gets the status.
            assert_eq!(child.wait().unwrap().code(), code);
            assert!(wait(&kq, 0).is_empty(), "oneshot");
        }
    }

    #[test]
    fn an_exited_unreaped_child_fires_at_once() {
        let kq = Kqueue::new().unwrap();
        let mut child = sh("exit 7");
        // Wait for the exit without reaping.
        // SAFETY: siginfo_t is plain data; zeroes are valid.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        let flags = libc::WEXITED | libc::WNOWAIT;
        // SAFETY: info is writable; the pid is our child.
        let rc = unsafe { libc::waitid(libc::P_PID, child.id(), &mut info, flags) };
        assert_eq!(rc, 0);
        apply(
            &kq,
            &[kevd(child.id() as u64, FILTER_PROC, EV_ADD, NOTE_EXIT, 0)],
        );
        let evs = wait(&kq, 0);
        assert_eq!((evs.len(), evs[0].data), (1, 7 << 8));
        assert_eq!(child.wait().unwrap().code(), Some(7));
    }

    #[test]
    fn a_running_process_fires_when_it_exits() {
        let kq = Kqueue::new().unwrap();
        let mut child = Command::new("sleep").arg("5").spawn().unwrap();
        apply(
            &kq,
            &[kevd(child.id() as u64, FILTER_PROC, EV_ADD, NOTE_EXIT, 0)],
        );
        assert!(wait(&kq, 50).is_empty());
        child.kill().unwrap();
        let evs = wait(&kq, 5000);
        assert_eq!((evs.len(), evs[0].data), (1, libc::SIGKILL as i64));
        child.wait().unwrap();
    }

    #[test]
    fn missing_processes_and_unsupported_notes() {
        let kq = Kqueue::new().unwrap();
        let out = try_apply(
            &kq,
            &[
                kevd(0x3fff_fff0, FILTER_PROC, EV_ADD, NOTE_EXIT, 0),
                kevd(0, FILTER_PROC, EV_ADD, NOTE_EXIT, 0),
                kevd(std::process::id() as u64, FILTER_PROC, EV_ADD, NOTE_FORK, 0),
                kevd(std::process::id() as u64, FILTER_PROC, EV_ADD, NOTE_EXEC, 0),
                kevd(
                    std::process::id() as u64,
                    FILTER_PROC,
                    EV_ADD,
                    NOTE_EXIT | NOTE_TRACK,
                    0,
                ),
            ],
        )
        .unwrap();
        let errs: Vec<i64> = out.iter().map(|e| e.data).collect();
        let (srch, notsup) = (libc::ESRCH as i64, libc::ENOTSUP as i64);
        assert_eq!(errs, vec![srch, srch, notsup, notsup, notsup]);
    }
}
