//! ifad patch: the `:authority` that gRPC clients send over a Unix socket.
//!
//! grpc-java, Bazel and CSI tools send the socket's path as it is
//! (`/run/ifad/ifad.sock`); gRPC C-core (grpcio, grpc++, since 1.57) sends the
//! target's path percent-encoded, without its leading slash for
//! `unix:/run/ifad/ifad.sock` (`run%2Fifad%2Fifad.sock`), with it for other
//! spellings (`%2Frun%2Fifad%2Fifad.sock`). None is a valid URI authority, so
//! h2 would reset the stream. These forms, and only they, are let through, as
//! a request without an authority.

/// True if `authority` is a path made only of characters a URI path segment
/// may hold: raw and absolute, or percent-encoded with at least one encoded
/// slash (a host name never holds one).
pub(crate) fn is_socket_path(authority: &str) -> bool {
    let bytes = authority.as_bytes();
    if bytes.first() == Some(&b'/') {
        return bytes.iter().all(|&b| b == b'/' || is_pchar(b));
    }
    match percent_decoded(bytes) {
        Some(decoded) => {
            decoded.contains(&b'/')
                && decoded.iter().all(|&b| b == b'/' || is_pchar(b) || b == b'%')
        }
        None => false,
    }
}

/// RFC 3986 `pchar` minus the percent sign: unreserved, sub-delims, ':' and '@'.
fn is_pchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@".contains(&b)
}

/// `bytes` with every `%XX` decoded; `None` if any other byte is outside
/// `pchar`, or a `%` is not followed by two hex digits.
fn percent_decoded(bytes: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = bytes.get(i + 1..i + 3)?;
                let hex = std::str::from_utf8(hex).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b if is_pchar(b) => {
                out.push(b);
                i += 1;
            }
            _ => return None,
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::is_socket_path;

    #[test]
    fn socket_paths_raw_and_percent_encoded() {
        assert!(is_socket_path("/run/ifad/ifad.sock"));
        assert!(is_socket_path("/tmp/.tmpAb3_x/ifad-0.sock"));
        assert!(is_socket_path("%2Frun%2Fifad%2Fifad.sock"));
        assert!(is_socket_path("%2frun%2fifad%2fifad.sock"));
        assert!(is_socket_path("run%2Fifad%2Fifad.sock"));
    }

    #[test]
    fn anything_else_stays_malformed() {
        for bad in [
            "",
            "run/ifad.sock",
            "bad host",
            "/run/ifad sock",
            "/run/\"x\"",
            "%2Frun%2Fifad%20sock",
            "%2",
            "%zz/run",
            "localhost/path",
            "example.com",
            "a%41b",
        ] {
            assert!(!is_socket_path(bad), "{bad:?}");
        }
    }
}
