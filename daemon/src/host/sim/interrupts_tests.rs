use super::*;

fn id(s: &str) -> VmId {
    VmId::parse(s).unwrap()
}

fn all(seen: Observed) -> impl Fn(&VmId) -> Vec<Observed> {
    move |_| vec![seen; 2]
}

#[test]
fn a_running_vcpu_counts_its_rate_on_either_backing() {
    let mut s = SimInterrupts::default();
    s.add_vm(&id("a"), 2);
    assert!(s.set_rate(&id("a"), 0, 1000.0));
    assert!(s.set_rate(&id("a"), 1, 10.0));
    s.refresh(all(Observed::VsFile { hart: 0, line: 1 }));
    s.advance(2000);
    assert_eq!(s.counts(&id("a")), [Some(2000), Some(20)]);
    s.refresh(all(Observed::Mrif { hart: 1 }));
    s.advance(3000);
    assert_eq!(s.counts(&id("a")), [Some(3000), Some(30)]);
}

#[test]
fn a_vcpu_that_does_not_run_shows_nothing_and_counts_nothing() {
    let mut s = SimInterrupts::default();
    s.add_vm(&id("a"), 2);
    s.set_rate(&id("a"), 0, 500.0);
    // Not entered yet (its VMM is paused): nothing seen, nothing counted.
    s.refresh(all(Observed::Unknown));
    s.advance(1000);
    assert_eq!(s.counts(&id("a")), [None, None]);
    s.refresh(all(Observed::Mrif { hart: 0 }));
    assert_eq!(s.counts(&id("a")), [Some(0), Some(0)]);
    s.advance(2000);
    s.refresh(all(Observed::EntryFailed { hart: 0 }));
    assert_eq!(s.counts(&id("a")), [None, None]);
    s.advance(5000);
    s.refresh(all(Observed::Mrif { hart: 0 }));
    assert_eq!(s.counts(&id("a"))[0], Some(500), "only the second it ran");
}

#[test]
fn unknown_vms_and_vcpus_are_refused_or_empty() {
    let mut s = SimInterrupts::default();
    assert!(!s.set_rate(&id("x"), 0, 1.0));
    s.add_vm(&id("a"), 1);
    assert!(!s.set_rate(&id("a"), 1, 1.0));
    assert!(s.counts(&id("x")).is_empty());
    s.remove_vm(&id("a"));
    assert!(s.counts(&id("a")).is_empty());
    // The clock never runs back: an earlier time counts nothing.
    s.add_vm(&id("b"), 1);
    s.set_rate(&id("b"), 0, 100.0);
    s.refresh(|_| vec![Observed::Mrif { hart: 0 }]);
    s.advance(3000);
    s.advance(1000);
    s.advance(4000);
    assert_eq!(s.counts(&id("b")), [Some(400)]);
}
