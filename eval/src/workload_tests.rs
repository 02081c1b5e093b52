use std::collections::{BTreeMap, BTreeSet};

use super::*;

const SEEDS: std::ops::Range<u64> = 0..25;

/// Replays a trace's bookkeeping: every VM ever placed, and the live VS-file
/// demand (every guaranteed and burstable vCPU) just before each event.
struct Book {
    vcpus: BTreeMap<String, (Class, u32)>,
    live: BTreeSet<String>,
}

impl Book {
    fn new() -> Self {
        Book {
            vcpus: BTreeMap::new(),
            live: BTreeSet::new(),
        }
    }

    fn demand(&self) -> u32 {
        self.live
            .iter()
            .map(|vm| {
                let (class, n) = self.vcpus[vm];
                demand(class, n)
            })
            .sum()
    }
}

#[test]
fn names_parse_and_unknown_ones_list_the_names() {
    for w in Workload::ALL {
        assert_eq!(w.name().parse::<Workload>().unwrap(), w);
        assert_eq!(w.to_string(), w.name());
    }
    let err = "busy".parse::<Workload>().unwrap_err().to_string();
    for name in ["steady", "oversubscribed", "bursty", "hotplug", "\"busy\""] {
        assert!(err.contains(name), "{err}");
    }
}

#[test]
fn each_workload_round_trips_through_jsonl() {
    for w in Workload::ALL {
        for seed in SEEDS {
            let trace = w.generate(seed);
            let back = Trace::parse_str(&trace.to_jsonl())
                .unwrap_or_else(|e| panic!("{w} seed {seed}: {e}"));
            assert_eq!(back, trace, "{w} seed {seed}");
        }
    }
}

#[test]
fn each_workload_is_sorted_and_ends_once_at_600() {
    for w in Workload::ALL {
        for seed in SEEDS {
            let trace = w.generate(seed);
            assert_eq!(trace.host, w.host());
            assert!(trace.events.windows(2).all(|p| p[0].t <= p[1].t), "{w}");
            assert_eq!(trace.events.last().unwrap().op, Op::End);
            assert_eq!(trace.end(), 600.0);
            let ends = trace.events.iter().filter(|e| e.op == Op::End).count();
            assert_eq!(ends, 1, "{w}");
            let n = trace.events.len();
            assert!((100..5_000).contains(&n), "{w} seed {seed}: {n} events");
        }
    }
}

#[test]
fn the_same_seed_gives_the_same_trace_and_others_differ() {
    for w in Workload::ALL {
        assert_eq!(w.generate(7), w.generate(7), "{w}");
        assert_ne!(w.generate(7), w.generate(8), "{w}");
        assert_ne!(w.generate(0), w.generate(u64::MAX), "{w}");
    }
}

#[test]
fn hosts_are_as_documented() {
    let h = |harts, numa| HostSpec {
        harts,
        files: 5,
        numa,
    };
    assert_eq!(Workload::Steady.host(), h(16, 2));
    assert_eq!(Workload::Oversubscribed.host(), h(8, 1));
    assert_eq!(Workload::Bursty.host(), h(16, 2));
    assert_eq!(Workload::Hotplug.host(), h(8, 1));
    assert_eq!(Workload::Shifting.host(), h(8, 1));
}

/// Ids unique per place, vcpus 1..=16, devices unique, and no op the replay
/// would have to skip for the generator's sake: every op is on a VM placed
/// before it and not yet released, on one of its vCPUs.
#[test]
fn vms_are_well_formed_and_ops_hit_live_vms() {
    for w in Workload::ALL {
        let mut with_devices = 0;
        for seed in SEEDS {
            let trace = w.generate(seed);
            let mut book = Book::new();
            let mut devices = BTreeSet::new();
            for e in &trace.events {
                let check_vcpu = |vm: &str, vcpu: u32, book: &Book| {
                    assert!(
                        book.live.contains(vm),
                        "{w} seed {seed}: {e:?} on a dead vm"
                    );
                    assert!(vcpu < book.vcpus[vm].1, "{w} seed {seed}: {e:?}");
                };
                match &e.op {
                    Op::Place(p) => {
                        assert!((1..=MAX_VCPUS).contains(&p.vcpus), "{p:?}");
                        let fresh = book.vcpus.insert(p.vm.clone(), (p.class, p.vcpus));
                        assert!(fresh.is_none(), "{w} seed {seed}: {} placed twice", p.vm);
                        book.live.insert(p.vm.clone());
                        for d in &p.devices {
                            assert!(devices.insert(d.clone()), "{d} twice");
                        }
                        with_devices += usize::from(!p.devices.is_empty());
                    }
                    Op::Rate { vm, vcpu, .. } | Op::Halt { vm, vcpu } | Op::Wake { vm, vcpu } => {
                        check_vcpu(vm, *vcpu, &book)
                    }
                    Op::Release { vm } => {
                        assert!(book.live.remove(vm), "{w} seed {seed}: release {vm}");
                    }
                    Op::Offline { .. } | Op::Online { .. } | Op::End => {}
                }
            }
        }
        // `shifting` has none by design: demand alone decides there.
        if w != Workload::Shifting {
            assert!(with_devices >= 10, "{w}: {with_devices} VMs with devices");
        }
    }
}

#[test]
fn every_vcpu_gets_a_rate_when_placed() {
    for w in Workload::ALL {
        let trace = w.generate(3);
        let mut rated = BTreeSet::new();
        for e in &trace.events {
            if let Op::Rate { vm, vcpu, .. } = &e.op {
                rated.insert((vm.clone(), *vcpu));
            }
        }
        for e in &trace.events {
            if let Op::Place(p) = &e.op {
                for v in 0..p.vcpus {
                    assert!(rated.contains(&(p.vm.clone(), v)), "{w}: {} {v}", p.vm);
                }
            }
        }
    }
}

#[test]
fn steady_demand_stays_below_supply_and_has_a_class_mix() {
    for seed in SEEDS {
        let trace = Workload::Steady.generate(seed);
        let supply = trace.host.total_files();
        let mut book = Book::new();
        let mut classes = BTreeSet::new();
        let (mut releases, mut last_place) = (0, 0.0);
        for e in &trace.events {
            match &e.op {
                Op::Place(p) => {
                    book.vcpus.insert(p.vm.clone(), (p.class, p.vcpus));
                    book.live.insert(p.vm.clone());
                    classes.insert(p.class);
                    last_place = e.t;
                }
                Op::Release { vm } => {
                    book.live.remove(vm);
                    releases += 1;
                }
                _ => {}
            }
            assert!(book.demand() < supply, "seed {seed} at t {}", e.t);
        }
        assert!(classes.len() >= 2, "seed {seed}: {classes:?}");
        assert!(releases >= 3, "seed {seed}");
        assert!(last_place > 60.0, "seed {seed}: no re-place");
    }
}

/// Under first come, first served without swapping, some guaranteed VM asks
/// for more files than are free when it arrives, and some guaranteed VM does
/// not fit even when every burstable file is taken.
#[test]
fn oversubscribed_guaranteed_demand_exceeds_free_files() {
    for seed in SEEDS {
        let trace = Workload::Oversubscribed.generate(seed);
        let supply = trace.host.total_files();
        // Files each VM holds under FCFS: burstable take what is free,
        // guaranteed all or nothing.
        let mut held: BTreeMap<String, (Class, u32)> = BTreeMap::new();
        // Guaranteed vCPUs admitted when swapping may take every burstable file.
        let mut admitted: BTreeMap<String, u32> = BTreeMap::new();
        let (mut exceeds_free, mut cannot_fit) = (false, false);
        for e in &trace.events {
            match &e.op {
                Op::Place(p) => {
                    let used: u32 = held.values().map(|(_, n)| n).sum();
                    let free = supply - used;
                    let guaranteed: u32 = admitted.values().sum();
                    let files = match p.class {
                        Class::BestEffort => 0,
                        Class::Burstable => p.vcpus.min(free),
                        Class::Guaranteed => {
                            exceeds_free |= p.vcpus > free;
                            if guaranteed + p.vcpus > supply {
                                cannot_fit = true;
                            } else {
                                admitted.insert(p.vm.clone(), p.vcpus);
                            }
                            if p.vcpus <= free { p.vcpus } else { 0 }
                        }
                    };
                    held.insert(p.vm.clone(), (p.class, files));
                }
                Op::Release { vm } => {
                    held.remove(vm);
                    admitted.remove(vm);
                }
                _ => {}
            }
        }
        assert!(exceeds_free, "seed {seed}");
        assert!(cannot_fit, "seed {seed}");
    }
}

#[test]
fn oversubscribed_burstable_take_most_files_before_guaranteed_arrive() {
    for seed in SEEDS {
        let trace = Workload::Oversubscribed.generate(seed);
        let burst: u32 = trace
            .events
            .iter()
            .take_while(|e| !matches!(&e.op, Op::Place(p) if p.class == Class::Guaranteed))
            .filter_map(|e| match &e.op {
                Op::Place(p) if p.class == Class::Burstable => Some(p.vcpus),
                _ => None,
            })
            .sum();
        assert!(
            burst * 4 >= trace.host.total_files() * 3,
            "seed {seed}: {burst}"
        );
    }
}

#[test]
fn oversubscribed_rates_are_skewed() {
    let (mut busy, mut all) = (0, 0);
    for seed in SEEDS {
        for e in &Workload::Oversubscribed.generate(seed).events {
            if let Op::Rate { irqs_per_s, .. } = e.op {
                all += 1;
                busy += usize::from(irqs_per_s >= 20_000.0);
            }
        }
    }
    let share = busy as f64 / all as f64;
    assert!((0.12..0.3).contains(&share), "{share}");
}

#[test]
fn bursty_rates_change_often_and_vcpus_halt_and_wake() {
    for seed in SEEDS {
        let trace = Workload::Bursty.generate(seed);
        let mut rates: BTreeMap<(String, u32), u32> = BTreeMap::new();
        let mut halted: BTreeSet<(String, u32)> = BTreeSet::new();
        let mut halts = 0;
        for e in &trace.events {
            match &e.op {
                Op::Rate { vm, vcpu, .. } => *rates.entry((vm.clone(), *vcpu)).or_default() += 1,
                Op::Halt { vm, vcpu } => {
                    assert!(
                        halted.insert((vm.clone(), *vcpu)),
                        "seed {seed}: halted twice"
                    );
                    halts += 1;
                }
                Op::Wake { vm, vcpu } => {
                    assert!(
                        halted.remove(&(vm.clone(), *vcpu)),
                        "seed {seed}: woke awake"
                    );
                }
                _ => {}
            }
        }
        assert!(halted.is_empty(), "seed {seed}: never woke");
        assert!(halts >= 30, "seed {seed}: {halts} halts");
        // Busy vCPUs change rate every 2..8 s over most of 600 s.
        let changing = rates.values().filter(|&&n| n >= 50).count();
        assert!(changing >= 6, "seed {seed}: {changing} busy vCPUs");
    }
}

#[test]
fn hotplug_takes_harts_off_and_back_never_more_than_half() {
    for seed in SEEDS {
        let trace = Workload::Hotplug.generate(seed);
        let harts = trace.host.harts;
        let mut offline = BTreeSet::new();
        let mut offlines = Vec::new();
        for e in &trace.events {
            match e.op {
                Op::Offline { hart } => {
                    assert!(
                        offline.insert(hart),
                        "seed {seed}: hart {hart} offline twice"
                    );
                    assert!(
                        offline.len() as u32 * 2 <= harts,
                        "seed {seed}: {offline:?}"
                    );
                    offlines.push(e.t);
                }
                Op::Online { hart } => {
                    assert!(offline.remove(&hart), "seed {seed}: hart {hart} was online");
                }
                _ => {}
            }
        }
        assert!(offline.is_empty(), "seed {seed}: left offline: {offline:?}");
        // A round about every 60 s.
        let rounds: BTreeSet<u64> = offlines.iter().map(|t| (t / 60.0).round() as u64).collect();
        assert!(rounds.len() >= 8, "seed {seed}: {rounds:?}");
        assert!(trace.host.total_files() == 40);
    }
}

#[test]
fn shifting_is_burstable_only_and_changes_who_is_busy_every_minute() {
    for seed in 1..=5 {
        let trace = Workload::Shifting.generate(seed);
        let mut vcpus = 0;
        // Per minute from t = 60: which vCPUs are busy.
        let mut busy: BTreeMap<u64, Vec<(String, u32)>> = BTreeMap::new();
        for e in &trace.events {
            match &e.op {
                Op::Place(p) => {
                    assert_eq!(p.class, Class::Burstable);
                    assert_eq!(
                        (p.priority, p.devices.len(), p.harts.is_none()),
                        (0, 0, true)
                    );
                    vcpus += p.vcpus;
                }
                Op::Rate {
                    vm,
                    vcpu,
                    irqs_per_s,
                } if e.t >= 60.0 => {
                    assert_eq!(e.t % 60.0, 0.0, "rates change on the minute");
                    let minute = busy.entry(e.t as u64).or_default();
                    if *irqs_per_s >= 20_000.0 {
                        minute.push((vm.clone(), *vcpu));
                    }
                }
                _ => {}
            }
        }
        assert_eq!(vcpus, trace.host.total_files() * 3 / 2, "seed {seed}");
        assert_eq!(busy.len(), 9, "t = 60, 120, ... 540");
        let sets: Vec<_> = busy.values().collect();
        assert!(
            sets.windows(2).all(|w| w[0] != w[1]),
            "seed {seed}: the busy ones change"
        );
        assert!(sets.iter().all(|s| !s.is_empty()), "seed {seed}");
    }
}
