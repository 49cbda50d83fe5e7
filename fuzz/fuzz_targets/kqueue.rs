//! libFuzzer target: the kqueue emulation's changelist handling and random
//! operation sequences (see src/driver.rs for how bytes become operations).
#![no_main]

#[path = "../src/driver.rs"]
mod driver;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    driver::run(data);
});
