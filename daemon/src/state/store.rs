//! The state directory: a lock that lets one daemon own it, and the state
//! file, replaced atomically. A file that cannot be read back is moved
//! aside, never deleted; one from a newer ifad is left where it is.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use rustix::fs::FlockOperation;

use crate::core::ledger::Millis;
use crate::state::{DecodeError, Saved, Snapshot, body, decode, encode};

const STATE: &str = "state";
const LOCK: &str = "lock";

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("state dir {dir} is in use by another ifad ({holder}); one daemon per state dir")]
    Locked { dir: PathBuf, holder: String },
    #[error(
        "{path}: {source}; refusing to start rather than overwrite it (move it away to start afresh)"
    )]
    Newer {
        path: PathBuf,
        #[source]
        source: DecodeError,
    },
}

fn io_at(path: &Path) -> impl FnOnce(io::Error) -> StateError + '_ {
    move |source| StateError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// What was found in the state dir.
#[derive(Debug)]
pub enum Loaded {
    /// No state yet: a first start.
    Empty,
    Restored(Saved),
    /// The file could not be read back; it was moved to `moved_to`.
    Corrupt {
        reason: String,
        moved_to: PathBuf,
    },
}

/// An owned (locked) state dir.
pub struct StateDir {
    dir: PathBuf,
    _lock: File,
    /// The body last made durable, to skip writes that change nothing.
    last: Option<Vec<u8>>,
}

impl StateDir {
    /// Creates the dir if needed and takes its lock, or says who holds it.
    pub fn open(dir: &Path) -> Result<StateDir, StateError> {
        if !dir.exists() {
            fs::create_dir_all(dir).map_err(io_at(dir))?;
            // A new directory is durable only once its parent is.
            if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
                sync_dir(parent)?;
            }
        }
        let path = dir.join(LOCK);
        let mut lock = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io_at(&path))?;
        if rustix::fs::flock(&lock, FlockOperation::NonBlockingLockExclusive).is_err() {
            let mut holder = String::new();
            if let Err(e) = lock.read_to_string(&mut holder) {
                // Only the holder's pid is lost: the refusal stands.
                holder = format!("pid unreadable: {e}");
            }
            let holder = match holder.trim() {
                "" => "pid unknown".to_string(),
                pid => format!("pid {pid}"),
            };
            return Err(StateError::Locked {
                dir: dir.to_path_buf(),
                holder,
            });
        }
        lock.set_len(0).map_err(io_at(&path))?;
        writeln!(lock, "{}", std::process::id()).map_err(io_at(&path))?;
        Ok(StateDir {
            dir: dir.to_path_buf(),
            _lock: lock,
            last: None,
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn path(&self) -> PathBuf {
        self.dir.join(STATE)
    }

    /// Reads the state back. Unreadable or corrupt: moved aside as
    /// `state.corrupt-<unix seconds>`. Newer format: an error, file untouched.
    pub fn load(&mut self) -> Result<Loaded, StateError> {
        let path = self.path();
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Loaded::Empty),
            // EIO, EMFILE, EACCES: the file may be fine; do not start
            // without it, and never move it aside for that.
            Err(source) => return Err(StateError::Io { path, source }),
        };
        match decode(&bytes) {
            Ok(saved) => {
                self.last = Some(body(&saved.snapshot));
                Ok(Loaded::Restored(saved))
            }
            Err(source @ DecodeError::Newer { .. }) => Err(StateError::Newer { path, source }),
            Err(e) => self.move_aside(e.to_string()),
        }
    }

    fn move_aside(&mut self, reason: String) -> Result<Loaded, StateError> {
        let path = self.path();
        let secs = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let mut moved_to = self.dir.join(format!("{STATE}.corrupt-{secs}"));
        let mut n = 1;
        while moved_to.exists() {
            moved_to = self.dir.join(format!("{STATE}.corrupt-{secs}.{n}"));
            n += 1;
        }
        fs::rename(&path, &moved_to).map_err(io_at(&path))?;
        sync_dir(&self.dir)?;
        self.last = None;
        Ok(Loaded::Corrupt { reason, moved_to })
    }

    /// Makes `snapshot` durable before returning; returns false (and writes
    /// nothing) if it equals what is already on disk.
    pub fn save(&mut self, at: Millis, snapshot: &Snapshot) -> Result<bool, StateError> {
        let body = body(snapshot);
        if self.last.as_ref() == Some(&body) {
            return Ok(false);
        }
        let tmp = self.dir.join(format!("{STATE}.tmp"));
        let mut f = File::create(&tmp).map_err(io_at(&tmp))?;
        f.write_all(&encode(at, &body)).map_err(io_at(&tmp))?;
        f.sync_all().map_err(io_at(&tmp))?;
        drop(f);
        let path = self.path();
        fs::rename(&tmp, &path).map_err(io_at(&path))?;
        sync_dir(&self.dir)?;
        self.last = Some(body);
        Ok(true)
    }
}

/// The rename is durable only once the directory itself is.
fn sync_dir(dir: &Path) -> Result<(), StateError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_at(dir))
}

#[cfg(test)]
#[path = "store_tests.rs"]
mod tests;
