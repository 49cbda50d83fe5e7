//! The native core: safe Rust over the OS, with no knowledge of Lua.
//!
//! Every `unsafe` block and libc call of the crate's OS side lives below this
//! module, each with a `// SAFETY:` comment, and every system call goes
//! through one layer: `sys` (portable) and `linux::sys` (Linux only), apart
//! from the native backend's kqueue(2)/kevent(2) wrappers (`bsd::kqueue`).
//! EINTR is retried in one helper, `sys::retry_eintr`.
//!
//! The portable POSIX parts (system calls, poll set, select, deadlines,
//! errors, fd maps) live here; each platform's own parts live in a submodule
//! compiled only there and are re-exported under the same paths
//! (`core::epoll`, `core::kqueue`), so callers name one interface whichever
//! backend is compiled in.

pub mod deadline;
pub mod error;
pub mod fdhash;
pub mod fdmap;
pub mod fork;
pub mod handles;
pub mod kevent;
pub mod pollset;
pub mod select;
#[cfg(target_os = "macos")]
mod select_darwin;
pub mod sys;

/// epoll and the kqueue emulation (Linux only).
#[cfg(target_os = "linux")]
pub mod linux;
#[cfg(target_os = "linux")]
pub use linux::epoll;
#[cfg(all(target_os = "linux", not(feature = "native-kqueue")))]
pub use linux::kqueue;

/// The kernel's kqueue (the BSDs and macOS; libkqueue on Linux).
#[cfg(any(
    target_os = "macos",
    target_os = "freebsd",
    target_os = "openbsd",
    target_os = "netbsd",
    feature = "native-kqueue"
))]
pub mod bsd;
#[cfg(any(
    target_os = "macos",
    target_os = "freebsd",
    target_os = "openbsd",
    target_os = "netbsd",
    feature = "native-kqueue"
))]
pub use bsd::kqueue;
#[cfg(test)]
pub(crate) mod testutil;

/// The native backend's token bookkeeping is portable Rust: its unit tests
/// run on Linux too, against libkqueue's (FreeBSD's) constants.
#[cfg(all(test, target_os = "linux", not(feature = "native-kqueue")))]
#[path = "bsd/kqueue"]
mod native_tokens {
    mod consts;
    mod tokens;
}
