//! The log's bytes: records appended one per commit, each framed as its
//! payload's length and CRC-32 (both little-endian u32) and the payload.
//! Reading stops at the first record that is short or does not check out:
//! a crash mid-append leaves exactly such a tail, and everything before it
//! was made durable whole.

/// Length and checksum, before each payload.
const FRAME: usize = 8;

/// No payload is larger (a commit of every VM of a very large host is a
/// few MiB): a length above it is a corrupt frame, not a huge allocation.
pub const MAX_RECORD: usize = 256 << 20;

/// The bytes of one record holding `payload`.
pub fn frame(payload: &[u8]) -> Vec<u8> {
    let len = u32::try_from(payload.len()).expect("a record is under MAX_RECORD");
    let mut out = Vec::with_capacity(FRAME + payload.len());
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
    out.extend_from_slice(payload);
    out
}

/// The bytes `payload` takes in the log, frame included.
pub fn framed_len(payload: &[u8]) -> u64 {
    (FRAME + payload.len()) as u64
}

/// Where reading a log stopped before its end, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tail {
    /// Bytes of whole records before it: the log is cut back to this.
    pub offset: u64,
    /// Bytes after `offset` that were cut off.
    pub cut: u64,
    pub reason: String,
}

/// The whole records of `bytes`, and the tail that is not one, if any.
pub fn records(bytes: &[u8]) -> (Vec<&[u8]>, Option<Tail>) {
    let mut out = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        match record_at(bytes, at) {
            Ok(payload) => {
                out.push(payload);
                at += FRAME + payload.len();
            }
            Err(reason) => {
                let tail = Tail {
                    offset: at as u64,
                    cut: (bytes.len() - at) as u64,
                    reason,
                };
                return (out, Some(tail));
            }
        }
    }
    (out, None)
}

fn record_at(bytes: &[u8], at: usize) -> Result<&[u8], String> {
    let rest = &bytes[at..];
    let Some((len, crc)) = rest.get(..FRAME).map(|f| {
        let word = |i: usize| u32::from_le_bytes(f[i..i + 4].try_into().expect("4 bytes"));
        (word(0) as usize, word(4))
    }) else {
        return Err(format!("a frame of {} bytes, short of {FRAME}", rest.len()));
    };
    if len > MAX_RECORD {
        return Err(format!(
            "a record of {len} bytes, above the {MAX_RECORD} allowed"
        ));
    }
    let Some(payload) = rest.get(FRAME..FRAME + len) else {
        return Err(format!(
            "truncated: the frame promises {len} bytes, {} follow",
            rest.len() - FRAME
        ));
    };
    let have = crc32fast::hash(payload);
    if have != crc {
        return Err(format!(
            "checksum mismatch: frame {crc:08x}, payload {have:08x}"
        ));
    }
    Ok(payload)
}

#[cfg(test)]
#[path = "log_tests.rs"]
mod tests;
