use super::*;
use crate::core::ledger::SavedLedger;

fn snapshot() -> Snapshot {
    Snapshot {
        host_kind: "simulated".into(),
        ledger: SavedLedger {
            next_seq: 3,
            drained: vec![1],
            ..SavedLedger::default()
        },
        failed_entries: Vec::new(),
        host: serde_json::json!({"vms": []}),
        host_vms: [(
            crate::core::VmId::parse("a").unwrap(),
            serde_json::json!({"pid": 1}),
        )]
        .into(),
        log: 4,
    }
}

fn file() -> Vec<u8> {
    encode(42, &body(&snapshot()))
}

#[test]
fn round_trips() {
    let saved = decode(&file()).unwrap();
    assert_eq!(saved.at, 42);
    assert_eq!(saved.snapshot, snapshot());
}

#[test]
fn a_truncated_file_is_told_apart() {
    let f = file();
    for cut in [f.len() - 1, f.len() / 2] {
        assert!(
            matches!(decode(&f[..cut]), Err(DecodeError::Truncated { .. })),
            "cut at {cut}"
        );
    }
    assert_eq!(decode(&f[..5]), Err(DecodeError::NotState));
}

#[test]
fn every_flipped_body_byte_is_caught() {
    let f = file();
    let body_at = f.iter().position(|&b| b == b'\n').unwrap() + 1;
    for i in body_at..f.len() {
        let mut bad = f.clone();
        bad[i] ^= 0x01;
        assert!(
            matches!(decode(&bad), Err(DecodeError::Checksum { .. })),
            "byte {i}"
        );
    }
}

#[test]
fn every_flipped_header_byte_is_caught() {
    let f = file();
    let body_at = f.iter().position(|&b| b == b'\n').unwrap();
    for i in 0..body_at {
        let mut bad = f.clone();
        bad[i] ^= 0x01;
        // Never read as valid state; a flipped version digit may read as a
        // newer format, which is refused (and kept), never overwritten.
        assert!(decode(&bad).is_err(), "byte {i}");
    }
}

#[test]
fn a_newer_format_is_refused_even_if_laid_out_differently() {
    let err = decode(b"ifad-state 3 whatever comes next\n\x00\x01").unwrap_err();
    assert_eq!(err, DecodeError::Newer { found: 3 });
}

#[test]
fn a_newer_format_is_refused_by_name() {
    let newer = encode_as(CURRENT_VERSION + 1, 42, &body(&snapshot()));
    let err = decode(&newer).unwrap_err();
    assert_eq!(
        err,
        DecodeError::Newer {
            found: CURRENT_VERSION + 1
        }
    );
    assert!(err.to_string().contains("newer ifad"), "{err}");
}
