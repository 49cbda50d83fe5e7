//! A map from descriptors to array positions, for the poll set.
//!
//! A process's descriptors are small numbers handed out lowest-first, so an
//! array indexed by descriptor is both the fastest map (one bounds check, no
//! hashing) and the smallest (4 bytes per number up to the highest in use).
//! Descriptors past [`DENSE_LIMIT`] (possible: `poll` accepts any number, open
//! or not) go to a hash map instead, so a huge number never makes a huge array.

use std::collections::HashMap;
use std::os::fd::RawFd;

use super::fdhash::FdHash;

/// Descriptors below this live in the array (at most 256 KiB of it).
const DENSE_LIMIT: usize = 1 << 16;

#[derive(Default)]
pub struct FdMap {
    /// `dense[fd]` is the position + 1, or 0 when `fd` is not in the map.
    dense: Vec<u32>,
    sparse: HashMap<RawFd, usize, FdHash>,
}

impl FdMap {
    #[inline]
    pub fn get(&self, fd: RawFd) -> Option<usize> {
        match dense_index(fd) {
            Some(i) => match self.dense.get(i) {
                Some(&v) if v != 0 => Some(v as usize - 1),
                _ => None,
            },
            None => self.sparse.get(&fd).copied(),
        }
    }

    /// Maps `fd` to `pos`; false (the map unchanged) if it could not grow.
    /// Positions index an array with one entry per descriptor (at most 2^31
    /// of them), so `pos + 1` fits the array's `u32`s.
    #[inline]
    pub fn insert(&mut self, fd: RawFd, pos: usize) -> bool {
        match dense_index(fd) {
            Some(i) if i < self.dense.len() => {
                self.dense[i] = pos as u32 + 1;
                true
            }
            _ => self.insert_slow(fd, pos),
        }
    }

    #[inline(never)]
    fn insert_slow(&mut self, fd: RawFd, pos: usize) -> bool {
        match dense_index(fd) {
            Some(i) => {
                // Grow to the next power of two: amortised O(1), and the
                // array stays within twice the highest descriptor.
                let len = (i + 1).next_power_of_two();
                if self
                    .dense
                    .try_reserve_exact(len - self.dense.len())
                    .is_err()
                {
                    return false;
                }
                self.dense.resize(len, 0);
                self.dense[i] = pos as u32 + 1;
            }
            None => {
                if self.sparse.try_reserve(1).is_err() {
                    return false;
                }
                self.sparse.insert(fd, pos);
            }
        }
        true
    }

    /// Removes `fd`, returning its position.
    #[inline]
    pub fn remove(&mut self, fd: RawFd) -> Option<usize> {
        match dense_index(fd) {
            Some(i) => match self.dense.get_mut(i) {
                Some(v) if *v != 0 => {
                    let pos = *v as usize - 1;
                    *v = 0;
                    Some(pos)
                }
                _ => None,
            },
            None => self.sparse.remove(&fd),
        }
    }
}

#[inline(always)]
fn dense_index(fd: RawFd) -> Option<usize> {
    usize::try_from(fd).ok().filter(|&i| i < DENSE_LIMIT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_and_huge_descriptors() {
        let mut m = FdMap::default();
        for (fd, pos) in [(0, 0), (3, 1), (70_000, 2), (RawFd::MAX, 3), (65_535, 4)] {
            assert_eq!(m.get(fd), None);
            assert!(m.insert(fd, pos));
            assert_eq!(m.get(fd), Some(pos));
        }
        assert!(m.dense.len() <= DENSE_LIMIT);
        assert_eq!(m.sparse.len(), 2);
        assert!(m.insert(3, 9));
        assert_eq!(m.get(3), Some(9));
        assert_eq!(m.remove(3), Some(9));
        assert_eq!(m.remove(3), None);
        assert_eq!(m.get(3), None);
        assert_eq!(m.remove(RawFd::MAX), Some(3));
        assert_eq!(m.get(RawFd::MAX), None);
        assert_eq!(m.get(-1), None);
        assert_eq!(m.get(0), Some(0));
        assert_eq!(m.get(70_000), Some(2));
    }

    #[test]
    fn the_array_grows_with_the_highest_descriptor_only() {
        let mut m = FdMap::default();
        assert!(m.insert(5, 0));
        assert_eq!(m.dense.len(), 8);
        assert!(m.insert(1000, 1));
        assert_eq!(m.dense.len(), 1024);
    }
}
