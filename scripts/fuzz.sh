#!/bin/sh
# Fuzzes the kqueue emulation's changelist handling and random operation
# sequences (fuzz/src/driver.rs) for a bounded time. Not part of ./make.sh test.
#   scripts/fuzz.sh [SECONDS]          default 60
#   FUZZ_SANITIZER=none scripts/fuzz.sh 30   without AddressSanitizer
#   FUZZ_MERGE=1 scripts/fuzz.sh 300         then fold new coverage into the
#                                            kept corpus (fuzz/corpus/kqueue)
# Only stable Rust is installed: cargo-fuzz's nightly flags are accepted with
# RUSTC_BOOTSTRAP=1 (the stable toolchain ships the ASan runtime). If the
# libFuzzer build fails (no cargo-fuzz, no C++ compiler), the plain
# random-input driver (fuzz/src/random_driver.rs) runs instead.
# New inputs go to a scratch directory; crashes are written to
# fuzz/artifacts/kqueue/: copy one into fuzz/regressions/ to keep it as a
# test (tests/kqueue_model.rs replays that directory and the corpus).
set -eu
cd "$(dirname "$0")/../fuzz"
secs=${1:-60}
san=${FUZZ_SANITIZER:-address}
export RUSTC_BOOTSTRAP=1
if ! command -v cargo >/dev/null 2>&1 && [ -x "$HOME/.cargo/bin/cargo" ]; then
  PATH="$HOME/.cargo/bin:$PATH"
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "== installing cargo-fuzz (crates.io)"
  cargo install --locked cargo-fuzz >/dev/null 2>&1 || true
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
if cargo fuzz build -s "$san" kqueue >/dev/null 2>&1 ||
   { san=none; cargo fuzz build -s none kqueue >/dev/null 2>&1; }; then
  echo "== libFuzzer, sanitizer: $san, $secs s"
  cargo fuzz run -s "$san" kqueue "$work" corpus/kqueue -- \
    -max_total_time="$secs" -print_final_stats=1 -timeout=10 2>&1 |
    grep -E '^(#[0-9]+ +DONE|Done|stat::|==[0-9]+== ?ERROR|.*panicked|SUMMARY)' || true
  status=0
  if ls artifacts/kqueue/crash-* >/dev/null 2>&1; then
    echo "crash inputs in fuzz/artifacts/kqueue/:"; ls artifacts/kqueue/
    status=1
  fi
  if [ "${FUZZ_MERGE:-0}" = 1 ]; then
    cargo fuzz run -s "$san" kqueue corpus/kqueue "$work" -- -merge=1 >/dev/null 2>&1
    echo "corpus: $(ls corpus/kqueue | wc -l) files"
  fi
  exit $status
else
  echo "== libFuzzer build failed: plain random driver, $secs s"
  cargo run --quiet --release --no-default-features --bin random_driver -- "$secs"
fi
