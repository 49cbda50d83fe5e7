//! lua-select: Python's `select` module for Lua.
//!
//! `core` is the native part (safe Rust over the OS, no Lua); `lua` is the
//! binding, compiled when one Lua version feature is chosen.

pub mod core;

#[cfg(any(
    feature = "lua51",
    feature = "lua52",
    feature = "lua53",
    feature = "lua54",
    feature = "luajit"
))]
mod lua;
