//! An OS error that carries its errno, so that the binding can hand Lua
//! `nil, strerror(errno), errno` exactly like `io.open` does.

use std::fmt;

/// A failed system call: just the errno. The message is computed on demand
/// (only on the error path) with `strerror_r`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct OsError(pub i32);

pub type OsResult<T> = Result<T, OsError>;

impl OsError {
    /// The errno left by the last failing libc call on this thread.
    pub fn last() -> OsError {
        OsError(
            std::io::Error::last_os_error()
                .raw_os_error()
                .unwrap_or(libc::EIO),
        )
    }

    pub fn errno(self) -> i32 {
        self.0
    }

    /// The C library's text for this errno, e.g. "Bad file descriptor".
    pub fn message(self) -> String {
        super::sys::strerror(self.0).unwrap_or_else(|| format!("Unknown error {}", self.0))
    }
}

impl fmt::Debug for OsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "OsError({}, {:?})", self.0, self.message())
    }
}

impl fmt::Display for OsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message())
    }
}

impl std::error::Error for OsError {}

/// Turns the `-1 and errno` convention of a libc call into a `Result`.
pub fn cvt(rc: libc::c_int) -> OsResult<libc::c_int> {
    if rc < 0 {
        Err(OsError::last())
    } else {
        Ok(rc)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_is_strerror_text() {
        assert_eq!(OsError(libc::EBADF).message(), "Bad file descriptor");
        assert_eq!(OsError(libc::ENOENT).message(), "No such file or directory");
        assert_eq!(OsError(libc::EEXIST).message(), "File exists");
    }

    #[test]
    fn cvt_maps_minus_one_to_errno() {
        // SAFETY: closing an fd number that is certainly not open only sets errno.
        let rc = unsafe { libc::close(-1) };
        assert_eq!(cvt(rc), Err(OsError(libc::EBADF)));
        assert_eq!(cvt(5), Ok(5));
    }
}
