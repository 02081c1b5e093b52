//! Disk faults a test makes the state dir show: a write that fails (ENOSPC,
//! EIO), an `fdatasync` that fails, a record torn half way. Production
//! never sets any; the check is one `Option` per write.

use std::io;
use std::sync::{Arc, Mutex, PoisonError};

/// A handle a test keeps to turn faults on and off while the daemon runs.
#[derive(Debug, Clone, Default)]
pub struct DiskFaults(Arc<Mutex<Faults>>);

#[derive(Debug, Default)]
struct Faults {
    /// Every write fails with this errno until cleared (a full disk).
    write: Option<i32>,
    /// Every sync fails with this errno until cleared.
    sync: Option<i32>,
    /// The next log append writes half its record, then fails with EIO.
    tear_next: bool,
}

/// What an append is to do.
pub(super) enum Append {
    Whole,
    /// Write only this many bytes, then fail.
    Torn(usize),
}

impl DiskFaults {
    fn with<R>(&self, f: impl FnOnce(&mut Faults) -> R) -> R {
        f(&mut self.0.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// Writes fail with `errno` (e.g. `nix::errno::Errno::ENOSPC as i32`) until `clear`.
    pub fn fail_writes(&self, errno: i32) {
        self.with(|f| f.write = Some(errno));
    }

    /// `fsync` and `fdatasync` fail with `errno` until `clear`.
    pub fn fail_syncs(&self, errno: i32) {
        self.with(|f| f.sync = Some(errno));
    }

    /// The next record appended is torn: half of it reaches the file.
    pub fn tear_next_append(&self) {
        self.with(|f| f.tear_next = true);
    }

    /// The disk works again (space is back).
    pub fn clear(&self) {
        self.with(|f| *f = Faults::default());
    }

    pub(super) fn write(&self) -> io::Result<()> {
        self.with(|f| {
            f.write
                .map_or(Ok(()), |e| Err(io::Error::from_raw_os_error(e)))
        })
    }

    pub(super) fn sync(&self) -> io::Result<()> {
        self.with(|f| {
            f.sync
                .map_or(Ok(()), |e| Err(io::Error::from_raw_os_error(e)))
        })
    }

    pub(super) fn append(&self, len: usize) -> Append {
        self.with(|f| {
            if std::mem::take(&mut f.tear_next) {
                Append::Torn(len / 2)
            } else {
                Append::Whole
            }
        })
    }
}
