//! The native core: safe Rust over the OS, with no knowledge of Lua.
//!
//! Every `unsafe` block and libc call of the crate's OS side lives below this
//! module, each with a `// SAFETY:` comment.

pub mod deadline;
pub mod epoll;
pub mod error;
pub mod fdhash;
pub mod fdmap;
pub mod kqueue;
pub mod pollset;
pub mod select;
#[cfg(test)]
pub(crate) mod testutil;
