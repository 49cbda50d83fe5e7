//! The kernel's own kqueue(2)/kevent(2): macOS, FreeBSD, OpenBSD and NetBSD;
//! on Linux, libkqueue's implementation of the same interface
//! (feature `native-kqueue`, used to test this backend there).

pub mod kqueue;
