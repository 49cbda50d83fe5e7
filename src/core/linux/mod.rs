//! Linux-only parts of the core: epoll(7), and kqueue emulated on top of
//! epoll, timerfd, signalfd, pidfd, inotify and eventfd, over their system
//! calls (sys.rs).

pub mod epoll;
pub mod kqueue;
pub mod sys;
