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

/// Binds `path` for the API. Must run inside a tokio runtime.
pub fn bind(path: &Path) -> Result<UnixListener, SocketError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        // Only the owner (root or the user) may reach the API.
        DirBuilder::new()
            .recursive(true)
            .mode(0o700)
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
    fs::set_permissions(path, Permissions::from_mode(0o660)).map_err(io_err(path))?;
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
    async fn never_replaces_a_regular_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ifad.sock");
        fs::write(&path, "data").unwrap();
        assert!(matches!(bind(&path), Err(SocketError::NotASocket(_))));
        assert_eq!(fs::read_to_string(&path).unwrap(), "data");
    }
}
