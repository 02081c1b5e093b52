//! Where ifad listens and ifactl dials, so that both find each other with no
//! flags: `--socket`, else `$IFAD_SOCKET` (both handled by the callers' clap
//! definitions), else the per-user default below.

use std::ffi::OsStr;
use std::path::PathBuf;

/// Environment variable that overrides the default socket path.
pub const SOCKET_ENV: &str = "IFAD_SOCKET";

/// Socket path for root.
pub const SYSTEM_SOCKET: &str = "/run/ifad/ifad.sock";

/// The default socket path for the calling user.
pub fn default_path() -> PathBuf {
    default_path_for(
        nix::unistd::geteuid().as_raw(),
        std::env::var_os("XDG_RUNTIME_DIR").as_deref(),
    )
}

/// Root uses the system path (systemd's `RuntimeDirectory=ifad`); any other
/// user gets a private directory, so an unprivileged daemon never needs /run.
pub fn default_path_for(uid: u32, xdg_runtime_dir: Option<&OsStr>) -> PathBuf {
    if uid == 0 {
        return PathBuf::from(SYSTEM_SOCKET);
    }
    match xdg_runtime_dir.filter(|d| !d.is_empty()) {
        Some(dir) => PathBuf::from(dir).join("ifad").join("ifad.sock"),
        None => PathBuf::from(format!("/tmp/ifad-{uid}")).join("ifad.sock"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_uses_run_even_with_xdg() {
        assert_eq!(
            default_path_for(0, Some(OsStr::new("/run/user/0"))),
            PathBuf::from("/run/ifad/ifad.sock")
        );
    }

    #[test]
    fn user_prefers_xdg_runtime_dir() {
        assert_eq!(
            default_path_for(1000, Some(OsStr::new("/run/user/1000"))),
            PathBuf::from("/run/user/1000/ifad/ifad.sock")
        );
    }

    #[test]
    fn user_without_xdg_falls_back_to_tmp() {
        assert_eq!(
            default_path_for(1000, None),
            PathBuf::from("/tmp/ifad-1000/ifad.sock")
        );
        assert_eq!(
            default_path_for(1000, Some(OsStr::new(""))),
            PathBuf::from("/tmp/ifad-1000/ifad.sock")
        );
    }
}
