#!/bin/sh
# Type-checks the crate for the BSDs and macOS from Linux: `cargo check` of
# the library for each target and Lua feature, with the standard library
# built from source (nothing links or runs). Prints one "ok"/"not ok" line
# per target and feature; warnings count as failures. Exit status 1 if any
# failed.
#
# Needs Debian's Rust with its sources (apt-get install rustc-web cargo-web
# rust-web-src: rustc at /usr/bin/rustc); std's first build for a target takes
# about 80 s, kept in target/cross for the next run.
#   scripts/cross-check.sh [target...]
set -u
cd "$(dirname "$0")/.."

TARGETS=${*:-"x86_64-unknown-freebsd aarch64-apple-darwin x86_64-apple-darwin x86_64-unknown-openbsd x86_64-unknown-netbsd"}
FEATURES="lua54 lua51 luajit"
RUSTC_WEB=${RUSTC_WEB:-/usr/bin/rustc}
CARGO_WEB=${CARGO_WEB:-/usr/bin/cargo}

if [ ! -x "$RUSTC_WEB" ] || [ ! -x "$CARGO_WEB" ]; then
  echo "not ok - cross-check: $RUSTC_WEB or $CARGO_WEB missing (apt-get install rustc-web cargo-web rust-web-src)"
  exit 1
fi

failed=0
for t in $TARGETS; do
  for f in $FEATURES; do
    log=$(RUSTC_BOOTSTRAP=1 RUSTC="$RUSTC_WEB" "$CARGO_WEB" check --quiet \
      -Zbuild-std=std,panic_unwind --target "$t" --features "$f" --lib \
      --target-dir target/cross 2>&1)
    rc=$?
    if [ "$rc" = 0 ] && ! printf '%s\n' "$log" | grep -q '^warning'; then
      echo "ok - cargo check --target $t --features $f"
    else
      echo "not ok - cargo check --target $t --features $f"
      printf '%s\n' "$log" | grep -E '^(error|warning)' -A8 | head -40 | sed 's/^/#   /'
      failed=1
    fi
  done
done
exit $failed
