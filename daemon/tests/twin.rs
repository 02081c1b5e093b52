//! The engine against the simulated KVM host, over random sequences of
//! every operation on random hosts: the ledger must always agree with what
//! KVM really holds, predict every KVM decision, and keep its invariants.

use ifad::core::reconcile::reconcile;
use ifad::core::request::PlaceSpec;
use ifad::core::{Backing, Class, CoreError, Refusal, VcpuKey, VmId};
use ifad::engine::{Engine, EngineConfig, EngineError, VmState};
use ifad::host::sim::{SimHost, SimSpec};
use ifad::metrics::Metrics;
use proptest::prelude::*;
use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Debug, Clone)]
enum Op {
    Place {
        vm: u8,
        vcpus: u32,
        class: Class,
        devices: bool,
        priority: i32,
        harts: Vec<u32>,
    },
    Release {
        vm: u8,
    },
    Migrate {
        vm: u8,
        vcpu: u32,
        hart: u32,
    },
    Drain {
        hart: u32,
    },
    Undrain {
        hart: u32,
    },
    Offline {
        hart: u32,
    },
    Online {
        hart: u32,
    },
    Block {
        vm: u8,
        vcpu: u32,
        blocked: bool,
    },
    Tick,
}

fn class() -> impl Strategy<Value = Class> {
    prop_oneof![
        Just(Class::Guaranteed),
        Just(Class::Burstable),
        Just(Class::BestEffort)
    ]
}

/// `hotplug` adds harts going offline and online to halted (blocked) vCPUs.
fn op(hotplug: bool) -> impl Strategy<Value = Op> {
    let place = (
        0..8u8,
        1..10u32,
        class(),
        any::<bool>(),
        -2..3i32,
        proptest::collection::vec(0..6u32, 0..3),
    )
        .prop_map(|(vm, vcpus, class, devices, priority, harts)| Op::Place {
            vm,
            vcpus,
            class,
            devices,
            priority,
            harts,
        });
    let (hot, block) = if hotplug { (1, 1) } else { (0, 2) };
    prop_oneof![
        6 => place,
        3 => (0..8u8).prop_map(|vm| Op::Release { vm }),
        3 => (0..8u8, 0..10u32, 0..6u32).prop_map(|(vm, vcpu, hart)| Op::Migrate { vm, vcpu, hart }),
        1 => (0..6u32).prop_map(|hart| Op::Drain { hart }),
        1 => (0..6u32).prop_map(|hart| Op::Undrain { hart }),
        hot => (0..6u32).prop_map(|hart| Op::Offline { hart }),
        hot => (0..6u32).prop_map(|hart| Op::Online { hart }),
        block => (0..8u8, 0..10u32, any::<bool>()).prop_map(|(vm, vcpu, blocked)| Op::Block { vm, vcpu, blocked }),
        2 => Just(Op::Tick),
    ]
}

fn engine(harts: u32, files: u8, numa: u32) -> Engine {
    let spec = SimSpec { harts, files, numa };
    Engine::new(
        Box::new(SimHost::from_spec(&spec)),
        Metrics::new("test", "simulated"),
        EngineConfig {
            min_move_interval: 50,
        },
    )
}

fn id(vm: u8) -> VmId {
    VmId::parse(&format!("vm{vm}")).unwrap()
}

type Snapshot = (Vec<ifad::engine::VmView>, Vec<ifad::engine::HartView>);

fn snapshot(e: &Engine) -> Snapshot {
    (e.vms(), e.harts())
}

fn check(e: &Engine) {
    e.ledger().verify(e.topology()).expect("ledger invariants");
    let held = e
        .host_held_vsfiles()
        .expect("the simulated host shows its lines");
    let predicted: Vec<u32> = (0..e.topology().len() as u32)
        .map(|h| {
            e.ledger()
                .vms()
                .flat_map(|vm| &vm.vcpus)
                .filter(|v| v.held_on == Some(h))
                .count() as u32
        })
        .collect();
    assert_eq!(predicted, held, "lines the ledger knows KVM holds vs KVM");
    for vm in e.vms() {
        for v in &vm.vcpus {
            // A VS-file vCPU whose line is known has its irqbypass record.
            assert_eq!(v.line.is_some(), v.vsfile_hpa != 0, "{vm:?}");
            assert!(v.line.is_none() || v.backing == Backing::VsFile);
        }
    }
}

/// With every vCPU running and nothing left to settle, each vCPU holds a
/// line exactly where the ledger says it does.
fn check_quiescent(e: &Engine) {
    for vm in e.ledger().vms() {
        if e.entry_failed(&vm.id) {
            continue; // stranded by a hart going offline: its VMM stopped it
        }
        assert!(!vm.pending, "vm {} still pending", vm.id);
        for (i, v) in vm.vcpus.iter().enumerate() {
            let on_file = v.backing == Backing::VsFile;
            if e.topology().hart(v.hart).is_some_and(|h| h.online) {
                assert_eq!(
                    on_file,
                    v.held_on == Some(v.hart),
                    "vm {} vcpu {i}: {v:?}",
                    vm.id
                );
            }
        }
    }
}

/// Settling stops once the core's reconcile has nothing left to take in
/// from the host: the settled state is its fixed point.
fn check_fixed_point(e: &Engine, now: u64) -> Result<(), TestCaseError> {
    let seen = e.observations();
    let left = reconcile(e.topology(), e.ledger(), &seen, e.failed_entry_keys(), now);
    prop_assert!(
        left.is_empty(),
        "reconcile after settling: {:?}",
        left.changes
    );
    Ok(())
}

/// Whether KVM may decide differently from the ledger while the host runs
/// in this state, through no fault of the ledger's:
///
/// - a halted vCPU of a live VM (`blocked`: those whose `set_blocked(true)`
///   succeeded and were not woken since) does not enter, so it keeps a line
///   the ledger moved it away from and takes none it was promised, and who
///   gets a line first then depends on when it wakes (FCFS entry order);
/// - a hart offline: Linux's fallback runs the threads pinned there on
///   another CPU (select_fallback_rq), where AUTO vCPUs take lines;
/// - a VM stopped by a failed HWACCEL entry: its vCPUs never enter again
///   and keep their lines, as halted ones do.
///
/// Anything else (placements, releases, moves, drains, ticks, even a block
/// aimed at a VM or vCPU that does not exist) leaves every entry to the
/// ledger's prediction.
fn undetermined(e: &Engine, blocked: &HashSet<(u8, u32)>) -> bool {
    !blocked.is_empty()
        || e.topology().harts().iter().any(|h| !h.online)
        || e.ledger().vms().any(|vm| e.entry_failed(&vm.id))
}

/// Steps and cases run, and those whose predictions were checked (now, and
/// by the old rule: whole sequences without any `Block { blocked: true }`,
/// until a hart first went offline). `IFAD_TWIN_STATS=1` prints them.
static STATS: [AtomicU64; 6] = [const { AtomicU64::new(0) }; 6];

fn count(i: usize, yes: bool) {
    STATS[i].fetch_add(yes as u64, Ordering::Relaxed);
}

fn run(e: &mut Engine, ops: Vec<Op>) -> Result<(), TestCaseError> {
    // Predictions are checked on every step whose outcome is determined
    // (see `undetermined`): the state before the step, and the state the
    // host runs in during it (after a block, wake or hotplug), must both be
    // determined. There the ledger must predict every KVM decision (no
    // correction), and its own intent must equal the lines KVM then holds.
    // Elsewhere KVM wins, and it is counted.
    let old_rule = !ops
        .iter()
        .any(|op| matches!(op, Op::Block { blocked: true, .. }));
    let mut checked_any = false;
    let mut blocked: HashSet<(u8, u32)> = HashSet::new();
    let mut now = 0;
    let mut hotplugged = false;
    for op in ops {
        now += 20;
        let before = snapshot(e);
        let corrections = e.corrections();
        let mut determined = !undetermined(e, &blocked);
        let refused = |r: Result<(), EngineError>| match r {
            Ok(()) => Ok(false),
            Err(EngineError::Core(
                CoreError::Refused(..)
                | CoreError::VmExists(_)
                | CoreError::VmNotFound(_)
                | CoreError::InvalidArgument { .. }
                | CoreError::DeviceInUse { .. },
            )) => Ok(true),
            Err(other) => Err(TestCaseError::fail(format!("unexpected {other}"))),
        };
        let was_refused = match op.clone() {
            Op::Place {
                vm,
                vcpus,
                class,
                devices,
                priority,
                harts,
            } => {
                let dev = if devices {
                    vec![format!("{vm:02x}:00.0")]
                } else {
                    vec![]
                };
                let spec = PlaceSpec::parse(&format!("vm{vm}"), vcpus, Some(class), &dev)
                    .unwrap()
                    .with_priority(priority)
                    .with_harts(&harts);
                let r = e.place(spec, now);
                if let Ok(out) = &r {
                    if class == Class::Guaranteed {
                        prop_assert!(out.vm.vcpus.iter().all(|v| v.backing == Backing::VsFile));
                        // Only waiting for demoted holders can keep it pending.
                        prop_assert!(out.vm.state == VmState::Ready || !out.demoted.is_empty());
                    }
                }
                refused(r.map(|_| ()))?
            }
            Op::Release { vm } => refused(e.release(&id(vm), now).map(|_| ()))?,
            Op::Migrate { vm, vcpu, hart } => refused(
                e.migrate(&VcpuKey { vm: id(vm), vcpu }, hart, now)
                    .map(|_| ()),
            )?,
            Op::Drain { hart } => refused(e.drain(hart, now).map(|_| ()))?,
            Op::Undrain { hart } => refused(e.undrain(hart, now))?,
            Op::Offline { hart } | Op::Online { hart } => {
                let online = matches!(op, Op::Online { .. });
                let sim = e.host_mut().sim().unwrap();
                // Linux refuses to take the last online CPU down.
                if hart < sim_len(sim) && sim.set_hart_online(hart, online).is_ok() {
                    hotplugged |= !online;
                }
                determined &= !undetermined(e, &blocked);
                e.tick(now);
                false
            }
            Op::Block {
                vm,
                vcpu,
                blocked: halt,
            } => {
                let sim = e.host_mut().sim().unwrap();
                if sim.set_blocked(&id(vm), vcpu, halt).is_ok() {
                    if halt {
                        blocked.insert((vm, vcpu));
                    } else {
                        blocked.remove(&(vm, vcpu));
                    }
                }
                determined &= !undetermined(e, &blocked);
                e.tick(now);
                false
            }
            Op::Tick => {
                e.tick(now);
                false
            }
        };
        if was_refused {
            prop_assert_eq!(&before, &snapshot(e), "a refused {:?} changed state", op);
        }
        // A released VM's halted vCPUs are gone with it.
        blocked.retain(|&(vm, _)| e.ledger().vm(&id(vm)).is_some());
        check(e);
        check_fixed_point(e, now)?;
        if determined {
            prop_assert_eq!(
                e.corrections(),
                corrections,
                "the core predicted every KVM decision of {:?}",
                op
            );
            prop_assert_eq!(
                e.predicted_held_vsfiles(),
                e.host_held_vsfiles().unwrap(),
                "lines the ledger intended vs lines KVM holds after {:?}",
                op
            );
        }
        checked_any |= determined;
        count(0, true);
        count(1, determined);
        count(2, old_rule && !hotplugged);
        if !hotplugged {
            prop_assert_eq!(e.failed_entries(), 0, "ifad let a HWACCEL entry fail");
        }
    }
    // Wake everything, bring every hart back, release all: the host is empty.
    let sim = e.host_mut().sim().unwrap();
    for h in 0..sim_len(sim) {
        sim.set_hart_online(h, true).unwrap();
    }
    let ids: Vec<VmId> = e.ledger().vms().map(|r| r.id.clone()).collect();
    for vm in &ids {
        let n = e.vm(vm).unwrap().vcpus.len() as u32;
        for vcpu in 0..n {
            e.host_mut()
                .sim()
                .unwrap()
                .set_blocked(vm, vcpu, false)
                .unwrap();
        }
    }
    e.tick(now + 1);
    check(e);
    check_fixed_point(e, now + 1)?;
    check_quiescent(e);
    if !e.ledger().vms().any(|vm| e.entry_failed(&vm.id)) {
        prop_assert_eq!(e.predicted_held_vsfiles(), e.host_held_vsfiles().unwrap());
    }
    count(3, true);
    count(4, checked_any);
    count(5, old_rule);
    if std::env::var_os("IFAD_TWIN_STATS").is_some() {
        let s: Vec<u64> = STATS.iter().map(|c| c.load(Ordering::Relaxed)).collect();
        eprintln!(
            "twin stats: steps {} checked {} (old rule {}); cases {} checked {} (old rule {})",
            s[0], s[1], s[2], s[3], s[4], s[5]
        );
    }
    for vm in ids {
        e.release(&vm, now + 2).unwrap();
        check(e);
    }
    prop_assert_eq!(e.ledger().vsfiles_used(), 0);
    prop_assert_eq!(e.host_held_vsfiles().unwrap().iter().sum::<u32>(), 0);
    prop_assert!(e.harts().iter().all(|h| h.vcpus == 0 && h.releasing == 0));
    Ok(())
}

fn sim_len(sim: &mut SimHost) -> u32 {
    use ifad::host::Host;
    sim.topology().len() as u32
}

/// `IFAD_TWIN_CASES` cases per property (else proptest's PROPTEST_CASES,
/// 256 by default) from the seed `IFAD_TWIN_SEED`, or from the clock when
/// it is unset, so that every run explores new sequences. The seed is
/// printed (shown when a property fails) with the command that replays it.
fn config() -> ProptestConfig {
    let var = |name: &str| {
        std::env::var(name).ok().map(|v| {
            v.trim()
                .parse::<u64>()
                .unwrap_or_else(|e| panic!("{name}={v}: {e}"))
        })
    };
    // One seed per run, shared by both properties, so one command replays it.
    static SEED: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    let seed = *SEED.get_or_init(|| {
        var("IFAD_TWIN_SEED").unwrap_or_else(|| {
            let t = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap();
            t.as_secs() ^ u64::from(t.subsec_nanos()) << 32
        })
    });
    let mut c = ProptestConfig::default();
    if let Some(cases) = var("IFAD_TWIN_CASES") {
        c.cases = u32::try_from(cases).expect("IFAD_TWIN_CASES fits in u32");
    }
    c.rng_seed = proptest::test_runner::RngSeed::Fixed(seed);
    eprintln!(
        "twin: seed {seed}, {} cases; replay with: IFAD_TWIN_SEED={seed} IFAD_TWIN_CASES={} cargo test -p ifad --test twin",
        c.cases, c.cases
    );
    c
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn ledger_always_equals_the_simulated_kvm(
        harts in 1..6u32,
        files in 1..5u8,
        numa in 1..3u32,
        ops in proptest::collection::vec(op(false), 1..50),
    ) {
        let mut e = engine(harts, files, numa.min(harts));
        run(&mut e, ops)?;
    }

    #[test]
    fn hotplug_keeps_the_ledger_consistent(
        harts in 2..6u32,
        files in 1..4u8,
        ops in proptest::collection::vec(op(true), 1..50),
    ) {
        let mut e = engine(harts, files, 1);
        run(&mut e, ops)?;
    }
}

/// A VM request with no devices, as the unit tests below place them.
fn spec(vm: &str, vcpus: u32, class: Class) -> PlaceSpec {
    PlaceSpec::parse(vm, vcpus, Some(class), &[]).unwrap()
}

/// Halts or wakes one vCPU of the simulated host.
fn set_blocked(e: &mut Engine, vm: &VmId, vcpu: u32, blocked: bool) {
    e.host_mut()
        .sim()
        .unwrap()
        .set_blocked(vm, vcpu, blocked)
        .unwrap();
}

#[test]
fn swapped_guaranteed_vm_waits_for_a_blocked_holder_then_starts() {
    // 2 harts x 1 file, both held by burstable b; b's vCPU 0 is idle (blocked).
    let mut e = engine(2, 1, 1);
    e.place(spec("b", 2, Class::Burstable), 0).unwrap();
    let b = VmId::parse("b").unwrap();
    for vcpu in 0..2 {
        set_blocked(&mut e, &b, vcpu, true);
    }
    let out = e.place(spec("g", 1, Class::Guaranteed), 10).unwrap();
    assert_eq!(out.demoted.len(), 1);
    assert_eq!(
        out.vm.state,
        VmState::Pending,
        "the demoted vCPU still holds the line"
    );
    e.tick(20);
    assert_eq!(
        e.vm(&VmId::parse("g").unwrap()).unwrap().state,
        VmState::Pending
    );
    let d = &out.demoted[0];
    set_blocked(&mut e, &b, d.vcpu, false);
    e.tick(30);
    let g = e.vm(&VmId::parse("g").unwrap()).unwrap();
    assert_eq!(g.state, VmState::Ready);
    assert!(g.vcpus[0].vsfile_hpa != 0, "g entered and holds its line");
    assert_eq!(e.failed_entries(), 0);
    check(&e);
}

/// Found by the twin with halted vCPUs and drains together: a burstable
/// vCPU must never wait where a line is promised to a pending guaranteed
/// VM, since that line stays free in KVM until the VM starts.
#[test]
fn a_drain_never_parks_a_waiter_on_files_promised_to_a_pending_vm() {
    let mut e = engine(4, 3, 1);
    e.place(spec("b", 9, Class::Burstable), 20).unwrap();
    let b = VmId::parse("b").unwrap();
    // Halt a vCPU the swap will demote, so that g stays pending.
    let plan = e.advise(spec("g", 6, Class::Guaranteed)).unwrap();
    let halted = plan.demoted[0].vcpu;
    set_blocked(&mut e, &b, halted, true);
    e.tick(40);
    let g = e.place(spec("g", 6, Class::Guaranteed), 60).unwrap();
    assert_eq!(g.vm.state, VmState::Pending, "waits for the halted holder");
    // b runs on harts 0 and 1 now; g's lines are on 2 and 3. Draining one
    // of b's harts moves its vCPUs to the other, never beside g's lines;
    // draining the second leaves them nowhere to go.
    let g_harts: Vec<u32> = g.vm.vcpus.iter().map(|v| v.hart).collect();
    let b_harts: Vec<u32> = e.vm(&b).unwrap().vcpus.iter().map(|v| v.hart).collect();
    assert!(
        b_harts.iter().all(|h| !g_harts.contains(h)),
        "{b_harts:?} {g_harts:?}"
    );
    let (first, second) = (
        b_harts[0],
        *b_harts.iter().find(|&&h| h != b_harts[0]).unwrap(),
    );
    e.drain(first, 70).unwrap();
    for v in e.vm(&b).unwrap().vcpus {
        assert!(
            !g_harts.contains(&v.hart),
            "b vcpu {} waits beside g's lines",
            v.vcpu
        );
    }
    check(&e);
    match e.drain(second, 80) {
        Err(EngineError::Core(CoreError::Refused(Refusal::WouldStrand, msg, _))) => {
            assert!(msg.contains("pending VM"), "{msg}")
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    check(&e);
    // The holder wakes: g starts, and no HWACCEL entry ever failed.
    set_blocked(&mut e, &b, halted, false);
    e.tick(100);
    check(&e);
    assert_eq!(
        e.vm(&VmId::parse("g").unwrap()).unwrap().state,
        VmState::Ready
    );
    assert_eq!(e.failed_entries(), 0);
}

/// Found by the twin with halted vCPUs and hotplug together: a hart comes
/// back online while the guaranteed vCPU stranded there is halted; an AUTO
/// vCPU that may use only that hart takes the line at its next entry. The
/// guaranteed VM is then failed at once (its next entry would fail), and
/// no hart is over-committed.
#[test]
fn a_file_taken_while_its_guaranteed_owner_was_halted_fails_that_vm_cleanly() {
    let mut e = engine(5, 1, 1);
    e.place(spec("g4", 2, Class::Guaranteed), 10).unwrap();
    let g1 = e.place(spec("g1", 1, Class::Guaranteed), 20).unwrap();
    let hart = g1.vm.vcpus[0].hart;
    let g1 = VmId::parse("g1").unwrap();
    set_blocked(&mut e, &g1, 0, true);
    e.tick(30);
    let b = spec("b", 1, Class::Burstable).with_harts(&[hart]);
    e.place(b, 40).unwrap();
    e.place(spec("g2", 2, Class::Guaranteed), 50).unwrap();
    let sim = e.host_mut().sim().unwrap();
    sim.set_hart_online(hart, false).unwrap();
    e.tick(60);
    e.host_mut()
        .sim()
        .unwrap()
        .set_hart_online(hart, true)
        .unwrap();
    e.tick(70);
    check(&e);
    assert_eq!(e.vm(&g1).unwrap().state, VmState::Failed);
}

/// The example an operator found: 24 burstable vCPUs leave 16 of 40 files
/// free and a guaranteed VM needs 20. On KVM's timing, exactly 4 are
/// demoted; the vCPUs that fill their landing hart keep their files and
/// say so in the events; no hart runs more than one thread above balance.
#[test]
fn a_swap_on_a_host_with_no_full_hart_demotes_only_what_it_must() {
    let mut e = engine(8, 5, 1);
    e.place(spec("web", 24, Class::Burstable), 0).unwrap();
    let mut feed = e.watch(None).unwrap().live;
    let db = e.place(spec("db", 20, Class::Guaranteed), 10).unwrap();
    assert_eq!(db.demoted.len(), 4, "{:?}", db.demoted);
    e.tick(20);
    check(&e);
    assert_eq!(
        e.vm(&VmId::parse("db").unwrap()).unwrap().state,
        VmState::Ready
    );
    let web = e.vm(&VmId::parse("web").unwrap()).unwrap();
    let on_mrif = web
        .vcpus
        .iter()
        .filter(|v| v.backing == Backing::Mrif)
        .count();
    assert_eq!(on_mrif, 4);
    let most = e.harts().iter().map(|h| h.vcpus).max().unwrap();
    assert!(most <= 7, "44 threads on 8 harts, yet {most} on one");
    let mut kept = 0;
    while let Ok(ev) = feed.try_recv() {
        if ev.message.contains("keeps its VS-file") {
            assert_eq!(ev.backing, Some(Backing::VsFile));
            kept += 1;
        }
    }
    assert!(kept > 0, "no event says which vCPUs moved with their files");
    assert_eq!(e.failed_entries(), 0);
}
