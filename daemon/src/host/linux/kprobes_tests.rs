use super::*;

#[test]
fn parses_trace_lines_with_spaces_in_task_names() {
    let alloc = "       CPU 0/KVM-1234    [001] d..1.   123.456789: alloc_hgei: (kvm_riscv_aia_alloc_hgei+0x0/0x98) cpu=1";
    let ret = "       CPU 0/KVM-1234    [001] d..1.   123.456800: alloc_hgei_ret: (kvm_riscv_vcpu_aia_imsic_update+0x7c/0x1f0 <- kvm_riscv_aia_alloc_hgei) ret=2";
    let free = "       CPU 3/KVM-1240    [002] d..1.   124.000000: free_hgei: (kvm_riscv_aia_free_hgei+0x0/0x70) cpu=1 hgei=2";
    assert_eq!(parse(alloc), Some(Event::Alloc { tid: 1234, cpu: 1 }));
    assert_eq!(parse(ret), Some(Event::AllocRet { tid: 1234, ret: 2 }));
    assert_eq!(parse(free), Some(Event::Free { cpu: 1, hgei: 2 }));
    assert_eq!(parse("# tracer: nop"), None);
    assert_eq!(
        parse("  sshd-77 [000] ....  1.0: sched_switch: prev=a"),
        None
    );
}

#[test]
fn follows_allocations_failures_and_frees() {
    let mut a = Allocations::default();
    a.feed(Event::Alloc { tid: 10, cpu: 1 });
    a.feed(Event::AllocRet { tid: 10, ret: 1 });
    a.feed(Event::Alloc { tid: 11, cpu: 1 });
    a.feed(Event::AllocRet { tid: 11, ret: -16 }); // no free line: nothing held
    assert_eq!(a.held_by(10), Some((1, 1)));
    assert_eq!(a.held_by(11), None);
    assert_eq!(a.per_cpu(4), [0, 1, 0, 0]);
    a.feed(Event::Free { cpu: 1, hgei: 1 });
    assert_eq!(a.held_by(10), None);
    assert_eq!(a.per_cpu(4), [0, 0, 0, 0]);
}

#[test]
fn a_seeded_line_gives_way_to_the_threads_next_allocation() {
    let mut a = Allocations::default();
    a.seed(10, 0, 2); // held before a restart; its free was never seen
    a.feed(Event::Alloc { tid: 10, cpu: 3 });
    a.feed(Event::AllocRet { tid: 10, ret: 1 });
    assert_eq!(a.held_by(10), Some((3, 1)));
    assert_eq!(a.per_cpu(4), [0, 0, 0, 1]);
}

#[test]
fn installs_when_supported_and_removes_on_drop() {
    let dir = tempfile::tempdir().unwrap();
    let t = dir.path();
    assert!(matches!(Probes::install(t), Err(ProbeError::NoTracefs(_))));
    fs::write(t.join("kprobe_events"), "").unwrap();
    fs::write(
        t.join("available_filter_functions"),
        "kvm_riscv_aia_alloc_hgei [kvm]\n",
    )
    .unwrap();
    assert!(matches!(
        Probes::install(t),
        Err(ProbeError::NoSymbol(FREE))
    ));
    fs::write(
        t.join("available_filter_functions"),
        "kvm_riscv_aia_alloc_hgei [kvm]\nkvm_riscv_aia_free_hgei [kvm]\n",
    )
    .unwrap();
    fs::create_dir_all(t.join("events/ifad")).unwrap();
    let probes = Probes::install(t).unwrap();
    let written = fs::read_to_string(t.join("kprobe_events")).unwrap();
    assert!(
        written.contains("p:ifad/alloc_hgei kvm_riscv_aia_alloc_hgei cpu=%a0:s32"),
        "{written}"
    );
    assert!(written.contains("r:ifad/alloc_hgei_ret"), "{written}");
    // Probes a killed daemon left behind are cleared before defining them.
    let cleared = written
        .find("-:ifad/alloc_hgei")
        .expect("stale probes cleared");
    assert!(
        cleared < written.find("p:ifad/alloc_hgei").unwrap(),
        "{written}"
    );
    assert_eq!(
        fs::read_to_string(t.join("events/ifad/enable")).unwrap(),
        "1"
    );
    drop(probes);
    let written = fs::read_to_string(t.join("kprobe_events")).unwrap();
    assert!(written.contains("-:ifad/free_hgei"), "{written}");
    assert_eq!(
        fs::read_to_string(t.join("events/ifad/enable")).unwrap(),
        "0"
    );
}
