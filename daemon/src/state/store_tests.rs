use super::*;
use crate::state::{Delta, Op};

fn snapshot(next_seq: u64) -> Snapshot {
    let mut s = Snapshot::default();
    s.ledger.next_seq = next_seq;
    s
}

fn restored(dir: &Path) -> (StateDir, Saved) {
    let mut store = StateDir::open(dir).unwrap();
    match store.load().unwrap() {
        Loaded::Restored(saved) => (store, saved),
        other => panic!("{other:?}"),
    }
}

/// `snapshot` as it reads back from generation `log`.
fn of_generation(mut snapshot: Snapshot, log: u64) -> Snapshot {
    snapshot.log = log;
    snapshot
}

#[test]
fn a_snapshot_is_written_durably_and_loads_back() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = StateDir::open(dir.path()).unwrap();
    assert!(matches!(store.load().unwrap(), Loaded::Empty));
    assert!(store.needs_snapshot(), "no log before the first snapshot");
    store.write_snapshot(10, snapshot(5)).unwrap();
    assert!(!store.needs_snapshot());
    assert!(!dir.path().join("state.tmp").exists());
    assert!(dir.path().join("log.1").exists());
    drop(store);
    let (store, saved) = restored(dir.path());
    assert_eq!(saved.at, 10);
    assert_eq!(saved.snapshot, of_generation(snapshot(5), 1));
    assert_eq!((store.replayed(), store.cut_tail()), (0, None));
}

#[test]
fn one_daemon_per_state_dir() {
    let dir = tempfile::tempdir().unwrap();
    let _first = StateDir::open(dir.path()).unwrap();
    let err = StateDir::open(dir.path()).err().expect("locked");
    let msg = err.to_string();
    assert!(
        msg.contains(&format!("pid {}", std::process::id())),
        "{msg}"
    );
}

#[test]
fn a_corrupt_file_is_moved_aside_not_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = StateDir::open(dir.path()).unwrap();
    store.write_snapshot(1, snapshot(9)).unwrap();
    let path = store.path();
    let mut bytes = fs::read(&path).unwrap();
    let last = bytes.len() - 2;
    bytes[last] ^= 0x20;
    fs::write(&path, &bytes).unwrap();
    match store.load().unwrap() {
        Loaded::Corrupt { reason, moved_to } => {
            assert!(reason.contains("checksum"), "{reason}");
            assert_eq!(fs::read(&moved_to).unwrap(), bytes);
            let name = moved_to.file_name().unwrap().to_string_lossy().to_string();
            assert!(name.starts_with("state.corrupt-"), "{name}");
        }
        other => panic!("{other:?}"),
    }
    assert!(!path.exists());
    // Its log went aside with it: it continues a snapshot that is gone.
    assert!(!dir.path().join("log.1").exists());
    assert!(fs::read_dir(dir.path()).unwrap().any(|e| {
        let name = e.unwrap().file_name().to_string_lossy().to_string();
        name.starts_with("log.1.corrupt-")
    }));
}

#[test]
fn a_file_from_a_newer_ifad_is_refused_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = StateDir::open(dir.path()).unwrap();
    let newer = crate::state::envelope::encode_as(7, 1, b"{}");
    fs::write(store.path(), &newer).unwrap();
    let err = store.load().unwrap_err();
    assert!(matches!(err, StateError::Newer { .. }), "{err}");
    assert!(err.to_string().contains("newer ifad"), "{err}");
    assert_eq!(fs::read(store.path()).unwrap(), newer);
}

#[test]
fn an_unreadable_state_file_stops_the_start_and_stays() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = StateDir::open(dir.path()).unwrap();
    // A directory where the file should be: reading fails, not decoding.
    fs::create_dir(store.path()).unwrap();
    let err = store.load().unwrap_err();
    assert!(matches!(err, StateError::Io { .. }), "{err}");
    assert!(store.path().is_dir(), "left where it was");
}

#[test]
fn a_new_state_dir_is_created_with_its_parents() {
    let dir = tempfile::tempdir().unwrap();
    let deep = dir.path().join("a/b/ifad");
    let mut store = StateDir::open(&deep).unwrap();
    store.write_snapshot(1, snapshot(1)).unwrap();
    assert!(deep.join("state").exists());
}

fn put(at: Millis, next_seq: u64, ops: Vec<Op>) -> Vec<u8> {
    Delta { at, next_seq, ops }.encode()
}

fn drained(harts: &[u32]) -> Op {
    Op::Drained {
        harts: harts.to_vec(),
    }
}

#[test]
fn records_replay_on_top_of_the_snapshot_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = StateDir::open(dir.path()).unwrap();
    store.write_snapshot(1, snapshot(3)).unwrap();
    store.append(&put(5, 4, vec![drained(&[1])])).unwrap();
    store.append(&put(9, 6, vec![drained(&[2, 3])])).unwrap();
    let bytes = store.log_bytes();
    assert_eq!(bytes, fs::metadata(dir.path().join("log.1")).unwrap().len());
    drop(store);
    let (store, saved) = restored(dir.path());
    assert_eq!(store.replayed(), 2);
    assert_eq!(saved.at, 9, "the clock of the last record");
    assert_eq!(saved.snapshot.ledger.next_seq, 6);
    assert_eq!(saved.snapshot.ledger.drained, [2, 3]);
}

#[test]
fn a_torn_last_record_is_cut_off_and_the_ones_before_kept() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = StateDir::open(dir.path()).unwrap();
    store.write_snapshot(1, snapshot(3)).unwrap();
    store.append(&put(5, 4, vec![drained(&[1])])).unwrap();
    let whole = store.log_bytes();
    store.append(&put(9, 6, vec![drained(&[2])])).unwrap();
    drop(store);
    let log = dir.path().join("log.1");
    let bytes = fs::read(&log).unwrap();
    fs::write(&log, &bytes[..bytes.len() - 3]).unwrap();
    let (store, saved) = restored(dir.path());
    assert_eq!(store.replayed(), 1);
    assert_eq!(saved.snapshot.ledger.drained, [1]);
    assert_eq!(saved.snapshot.ledger.next_seq, 4);
    let tail = store.cut_tail().expect("reported");
    assert_eq!(tail.offset, whole);
    assert_eq!(tail.cut, bytes.len() as u64 - 3 - whole);
}

#[test]
fn a_corrupt_record_ends_the_log_there_not_the_state() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = StateDir::open(dir.path()).unwrap();
    store.write_snapshot(1, snapshot(3)).unwrap();
    store.append(&put(5, 4, vec![drained(&[1])])).unwrap();
    let first = store.log_bytes() as usize;
    store.append(&put(6, 5, vec![drained(&[2])])).unwrap();
    store.append(&put(7, 6, vec![drained(&[3])])).unwrap();
    drop(store);
    let log = dir.path().join("log.1");
    let mut bytes = fs::read(&log).unwrap();
    bytes[first + 10] ^= 0x40;
    fs::write(&log, &bytes).unwrap();
    let (store, saved) = restored(dir.path());
    assert_eq!(saved.snapshot.ledger.drained, [1]);
    let tail = store.cut_tail().expect("reported");
    assert!(tail.reason.contains("checksum"), "{}", tail.reason);
    assert_eq!(tail.offset, first as u64);
}

#[test]
fn a_checksummed_record_that_does_not_decode_ends_the_log_too() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = StateDir::open(dir.path()).unwrap();
    store.write_snapshot(1, snapshot(3)).unwrap();
    store.append(&put(5, 4, vec![drained(&[1])])).unwrap();
    let first = store.log_bytes();
    store.append(b"{\"not\": \"a delta\"}").unwrap();
    store.append(&put(7, 6, vec![drained(&[3])])).unwrap();
    drop(store);
    let (store, saved) = restored(dir.path());
    assert_eq!(saved.snapshot.ledger.drained, [1]);
    assert_eq!(store.replayed(), 1);
    let tail = store.cut_tail().expect("reported");
    assert!(tail.reason.starts_with("record 2:"), "{}", tail.reason);
    assert_eq!(tail.offset, first);
}

#[test]
fn a_new_snapshot_starts_a_new_log_and_removes_the_old() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = StateDir::open(dir.path()).unwrap();
    store.write_snapshot(1, snapshot(3)).unwrap();
    store.append(&put(5, 4, vec![drained(&[1])])).unwrap();
    store.write_snapshot(6, snapshot(8)).unwrap();
    assert_eq!(store.log_bytes(), 0);
    assert!(!dir.path().join("log.1").exists());
    assert!(dir.path().join("log.2").exists());
    drop(store);
    let (store, saved) = restored(dir.path());
    assert_eq!(saved.snapshot, of_generation(snapshot(8), 2));
    assert_eq!(store.replayed(), 0);
}

#[test]
fn a_crash_before_the_new_log_exists_reads_as_an_empty_log() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = StateDir::open(dir.path()).unwrap();
    store.write_snapshot(1, snapshot(3)).unwrap();
    drop(store);
    fs::remove_file(dir.path().join("log.1")).unwrap();
    let (store, saved) = restored(dir.path());
    assert_eq!(saved.snapshot.ledger.next_seq, 3);
    assert_eq!(store.cut_tail(), None);
}

#[test]
fn a_state_file_from_before_the_log_is_read_as_generation_zero() {
    let dir = tempfile::tempdir().unwrap();
    let old = crate::state::envelope::encode_as(1, 4, &body(&snapshot(7)));
    fs::write(dir.path().join("state"), &old).unwrap();
    let (mut store, saved) = restored(dir.path());
    assert_eq!(saved.snapshot, snapshot(7));
    // Migrated by the first snapshot this ifad writes.
    store.write_snapshot(5, saved.snapshot).unwrap();
    drop(store);
    let (_, again) = restored(dir.path());
    assert_eq!(again.snapshot, of_generation(snapshot(7), 1));
}

#[test]
fn compaction_is_wanted_once_the_log_outgrows_both_bounds() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = StateDir::open(dir.path()).unwrap().with_min_log_bytes(300);
    store.write_snapshot(1, snapshot(3)).unwrap();
    let snapshot_bytes = fs::metadata(store.path()).unwrap().len();
    let record = put(5, 4, vec![drained(&[1])]);
    let mut appended = 0;
    while !store.wants_compaction() {
        store.append(&record).unwrap();
        appended += 1;
        assert!(appended < 1000, "never wanted");
    }
    let bound = 300.max(2 * snapshot_bytes);
    assert!(
        store.log_bytes() > bound,
        "{} <= {bound}",
        store.log_bytes()
    );
    assert!(
        store.log_bytes() - (record.len() as u64 + 8) <= bound,
        "wanted one record late"
    );
}

#[test]
fn a_failed_append_is_not_durable_and_asks_for_a_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = StateDir::open(dir.path()).unwrap();
    store.write_snapshot(1, snapshot(3)).unwrap();
    // A log that cannot be written: opened read-only in its place.
    store.log = Some(File::open(dir.path().join("log.1")).unwrap());
    let err = store.append(&put(5, 4, vec![drained(&[1])])).unwrap_err();
    assert!(matches!(err, StateError::Io { .. }), "{err}");
    assert_eq!(store.log_bytes(), 0);
    assert!(store.needs_snapshot());
    store.write_snapshot(6, snapshot(4)).unwrap();
    assert!(!store.needs_snapshot());
    store.append(&put(7, 5, vec![drained(&[2])])).unwrap();
    drop(store);
    let (_, saved) = restored(dir.path());
    assert_eq!(saved.snapshot.ledger.drained, [2]);
}
