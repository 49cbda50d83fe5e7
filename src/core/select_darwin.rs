//! `select.select` on macOS: select(2), because macOS poll(2) answers
//! POLLNVAL for terminals and devices (why CPython uses select(2) there too).
//!
//! The descriptor sets are sized to the highest descriptor and passed to
//! `select$DARWIN_EXTSN`, the symbol `_DARWIN_UNLIMITED_SELECT` selects,
//! which takes sets of any size: there is still no FD_SETSIZE limit.

use crate::core::deadline::Deadline;
use crate::core::error::OsResult;
use crate::core::sys;

/// Bits per word of Darwin's `fd_set` (`__int32_t fds_bits[]`).
const NFDBITS: usize = 32;

fn set(bits: &mut [u32], fd: usize) {
    bits[fd / NFDBITS] |= 1 << (fd % NFDBITS);
}

fn is_set(bits: &[u32], fd: usize) -> bool {
    bits[fd / NFDBITS] & (1 << (fd % NFDBITS)) != 0
}

/// One select(2) over the entries of `fds` (each asks for POLLIN, POLLOUT or
/// POLLPRI); sets each entry's `revents` to the bit it asked for when ready.
/// Returns how many entries are ready.
pub(crate) fn sys_select(fds: &mut [libc::pollfd], deadline: Deadline) -> OsResult<usize> {
    let maxfd = fds.iter().map(|p| p.fd.max(0) as usize).max().unwrap_or(0);
    let words = maxfd / NFDBITS + 1;
    let mut sets = vec![0u32; 3 * words];
    let (r, rest) = sets.split_at_mut(words);
    let (w, e) = rest.split_at_mut(words);
    for p in fds.iter_mut() {
        p.revents = 0;
        let fd = p.fd as usize;
        match p.events {
            libc::POLLIN => set(r, fd),
            libc::POLLOUT => set(w, fd),
            _ => set(e, fd),
        }
    }
    let tv = deadline.remaining().map(|d| libc::timeval {
        tv_sec: d.as_secs().min(libc::time_t::MAX as u64) as libc::time_t,
        // Round up, so a short wait is not a poll.
        tv_usec: d.subsec_nanos().div_ceil(1000).min(999_999) as libc::suseconds_t,
    });
    sys::select_unlimited((maxfd + 1) as libc::c_int, r, w, e, tv)?;
    let mut n = 0;
    for p in fds.iter_mut() {
        let fd = p.fd as usize;
        let ready = match p.events {
            libc::POLLIN => is_set(r, fd),
            libc::POLLOUT => is_set(w, fd),
            _ => is_set(e, fd),
        };
        if ready {
            p.revents = p.events;
            n += 1;
        }
    }
    Ok(n)
}
