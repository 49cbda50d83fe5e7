-- lua-select: Python's select module (select, poll, epoll, kqueue) for Lua.
--
-- From a checkout, build and install with (any of 5.1, 5.2, 5.3, 5.4):
--   luarocks --lua-version 5.4 make rockspec/lua-select-scm-1.rockspec
-- The native part is Rust (mlua + libc): cargo must be on PATH. Nothing is
-- fetched from a rocks server. On macOS cargo builds libselect.dylib, which
-- build-so.sh installs as select.so. The build asks the interpreter luarocks targets,
-- $(LUA), which Lua it is and builds for that version (see scripts/build-so.sh).
--
-- `source.url` is only read by `luarocks pack`, `install` and `build` of this
-- file (never by `make`). OWNER is a placeholder: replace it with the account
-- the repository is published under (scripts/test-luarocks.sh points it at a
-- temporary clone instead).
rockspec_format = "3.0"
package = "lua-select"
version = "scm-1"

source = {
  url = "git+https://github.com/OWNER/lua-select.git",
}

description = {
  summary = "Python's select module for Lua: select, poll, epoll, kqueue/kevent and selectors",
  detailed = [[
select.select, select.poll, select.epoll (Linux) and select.kqueue/select.kevent
with Python's names, arguments, time units and constants: kqueue is the kernel's
own on macOS and the BSDs and emulated on Linux on top of epoll; and
require "select.selectors", a port of Python's selectors module.
Errors from system calls are returned as nil, message, errno.
]],
  license = "MIT",
  labels = { "select", "poll", "epoll", "kqueue", "io", "event" },
}

supported_platforms = { "linux", "macosx", "freebsd", "openbsd", "netbsd" }

dependencies = {
  "lua >= 5.1, < 5.5",
}

build = {
  type = "command",
  build_command = [[sh scripts/build-so.sh "$(LUA)" build/rock release]],
  install = {
    lib = {
      ["select"] = "build/rock/select.so",
    },
    lua = {
      ["select.selectors"] = "lua/select/selectors.lua",
      ["select.compat"] = "lua/select/compat.lua",
    },
  },
  copy_directories = {},
}
