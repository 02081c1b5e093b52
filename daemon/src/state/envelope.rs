//! The state file's bytes: a header line naming the format, its version,
//! the body's length and CRC-32, then the body (JSON). Truncation, flipped
//! bytes and files from a newer ifad are told apart from each other.

use crate::core::ledger::Millis;
use crate::state::{Saved, Snapshot};

const MAGIC: &str = "ifad-state";
/// 2: the snapshot is continued by a log (an older ifad must not read it
/// and miss the log); 1 is read as a snapshot with no log.
pub const CURRENT_VERSION: u32 = 2;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("not an ifad state file (no \"{MAGIC}\" header)")]
    NotState,
    #[error("header: {0}")]
    Header(String),
    /// Written by a newer ifad: refused, never overwritten.
    #[error(
        "written by a newer ifad (state format {found}; this ifad reads up to {CURRENT_VERSION})"
    )]
    Newer { found: u32 },
    #[error("truncated: the header promises {want} bytes, the file has {have}")]
    Truncated { want: usize, have: usize },
    #[error("checksum mismatch: header {want:08x}, body {have:08x}")]
    Checksum { want: u32, have: u32 },
    #[error("body: {0}")]
    Body(String),
}

/// The body for a snapshot: the part compared to skip identical writes.
pub fn body(snapshot: &Snapshot) -> Vec<u8> {
    serde_json::to_vec(snapshot).expect("the snapshot is plain data")
}

/// The file's bytes for a snapshot's `body` taken at `at`.
pub fn encode(at: Millis, body: &[u8]) -> Vec<u8> {
    encode_as(CURRENT_VERSION, at, body)
}

/// The CRC covers the header's fields and the body, so no flipped byte
/// anywhere reads as valid state (or as a newer format).
fn header_fields(version: u32, at: Millis, len: usize) -> String {
    format!("{MAGIC} {version} at={at} len={len}")
}

fn checksum(fields: &str, body: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(fields.as_bytes());
    h.update(body);
    h.finalize()
}

pub(crate) fn encode_as(version: u32, at: Millis, body: &[u8]) -> Vec<u8> {
    let fields = header_fields(version, at, body.len());
    let mut out = format!("{fields} crc32={:08x}\n", checksum(&fields, body)).into_bytes();
    out.extend_from_slice(body);
    out
}

pub fn decode(bytes: &[u8]) -> Result<Saved, DecodeError> {
    let newline = bytes
        .iter()
        .position(|&b| b == b'\n')
        .ok_or(DecodeError::NotState)?;
    let header = std::str::from_utf8(&bytes[..newline]).map_err(|_| DecodeError::NotState)?;
    let body = &bytes[newline + 1..];
    let mut words = header.split(' ');
    if words.next() != Some(MAGIC) {
        return Err(DecodeError::NotState);
    }
    let bad = |what: &str| DecodeError::Header(format!("bad {what} in {header:?}"));
    let version: u32 = words
        .next()
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| bad("version"))?;
    // Before anything else: a newer ifad may lay out the rest differently,
    // and its file must be refused, never moved aside as corrupt. (A flipped
    // version digit is refused too: safe, the operator decides.)
    if version > CURRENT_VERSION {
        return Err(DecodeError::Newer { found: version });
    }
    let mut field = |name: &str| -> Result<&str, DecodeError> {
        words
            .next()
            .and_then(|w| w.strip_prefix(name)?.strip_prefix('='))
            .ok_or_else(|| DecodeError::Header(format!("no {name}= in {header:?}")))
    };
    let at: Millis = field("at")?.parse().map_err(|_| bad("at"))?;
    let len: usize = field("len")?.parse().map_err(|_| bad("len"))?;
    let crc = u32::from_str_radix(field("crc32")?, 16).map_err(|_| bad("crc32"))?;
    if body.len() != len {
        return Err(DecodeError::Truncated {
            want: len,
            have: body.len(),
        });
    }
    let have = checksum(&header_fields(version, at, len), body);
    if have != crc {
        return Err(DecodeError::Checksum { want: crc, have });
    }
    if version == 0 {
        return Err(bad("version"));
    }
    let snapshot = serde_json::from_slice(body).map_err(|e| DecodeError::Body(e.to_string()))?;
    Ok(Saved { at, snapshot })
}

#[cfg(test)]
#[path = "envelope_tests.rs"]
mod tests;
