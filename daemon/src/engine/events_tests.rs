use super::*;

fn log_with(n: usize) -> EventLog {
    let mut log = EventLog::default();
    for i in 0..n {
        log.emit(Event::new(EventKind::Placed, format!("{i}")));
    }
    log.publish();
    log
}

#[test]
fn numbers_grow_and_start_from_the_wall_clock() {
    let log = log_with(3);
    let seqs: Vec<u64> = log.kept.iter().map(|e| e.seq).collect();
    assert_eq!(seqs[1], seqs[0] + 1);
    assert_eq!(seqs[2], seqs[0] + 2);
    // Later than any number a daemon started a second ago could have used.
    assert!(seqs[0] > (unix_ms() as u64 - 1000) * 1000);
}

#[test]
fn a_watcher_resumes_exactly_after_its_last_event() {
    let mut log = log_with(5);
    let third = log.kept[2].seq;
    let Subscription {
        missed, mut live, ..
    } = log.subscribe(Some(third)).unwrap();
    let got: Vec<&str> = missed.iter().map(|e| e.message.as_str()).collect();
    assert_eq!(got, ["3", "4"]);
    log.emit(Event::new(EventKind::Released, "5"));
    assert!(live.try_recv().is_err(), "not before the change is durable");
    log.publish();
    assert_eq!(live.try_recv().unwrap().message, "5");
}

#[test]
fn from_now_means_nothing_old() {
    let mut log = log_with(5);
    let Subscription {
        missed,
        mut live,
        last,
    } = log.subscribe(None).unwrap();
    assert!(missed.is_empty());
    assert_eq!(last, log.kept.back().unwrap().seq);
    assert!(live.try_recv().is_err());
    log.emit_now(Event::new(EventKind::Refused, "new"));
    assert_eq!(live.try_recv().unwrap().message, "new");
}

#[test]
fn a_resume_point_older_than_what_is_kept_has_expired() {
    let log = log_with(KEPT + 10);
    let oldest = log.kept.front().unwrap().seq;
    assert!(log.subscribe(Some(oldest - 1)).is_ok());
    let err = log.subscribe(Some(oldest - 2)).err().unwrap();
    assert_eq!((err.after, err.oldest), (oldest - 2, oldest));
    // From a daemon before this one: expired, never mistaken for an event.
    let fresh = EventLog::default();
    assert!(fresh.subscribe(Some(5)).is_err());
    assert!(fresh.subscribe(Some(fresh.next_seq() - 1)).is_ok());
    // From the future (a clock stepped back since): expired too.
    assert!(fresh.subscribe(Some(fresh.next_seq() + 10)).is_err());
}
