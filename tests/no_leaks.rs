//! Descriptor accounting for the core's objects. One test function, so that no
//! other test thread opens or closes descriptors while it counts.

use select::core::deadline::Deadline;
use select::core::epoll::Epoll;
use select::core::pollset::PollSet;
use select::core::select::{Interest, Select};

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

#[test]
fn objects_and_calls_leave_the_fd_count_flat() {
    let before = open_fds();
    for _ in 0..10_000 {
        let mut ep = Epoll::new().unwrap();
        ep.register(0, libc::EPOLLIN as u32).ok();
        ep.wait(Deadline::Immediate, None).unwrap();
        let mut p = PollSet::new();
        p.register(0, libc::POLLIN as u16).unwrap();
        p.poll(Deadline::Immediate).unwrap();
    }
    let mut s = Select::new();
    for _ in 0..10_000 {
        s.clear();
        s.push(1, Interest::Write);
        s.wait(Deadline::Immediate).unwrap();
    }
    assert_eq!(open_fds(), before);
}
