//! The flag state machine, error reporting, udata tokens and handles, using
//! USER events (no kernel object needed) unless the point is the kernel side.

use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use super::testkit::*;
use super::*;
use crate::core::testutil::{open_fd_count, pipe};

const TRIGGER: u32 = NOTE_TRIGGER;

fn with_udata(mut ev: KEvent, udata: u64) -> KEvent {
    ev.udata = udata;
    ev
}

#[test]
fn handles_can_move_between_threads() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<Kqueue>();
}

#[test]
fn many_ready_events_come_back_in_one_call() {
    let kq = Kqueue::new().unwrap();
    let pipes: Vec<_> = (0..300).map(|_| pipe()).collect();
    for (r, w) in &pipes {
        apply(&kq, &[kev(fd_ident(r), FILTER_READ, EV_ADD)]);
        crate::core::testutil::write_all(w, b"x");
    }
    let mut out = Vec::new();
    kq.control(&[], &mut out, 1000, Deadline::Immediate)
        .unwrap();
    assert_eq!(out.len(), 300);
    kq.control(&[], &mut out, 7, Deadline::Immediate).unwrap();
    assert_eq!(out.len(), 7);
}

#[test]
fn a_stale_pending_state_does_not_spin_with_maxevents_one() {
    // A level READ beside an edge-triggered WRITE of the same fd (once one
    // shared epoll entry, and the READ stayed active after delivery): once
    // its data is gone, a call with room for one event must wait, not spin.
    let kq = Kqueue::new().unwrap();
    let (a, b) = crate::core::testutil::socketpair();
    apply(
        &kq,
        &[
            kev(fd_ident(&a), FILTER_READ, EV_ADD),
            kev(fd_ident(&a), FILTER_WRITE, EV_ADD | EV_CLEAR),
        ],
    );
    crate::core::testutil::write_all(&b, b"x");
    let mut out = Vec::new();
    kq.control(&[], &mut out, 2, Deadline::Immediate).unwrap();
    assert_eq!(out.len(), 2);
    let mut byte = [0u8; 1];
    // SAFETY: byte is one writable byte.
    assert_eq!(
        unsafe { libc::read(a.as_raw_fd(), byte.as_mut_ptr().cast(), 1) },
        1
    );
    let t = Instant::now();
    let deadline = Deadline::after(Some(Duration::from_millis(100)));
    kq.control(&[], &mut out, 1, deadline).unwrap();
    assert!(out.is_empty(), "{out:?}");
    assert!(t.elapsed() >= Duration::from_millis(95));
    assert!(!readable(kq.fileno()));
}

#[test]
fn a_new_queue_is_idle_and_cloexec() {
    let kq = Kqueue::new().unwrap();
    // SAFETY: F_GETFD only reads the flags of an open fd.
    let flags = unsafe { libc::fcntl(kq.fileno(), libc::F_GETFD) };
    assert_eq!(flags & libc::FD_CLOEXEC, libc::FD_CLOEXEC);
    assert!(wait(&kq, 0).is_empty());
    assert!(!readable(kq.fileno()));
    assert!(!kq.is_forked());
}

#[test]
fn delete_of_a_missing_registration_is_enoent() {
    let kq = Kqueue::new().unwrap();
    let change = with_udata(kev(3, FILTER_USER, EV_DELETE), 77);
    let out = try_apply(&kq, &[change]).unwrap();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].flags, EV_DELETE | EV_ERROR);
    assert_eq!(out[0].data, libc::ENOENT as i64);
    assert_eq!(out[0].udata, 77, "error entries echo the change's udata");
    let mut out = Vec::new();
    let r = kq.control(&[change], &mut out, 0, Deadline::Immediate);
    assert_eq!(r, Err(OsError(libc::ENOENT)));
    assert_eq!(released(&kq), vec![77, 77]);
    // flags 0 or EV_ENABLE on a missing one: ENOENT too.
    let out = try_apply(&kq, &[kev(3, FILTER_USER, EV_ENABLE)]).unwrap();
    assert_eq!(out[0].data, libc::ENOENT as i64);
}

#[test]
fn a_failure_without_room_stops_the_changes() {
    let kq = Kqueue::new().unwrap();
    let changes = [
        with_udata(kev(1, FILTER_USER, EV_DELETE), 5),
        with_udata(kev(2, FILTER_USER, EV_ADD), 6),
    ];
    let mut out = Vec::new();
    let r = kq.control(&changes, &mut out, 0, Deadline::Immediate);
    assert_eq!(r, Err(OsError(libc::ENOENT)));
    let out = try_apply(&kq, &[kev(2, FILTER_USER, EV_DELETE)]).unwrap();
    assert_eq!(
        out[0].data,
        libc::ENOENT as i64,
        "the later ADD was not applied"
    );
    assert_eq!(released(&kq), vec![5, 6]);
}

#[test]
fn errors_are_returned_alone_without_waiting() {
    let kq = Kqueue::new().unwrap();
    apply(&kq, &[kevd(1, FILTER_USER, EV_ADD, TRIGGER, 0)]);
    let mut out = Vec::new();
    let t = Instant::now();
    let deadline = Deadline::after(Some(Duration::from_secs(5)));
    kq.control(&[kev(9, FILTER_USER, EV_DELETE)], &mut out, 8, deadline)
        .unwrap();
    assert!(t.elapsed() < Duration::from_secs(1));
    assert_eq!(out.len(), 1, "the pending USER event is not collected");
    assert_eq!(out[0].ident, 9);
}

#[test]
fn receipt_reports_every_change() {
    let kq = Kqueue::new().unwrap();
    apply(&kq, &[kevd(1, FILTER_USER, EV_ADD, TRIGGER, 0)]);
    let out = try_apply(
        &kq,
        &[
            kev(5, FILTER_USER, EV_ADD | EV_RECEIPT),
            kev(6, FILTER_USER, EV_DELETE | EV_RECEIPT),
        ],
    )
    .unwrap();
    assert_eq!(out.len(), 2);
    assert_eq!((out[0].ident, out[0].data), (5, 0));
    assert_ne!(out[0].flags & EV_ERROR, 0);
    assert_eq!((out[1].ident, out[1].data), (6, libc::ENOENT as i64));
    // The receipt-added registration exists.
    apply(&kq, &[kev(5, FILTER_USER, EV_DELETE)]);
}

#[test]
fn aio_and_unknown_filters_are_einval() {
    let kq = Kqueue::new().unwrap();
    let out = try_apply(&kq, &[kev(1, FILTER_AIO, EV_ADD), kev(1, -99, EV_ADD)]).unwrap();
    assert_eq!(out.len(), 2);
    assert!(out.iter().all(|e| e.data == libc::EINVAL as i64));
}

#[test]
fn add_of_an_existing_registration_modifies_it_and_swaps_udata() {
    let kq = Kqueue::new().unwrap();
    apply(&kq, &[with_udata(kevd(4, FILTER_USER, EV_ADD, 0, 1), 10)]);
    apply(&kq, &[with_udata(kevd(4, FILTER_USER, EV_ADD, 0, 2), 11)]);
    assert_eq!(released(&kq), vec![10]);
    // A change without EV_ADD never stores its udata.
    apply(&kq, &[with_udata(kevd(4, FILTER_USER, 0, TRIGGER, 3), 12)]);
    assert_eq!(released(&kq), vec![12]);
    let evs = wait(&kq, 0);
    assert_eq!(evs.len(), 1);
    assert_eq!((evs[0].udata, evs[0].data), (11, 3));
    apply(&kq, &[with_udata(kev(4, FILTER_USER, EV_DELETE), 13)]);
    assert_eq!(released(&kq), vec![11, 13]);
    assert!(wait(&kq, 0).is_empty());
}

#[test]
fn disable_and_enable() {
    let kq = Kqueue::new().unwrap();
    apply(
        &kq,
        &[kevd(1, FILTER_USER, EV_ADD | EV_DISABLE, TRIGGER, 0)],
    );
    assert!(wait(&kq, 0).is_empty());
    assert!(!readable(kq.fileno()));
    apply(&kq, &[kev(1, FILTER_USER, EV_ENABLE)]);
    assert!(readable(kq.fileno()));
    assert_eq!(wait(&kq, 0).len(), 1);
    apply(&kq, &[kev(1, FILTER_USER, EV_DISABLE)]);
    assert!(wait(&kq, 0).is_empty());
    assert!(!readable(kq.fileno()));
}

#[test]
fn oneshot_is_deleted_after_delivery() {
    let kq = Kqueue::new().unwrap();
    apply(
        &kq,
        &[with_udata(
            kevd(2, FILTER_USER, EV_ADD | EV_ONESHOT, TRIGGER, 0),
            21,
        )],
    );
    let evs = wait(&kq, 0);
    assert_eq!(evs.len(), 1);
    assert_ne!(evs[0].flags & EV_ONESHOT, 0);
    assert_eq!(evs[0].udata, 21);
    assert_eq!(released(&kq), vec![21]);
    assert!(wait(&kq, 0).is_empty());
    let out = try_apply(&kq, &[kev(2, FILTER_USER, EV_DELETE)]).unwrap();
    assert_eq!(out[0].data, libc::ENOENT as i64);
}

#[test]
fn dispatch_disables_after_delivery() {
    let kq = Kqueue::new().unwrap();
    apply(
        &kq,
        &[kevd(2, FILTER_USER, EV_ADD | EV_DISPATCH, TRIGGER, 0)],
    );
    assert_eq!(wait(&kq, 0).len(), 1);
    assert!(wait(&kq, 0).is_empty());
    apply(&kq, &[kev(2, FILTER_USER, EV_ENABLE)]);
    assert_eq!(wait(&kq, 0).len(), 1, "still triggered: no EV_CLEAR");
}

#[test]
fn maxevents_limits_and_rotates() {
    let kq = Kqueue::new().unwrap();
    let adds: Vec<_> = (1..=3)
        .map(|i| kevd(i, FILTER_USER, EV_ADD, TRIGGER, 0))
        .collect();
    apply(&kq, &adds);
    let mut seen = std::collections::HashSet::new();
    for _ in 0..2 {
        let mut out = Vec::new();
        kq.control(&[], &mut out, 2, Deadline::Immediate).unwrap();
        assert_eq!(out.len(), 2);
        seen.extend(out.iter().map(|e| e.ident));
    }
    assert_eq!(seen.len(), 3, "every event gets its turn");
}

#[test]
fn maxevents_zero_never_waits() {
    let kq = Kqueue::new().unwrap();
    apply(&kq, &[kevd(1, FILTER_USER, EV_ADD, TRIGGER, 0)]);
    let mut out = Vec::new();
    let t = Instant::now();
    let deadline = Deadline::after(Some(Duration::from_secs(5)));
    kq.control(&[], &mut out, 0, deadline).unwrap();
    assert!(out.is_empty());
    assert!(t.elapsed() < Duration::from_secs(1));
}

#[test]
fn waits_until_the_deadline_when_idle() {
    let kq = Kqueue::new().unwrap();
    let t = Instant::now();
    assert!(wait(&kq, 100).is_empty());
    assert!(t.elapsed() >= Duration::from_millis(95));
}

#[test]
fn a_trigger_from_another_thread_wakes_a_waiter() {
    let kq = Kqueue::new().unwrap();
    apply(&kq, &[kev(1, FILTER_USER, EV_ADD | EV_CLEAR)]);
    let t = Instant::now();
    std::thread::scope(|s| {
        s.spawn(|| {
            std::thread::sleep(Duration::from_millis(50));
            apply(&kq, &[kevd(1, FILTER_USER, 0, TRIGGER, 0)]);
        });
        let evs = wait(&kq, 5000);
        assert_eq!(evs.len(), 1);
    });
    assert!(t.elapsed() < Duration::from_secs(3));
}

#[test]
fn fileno_is_readable_while_events_are_pending() {
    let kq = Kqueue::new().unwrap();
    let (r, w) = pipe();
    apply(
        &kq,
        &[
            kev(fd_ident(&r), FILTER_READ, EV_ADD),
            kev(1, FILTER_USER, EV_ADD),
        ],
    );
    assert!(!readable(kq.fileno()));
    crate::core::testutil::write_all(&w, b"x");
    assert!(readable(kq.fileno()));
    apply(&kq, &[kev(fd_ident(&r), FILTER_READ, EV_DELETE)]);
    assert!(!readable(kq.fileno()));
    apply(&kq, &[kevd(1, FILTER_USER, 0, TRIGGER, 0)]);
    assert!(readable(kq.fileno()));
    apply(&kq, &[kev(1, FILTER_USER, EV_DELETE)]);
    assert!(!readable(kq.fileno()));
}

#[test]
fn from_fd_shares_the_queue() {
    let kq = Kqueue::new().unwrap();
    let kq2 = Kqueue::from_fd(kq.fileno()).unwrap();
    assert_ne!(kq.fileno(), kq2.fileno());
    assert_eq!(kq.queue_id(), kq2.queue_id());
    assert_ne!(kq.queue_id(), Kqueue::new().unwrap().queue_id());
    apply(
        &kq2,
        &[with_udata(kevd(1, FILTER_USER, EV_ADD, TRIGGER, 0), 31)],
    );
    let evs = wait(&kq, 0);
    assert_eq!((evs.len(), evs[0].udata), (1, 31));
    drop(kq);
    assert_eq!(
        wait(&kq2, 0).len(),
        1,
        "the queue lives on in the other handle"
    );
    let (r, _w) = pipe();
    assert_eq!(
        Kqueue::from_fd(r.as_raw_fd()).err(),
        Some(OsError(libc::EINVAL))
    );
    assert_eq!(Kqueue::from_fd(-1).err(), Some(OsError(libc::EINVAL)));
}

#[test]
fn the_last_close_releases_every_token() {
    let kq = Kqueue::new().unwrap();
    let kq2 = Kqueue::from_fd(kq.fileno()).unwrap();
    apply(&kq, &[with_udata(kev(1, FILTER_USER, EV_ADD), 41)]);
    apply(&kq, &[with_udata(kev(2, FILTER_USER, EV_ADD), 42)]);
    try_apply(&kq, &[with_udata(kev(3, FILTER_USER, EV_DELETE), 43)]).unwrap();
    assert_eq!(
        kq.close(),
        vec![43],
        "not the last handle: only released ones"
    );
    let mut rest = kq2.close();
    rest.sort_unstable();
    assert_eq!(rest, vec![41, 42]);
}

#[test]
fn an_inherited_queue_is_marked_forked_in_the_child() {
    let kq = Kqueue::new().unwrap();
    // SAFETY: the child only reads atomics, calls control (which refuses
    // before taking any lock) and _exit()s: nothing that could deadlock on a
    // lock held by another thread of the parent.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0);
    if pid == 0 {
        let mut out = Vec::new();
        let refused = kq.control(&[], &mut out, 1, Deadline::Immediate).is_err();
        let code = if kq.is_forked() && refused { 0 } else { 1 };
        // SAFETY: ends the child at once, running no destructors.
        unsafe { libc::_exit(code) };
    }
    let mut status = 0;
    // SAFETY: waits for the child just forked; status is a valid int.
    assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
    assert_eq!(status, 0, "child saw is_forked() and a refusing control");
    assert!(!kq.is_forked());
    assert!(wait(&kq, 0).is_empty());
}

#[test]
fn descriptors_stay_flat_over_many_add_delete_cycles() {
    let kq = Kqueue::new().unwrap();
    let (r, w) = pipe();
    let dir = temp_dir("flat");
    let file = std::fs::File::create(dir.join("f")).unwrap();
    let me = std::process::id() as u64;
    let cases = [
        kev(fd_ident(&r), FILTER_READ, 0),
        kev(fd_ident(&w), FILTER_WRITE, 0),
        kevd(1, FILTER_TIMER, 0, 0, 1000),
        kev(2, FILTER_USER, 0),
        kev(libc::SIGWINCH as u64, FILTER_SIGNAL, 0),
        kevd(me, FILTER_PROC, 0, NOTE_EXIT, 0),
        kevd(fd_ident(&file), FILTER_VNODE, 0, NOTE_WRITE, 0),
    ];
    // Warm up (the inotify instance and the like are made once per queue).
    for c in &cases {
        apply(
            &kq,
            &[
                KEvent {
                    flags: EV_ADD,
                    ..*c
                },
                KEvent {
                    flags: EV_DELETE,
                    ..*c
                },
            ],
        );
    }
    let before = open_fd_count();
    for c in &cases {
        let pair = [
            KEvent {
                flags: EV_ADD,
                ..*c
            },
            KEvent {
                flags: EV_DELETE,
                ..*c
            },
        ];
        for _ in 0..10_000 {
            apply(&kq, &pair);
        }
    }
    let after = open_fd_count();
    // Other tests open and close descriptors meanwhile: allow a little noise.
    assert!(after <= before + 16, "fds grew from {before} to {after}");
    drop(file);
    let _ = std::fs::remove_dir_all(dir);
}
