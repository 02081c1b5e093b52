use super::*;

fn log_of(payloads: &[&[u8]]) -> Vec<u8> {
    payloads.iter().flat_map(|p| frame(p)).collect()
}

#[test]
fn whole_records_read_back_in_order() {
    let bytes = log_of(&[b"one", b"", b"three"]);
    let (read, tail) = records(&bytes);
    assert_eq!(read, [&b"one"[..], b"", b"three"]);
    assert_eq!(tail, None);
    assert_eq!(records(&[]), (vec![], None));
}

#[test]
fn every_cut_of_the_last_record_is_a_tail_after_the_others() {
    let bytes = log_of(&[b"first", b"second record"]);
    let whole = frame(b"first").len();
    for end in whole + 1..bytes.len() {
        let (read, tail) = records(&bytes[..end]);
        assert_eq!(read, [&b"first"[..]], "cut at {end}");
        let tail = tail.expect("a torn tail");
        assert_eq!(tail.offset, whole as u64, "cut at {end}");
        assert_eq!(tail.cut, (end - whole) as u64, "cut at {end}");
    }
}

#[test]
fn every_flipped_byte_stops_reading_at_its_record() {
    let bytes = log_of(&[b"first", b"second", b"third"]);
    let second = frame(b"first").len();
    let third = second + frame(b"second").len();
    for i in second..third {
        let mut bad = bytes.clone();
        bad[i] ^= 0x01;
        let (read, tail) = records(&bad);
        assert_eq!(read, [&b"first"[..]], "byte {i}");
        assert_eq!(tail.expect("stopped").offset, second as u64, "byte {i}");
    }
}

#[test]
fn a_huge_length_is_corrupt_not_an_allocation() {
    let mut bytes = frame(b"x");
    bytes[..4].copy_from_slice(&u32::MAX.to_le_bytes());
    let (read, tail) = records(&bytes);
    assert!(read.is_empty());
    let tail = tail.expect("corrupt");
    assert!(tail.reason.contains("above"), "{}", tail.reason);
    assert_eq!((tail.offset, tail.cut), (0, bytes.len() as u64));
}
