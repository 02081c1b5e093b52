//! The state directory: a lock that lets one daemon own it, the snapshot,
//! replaced atomically, and the log appended to between snapshots. A
//! snapshot that cannot be read back is moved aside, never deleted; one
//! from a newer ifad is left where it is.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use rustix::fs::FlockOperation;

use crate::core::ledger::Millis;
use crate::state::faults::{Append, DiskFaults};
use crate::state::log::{self, Tail};
use crate::state::{DecodeError, Delta, Replay, Saved, Snapshot, body, decode, encode};

const STATE: &str = "state";
const LOCK: &str = "lock";
const LOG: &str = "log";

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

/// The log is folded into a new snapshot once it is larger than this many
/// snapshots, and than the least size (`with_min_log_bytes`): it stays
/// within a small multiple of the live state, and a small state is not
/// rewritten every few changes.
const LOG_PER_SNAPSHOT: u64 = 2;

/// The least log size that calls for a compaction, by default.
pub const DEFAULT_MIN_LOG_BYTES: u64 = 4 << 20;

/// An owned (locked) state dir.
pub struct StateDir {
    dir: PathBuf,
    _lock: File,
    /// The generation of the snapshot on disk, and of its log.
    generation: u64,
    /// The log records are appended to; `None` until this daemon wrote its
    /// first snapshot (a restart always begins with one).
    log: Option<File>,
    /// Bytes of whole, durable records in the log.
    log_bytes: u64,
    snapshot_bytes: u64,
    min_log_bytes: u64,
    /// A write or sync of the log failed: what the file holds past
    /// `log_bytes` is unknown, so the next commit is a whole snapshot.
    broken: bool,
    /// What the last `load` replayed: records, and a tail it cut off.
    replayed: usize,
    tail: Option<Tail>,
    /// Faults a test injects; `None` in production.
    faults: Option<DiskFaults>,
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
        let lock = take_lock(dir)?;
        Ok(StateDir {
            dir: dir.to_path_buf(),
            _lock: lock,
            generation: 0,
            log: None,
            log_bytes: 0,
            snapshot_bytes: 0,
            min_log_bytes: DEFAULT_MIN_LOG_BYTES,
            broken: false,
            replayed: 0,
            tail: None,
            faults: None,
        })
    }

    /// Makes writes show the faults `faults` is set to (tests only).
    pub fn with_faults(mut self, faults: DiskFaults) -> StateDir {
        self.faults = Some(faults);
        self
    }

    fn faulty_write(&self) -> io::Result<()> {
        self.faults.as_ref().map_or(Ok(()), DiskFaults::write)
    }

    fn faulty_sync(&self) -> io::Result<()> {
        self.faults.as_ref().map_or(Ok(()), DiskFaults::sync)
    }

    /// Compacts only once the log is at least `bytes` long.
    pub fn with_min_log_bytes(mut self, bytes: u64) -> StateDir {
        self.min_log_bytes = bytes;
        self
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn path(&self) -> PathBuf {
        self.dir.join(STATE)
    }

    fn log_path(&self, generation: u64) -> PathBuf {
        self.dir.join(format!("{LOG}.{generation}"))
    }

    /// Bytes of durable records in the log since the last snapshot.
    pub fn log_bytes(&self) -> u64 {
        self.log_bytes
    }

    /// Records the last `load` replayed on top of the snapshot.
    pub fn replayed(&self) -> usize {
        self.replayed
    }

    /// The torn or corrupt end of the log the last `load` cut off.
    pub fn cut_tail(&self) -> Option<&Tail> {
        self.tail.as_ref()
    }

    /// Reads the state back: the snapshot, then its log's whole records; a
    /// torn or corrupt record ends the log there (`cut_tail`). An
    /// unreadable or corrupt snapshot is moved aside as
    /// `state.corrupt-<unix seconds>`, with its logs. Newer format: an
    /// error, file untouched.
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
                self.generation = saved.snapshot.log;
                self.snapshot_bytes = bytes.len() as u64;
                self.replay(saved).map(Loaded::Restored)
            }
            Err(source @ DecodeError::Newer { .. }) => Err(StateError::Newer { path, source }),
            Err(e) => self.move_aside(e.to_string()),
        }
    }

    fn replay(&mut self, saved: Saved) -> Result<Saved, StateError> {
        let path = self.log_path(self.generation);
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
            Err(source) => return Err(StateError::Io { path, source }),
        };
        let (records, mut tail) = log::records(&bytes);
        let mut replay = Replay::new(saved.at, saved.snapshot);
        let mut offset = 0u64;
        self.replayed = 0;
        for payload in records {
            match Delta::decode(payload) {
                Ok(delta) => replay.apply(delta),
                // Checksummed but unreadable (no ifad writes that): the
                // log ends here too.
                Err(e) => {
                    tail = Some(Tail {
                        offset,
                        cut: bytes.len() as u64 - offset,
                        reason: format!("record {}: {e}", self.replayed + 1),
                    });
                    break;
                }
            }
            offset += log::framed_len(payload);
            self.replayed += 1;
        }
        self.tail = tail;
        let (at, snapshot) = replay.finish();
        Ok(Saved { at, snapshot })
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
        // Its logs continue a snapshot that is gone: kept beside it.
        for log in self.logs()? {
            let mut aside = log.clone().into_os_string();
            aside.push(format!(".corrupt-{secs}"));
            fs::rename(&log, &aside).map_err(io_at(&log))?;
        }
        sync_dir(&self.dir)?;
        Ok(Loaded::Corrupt { reason, moved_to })
    }

    /// Every `log.<generation>` file in the dir.
    fn logs(&self) -> Result<Vec<PathBuf>, StateError> {
        let mut out = Vec::new();
        for entry in fs::read_dir(&self.dir).map_err(io_at(&self.dir))? {
            let path = entry.map_err(io_at(&self.dir))?.path();
            let is_log = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_prefix(LOG)?.strip_prefix('.'))
                .is_some_and(|g| g.parse::<u64>().is_ok());
            if is_log {
                out.push(path);
            }
        }
        Ok(out)
    }

    /// Whether the next commit must write a whole snapshot: no log is open
    /// yet, or the last append failed.
    pub fn needs_snapshot(&self) -> bool {
        self.log.is_none() || self.broken
    }

    /// Whether the log outgrew its snapshot and should be folded in.
    pub fn wants_compaction(&self) -> bool {
        self.log_bytes
            > self
                .min_log_bytes
                .max(LOG_PER_SNAPSHOT * self.snapshot_bytes)
    }

    /// Appends one record and makes it durable with one `fdatasync`. On
    /// failure the record is not durable, and the next commit writes a
    /// whole snapshot instead (`needs_snapshot`).
    pub fn append(&mut self, payload: &[u8]) -> Result<(), StateError> {
        let path = self.log_path(self.generation);
        let Some(file) = &self.log else {
            return Err(StateError::Io {
                path,
                source: io::Error::other("no log open: a snapshot comes first"),
            });
        };
        let record = log::frame(payload);
        let written = self
            .write_record(file, &record)
            .and_then(|()| self.faulty_sync())
            .and_then(|()| file.sync_data());
        match written {
            Ok(()) => {
                self.log_bytes += record.len() as u64;
                Ok(())
            }
            Err(source) => {
                self.broken = true;
                Err(StateError::Io { path, source })
            }
        }
    }

    fn write_record(&self, file: &File, record: &[u8]) -> io::Result<()> {
        self.faulty_write()?;
        let append = self
            .faults
            .as_ref()
            .map_or(Append::Whole, |f| f.append(record.len()));
        match append {
            Append::Whole => file.write_all_at(record, self.log_bytes),
            Append::Torn(len) => {
                file.write_all_at(&record[..len], self.log_bytes)?;
                Err(io::Error::from_raw_os_error(nix::errno::Errno::EIO as i32))
            }
        }
    }

    /// Writes `snapshot` (taken at `at`) as the new base with an empty log
    /// of the next generation, then removes the old logs. A crash at any
    /// point leaves either the old snapshot and its log or the new one.
    pub fn write_snapshot(&mut self, at: Millis, mut snapshot: Snapshot) -> Result<(), StateError> {
        let next = self.generation + 1;
        snapshot.log = next;
        let bytes = encode(at, &body(&snapshot));
        self.replace_state(&bytes)?;
        self.generation = next;
        self.snapshot_bytes = bytes.len() as u64;
        self.log_bytes = 0;
        self.broken = false;
        // The snapshot is durable: a log that could not be started only
        // means the next commit writes a snapshot again, and an old log
        // left behind is never read (its generation is past).
        self.log = self.start_log(next);
        if let Err(e) = self.remove_logs_before(next) {
            tracing::warn!("removing old logs: {e}");
        }
        Ok(())
    }

    /// An empty log of `generation`, its name durable before any record
    /// is acknowledged in it.
    fn start_log(&self, generation: u64) -> Option<File> {
        let path = self.log_path(generation);
        let started = File::create(&path)
            .map_err(io_at(&path))
            .and_then(|f| sync_dir(&self.dir).map(|()| f));
        started
            .inspect_err(|e| tracing::warn!("starting the log: {e}"))
            .ok()
    }

    fn remove_logs_before(&self, generation: u64) -> Result<(), StateError> {
        let current = self.log_path(generation);
        for old in self.logs()?.into_iter().filter(|p| *p != current) {
            fs::remove_file(&old).map_err(io_at(&old))?;
        }
        Ok(())
    }

    /// Replaces `state` atomically; a temporary file that could not be
    /// finished is removed.
    fn replace_state(&self, bytes: &[u8]) -> Result<(), StateError> {
        let tmp = self.dir.join(format!("{STATE}.tmp"));
        let written = File::create(&tmp)
            .and_then(|mut f| {
                self.faulty_write()?;
                f.write_all(bytes)?;
                self.faulty_sync()?;
                f.sync_all()
            })
            .map_err(io_at(&tmp));
        if let Err(e) = written {
            if let Err(rm) = fs::remove_file(&tmp) {
                tracing::warn!("removing {}: {rm}", tmp.display());
            }
            return Err(e);
        }
        let path = self.path();
        fs::rename(&tmp, &path).map_err(io_at(&path))?;
        sync_dir(&self.dir)
    }
}

fn take_lock(dir: &Path) -> Result<File, StateError> {
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
    Ok(lock)
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
