//! Linux-only parts of the core: epoll(7), and kqueue emulated on top of
//! epoll, timerfd, signalfd, pidfd, inotify and eventfd.

pub mod epoll;
pub mod kqueue;
