//! The native core: safe Rust over the OS, with no knowledge of Lua.
//!
//! Every `unsafe` block and libc call of the crate's OS side lives below this
//! module, each with a `// SAFETY:` comment.
//!
//! The portable POSIX parts (poll set, select, deadlines and EINTR, errors,
//! fd maps) live here; each platform's own parts live in a submodule
//! compiled only there and are re-exported under the same paths
//! (`core::epoll`, `core::kqueue`), so callers name one interface whichever
//! backend is compiled in.

pub mod deadline;
pub mod error;
pub mod fdhash;
pub mod fdmap;
pub mod pollset;
pub mod select;

#[cfg(target_os = "linux")]
mod linux;
#[cfg(target_os = "linux")]
pub use linux::{epoll, kqueue};
#[cfg(test)]
pub(crate) mod testutil;
