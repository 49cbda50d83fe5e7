//! The fuzz driver without libFuzzer: random inputs from a fixed-seed
//! xorshift generator, for machines where cargo-fuzz cannot build.
//!   cargo run --release --no-default-features --bin random_driver -- [SECONDS] [SEED]
//! Prints the number of inputs run; a failing input is written to
//! fuzz/regressions/crash-<seed>-<n> before the panic propagates.

#[path = "driver.rs"]
mod driver;

use std::time::{Duration, Instant};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let secs: u64 = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(10);
    let seed: u64 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(0x5eed);
    let mut state = seed | 1;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let end = Instant::now() + Duration::from_secs(secs);
    let mut runs = 0u64;
    while Instant::now() < end {
        let len = (next() % 512) as usize;
        let data: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        let path = format!(
            "{}/regressions/crash-{seed}-{runs}",
            env!("CARGO_MANIFEST_DIR")
        );
        let result = std::panic::catch_unwind(|| driver::run(&data));
        if let Err(e) = result {
            let _ = std::fs::write(&path, &data);
            eprintln!("input {runs} failed; saved as {path}");
            std::panic::resume_unwind(e);
        }
        runs += 1;
    }
    println!("random_driver: {runs} inputs in {secs} s (seed {seed}), no failure");
}
