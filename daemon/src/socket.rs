//! The daemon's Unix socket: a private directory, a stale socket from a
//! crashed daemon replaced, a live one never stolen.

use std::fs::{self, DirBuilder, Permissions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};

use tokio::net::UnixListener;

#[derive(Debug, thiserror::Error)]
pub enum SocketError {
    #[error("another ifad is already serving on {0}")]
    InUse(PathBuf),
    #[error("{0} exists and is not a socket; refusing to replace it")]
    NotASocket(PathBuf),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> SocketError + '_ {
    move |source| SocketError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Who may connect to a socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// The owner and its group: every call, changes included.
    Full,
    /// Anyone: reads only (as libvirt's `-ro` socket).
    ReadOnly,
}

/// Binds `path` for the API. Must run inside a tokio runtime.
pub fn bind(path: &Path) -> Result<UnixListener, SocketError> {
    bind_for(path, Access::Full)
}

/// Binds `path` for the API with the permissions `access` calls for. A
/// directory it creates is private for full access and open to all for
/// read-only access; an existing one is left as it is.
pub fn bind_for(path: &Path, access: Access) -> Result<UnixListener, SocketError> {
    let (dir_mode, socket_mode) = match access {
        Access::Full => (0o700, 0o660),
        Access::ReadOnly => (0o755, 0o666),
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        DirBuilder::new()
            .recursive(true)
            .mode(dir_mode)
            .create(dir)
            .map_err(io_err(dir))?;
    }
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => {
            if std::os::unix::net::UnixStream::connect(path).is_ok() {
                return Err(SocketError::InUse(path.to_path_buf()));
            }
            // Nobody answers: left behind by a daemon that died.
            fs::remove_file(path).map_err(io_err(path))?;
        }
        Ok(_) => return Err(SocketError::NotASocket(path.to_path_buf())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_err(path)(e)),
    }
    let listener = UnixListener::bind(path).map_err(io_err(path))?;
    fs::set_permissions(path, Permissions::from_mode(socket_mode)).map_err(io_err(path))?;
    Ok(listener)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn creates_the_directory_and_replaces_a_stale_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/ifad.sock");
        let first = bind(&path).unwrap();
        assert!(
            matches!(bind(&path), Err(SocketError::InUse(_))),
            "live socket kept"
        );
        drop(first);
        // The file is still there, but nobody listens: it is replaced.
        assert!(path.exists());
        bind(&path).unwrap();
    }

    #[tokio::test]
    async fn a_read_only_socket_is_open_to_all_and_a_full_one_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let full = dir.path().join("private/ifad.sock");
        let ro = dir.path().join("public/ifad-ro.sock");
        let _a = bind_for(&full, Access::Full).unwrap();
        let _b = bind_for(&ro, Access::ReadOnly).unwrap();
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&full), 0o660);
        assert_eq!(mode(full.parent().unwrap()), 0o700);
        assert_eq!(mode(&ro), 0o666);
        assert_eq!(mode(ro.parent().unwrap()), 0o755);
    }

    #[tokio::test]
    async fn never_replaces_a_regular_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ifad.sock");
        fs::write(&path, "data").unwrap();
        assert!(matches!(bind(&path), Err(SocketError::NotASocket(_))));
        assert_eq!(fs::read_to_string(&path).unwrap(), "data");
    }
}
