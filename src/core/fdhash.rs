//! A hasher for maps keyed by descriptors and other small integers.
//!
//! std's SipHash guards against adversarial keys, which descriptor numbers
//! (handed out by the kernel) are not; it dominated registration churn. One
//! multiply by a 64-bit odd constant (Fibonacci hashing) spreads small dense
//! integers over the high bits, which is what hashbrown's probing reads.

use std::hash::{BuildHasherDefault, Hasher};

#[derive(Default, Clone, Copy)]
pub struct FdHasher(u64);

impl Hasher for FdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ b as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }

    fn write_i32(&mut self, n: i32) {
        self.write_u64(n as u32 as u64);
    }

    fn write_u32(&mut self, n: u32) {
        self.write_u64(n as u64);
    }

    fn write_i64(&mut self, n: i64) {
        self.write_u64(n as u64);
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0 ^ n).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }

    fn write_i16(&mut self, n: i16) {
        self.write_u64(n as u16 as u64);
    }

    fn write_usize(&mut self, n: usize) {
        self.write_u64(n as u64);
    }
}

/// `HashMap<K, V, FdHash>`: a map with the descriptor hasher.
pub type FdHash = BuildHasherDefault<FdHasher>;

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn maps_descriptors() {
        let mut m: HashMap<i32, usize, FdHash> = HashMap::default();
        for fd in 0..10_000 {
            m.insert(fd, fd as usize * 2);
        }
        assert_eq!(m.len(), 10_000);
        assert!((0..10_000).all(|fd| m[&fd] == fd as usize * 2));
        assert!(!m.contains_key(&10_000));
    }

    #[test]
    fn tuple_keys_hash_every_part() {
        let h = |k: (u64, i16)| {
            let mut s = FdHasher::default();
            std::hash::Hash::hash(&k, &mut s);
            s.finish()
        };
        assert_ne!(h((1, -1)), h((1, -2)));
        assert_ne!(h((1, -1)), h((2, -1)));
    }
}
