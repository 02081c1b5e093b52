use super::*;

fn snapshot(next_seq: u64) -> Snapshot {
    let mut s = Snapshot::default();
    s.ledger.next_seq = next_seq;
    s
}

#[test]
fn saves_durably_and_loads_back() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = StateDir::open(dir.path()).unwrap();
    assert!(matches!(store.load().unwrap(), Loaded::Empty));
    assert!(store.save(10, &snapshot(5)).unwrap());
    // The same state again writes nothing, whatever the clock says.
    assert!(!store.save(20, &snapshot(5)).unwrap());
    assert!(!dir.path().join("state.tmp").exists());
    drop(store);
    let mut store = StateDir::open(dir.path()).unwrap();
    match store.load().unwrap() {
        Loaded::Restored(saved) => {
            assert_eq!(saved.at, 10);
            assert_eq!(saved.snapshot, snapshot(5));
        }
        other => panic!("{other:?}"),
    }
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
    store.save(1, &snapshot(9)).unwrap();
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
    // Nothing was remembered from it: the next save writes.
    assert!(store.save(2, &snapshot(9)).unwrap());
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
    assert!(store.save(1, &snapshot(1)).unwrap());
    assert!(deep.join("state").exists());
}
