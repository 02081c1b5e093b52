//! Each test reproduces a behaviour of Linux's arch/riscv/kvm (aia.c,
//! aia_imsic.c, vcpu.c: see the model's header in kvm.rs for the functions),
//! most of them also seen on real KVM in tests/riscv-kvm.

use super::*;

fn pin_all(k: &mut SimKvm, vm: VmHandle, n: usize, cpu: u32) {
    for i in 0..n {
        k.set_affinity(vm, i, &[cpu]).unwrap();
    }
}

#[test]
fn first_come_first_served_lowest_line() {
    let mut k = SimKvm::new([5, 5]);
    let vm = k.create_vm(AiaMode::Auto, 2).unwrap();
    pin_all(&mut k, vm, 2, 1);
    assert_eq!(
        k.enter(vm, 1).unwrap(),
        Some(Entry::VsFile { cpu: 1, line: 1 })
    );
    assert_eq!(
        k.enter(vm, 0).unwrap(),
        Some(Entry::VsFile { cpu: 1, line: 2 })
    );
}

#[test]
fn hwaccel_sixth_vcpu_on_a_five_file_hart_fails_entry_and_stops_the_vm() {
    let mut k = SimKvm::new([5; 4]);
    let vm = k.create_vm(AiaMode::Hwaccel, 6).unwrap();
    pin_all(&mut k, vm, 6, 1);
    for i in 0..5 {
        assert!(matches!(
            k.enter(vm, i).unwrap(),
            Some(Entry::VsFile { cpu: 1, .. })
        ));
    }
    assert_eq!(k.enter(vm, 5).unwrap(), Some(Entry::Failed { cpu: 1 }));
    assert!(k.is_stopped(vm));
    assert_eq!(k.enter(vm, 0).unwrap(), None, "a stopped VM does not run");
    assert_eq!(k.used_lines(1), 5, "the stopped vCPUs keep their files");
}

#[test]
fn auto_falls_back_to_sw_file_and_upgrades_when_a_line_frees() {
    let mut k = SimKvm::new([1]);
    let a = k.create_vm(AiaMode::Auto, 1).unwrap();
    let b = k.create_vm(AiaMode::Auto, 1).unwrap();
    assert_eq!(
        k.enter(a, 0).unwrap(),
        Some(Entry::VsFile { cpu: 0, line: 1 })
    );
    assert_eq!(k.enter(b, 0).unwrap(), Some(Entry::SwFile { cpu: 0 }));
    assert_eq!(k.enter(b, 0).unwrap(), Some(Entry::SwFile { cpu: 0 }));
    k.destroy_vm(a).unwrap();
    assert_eq!(
        k.enter(b, 0).unwrap(),
        Some(Entry::VsFile { cpu: 0, line: 1 })
    );
}

#[test]
fn emul_never_takes_a_line() {
    let mut k = SimKvm::new([5]);
    let vm = k.create_vm(AiaMode::Emul, 3).unwrap();
    for i in 0..3 {
        assert_eq!(k.enter(vm, i).unwrap(), Some(Entry::SwFile { cpu: 0 }));
    }
    assert_eq!(k.used_lines(0), 0);
}

#[test]
fn files_are_sticky_and_released_lazily_on_migration() {
    let mut k = SimKvm::new([1, 1]);
    let a = k.create_vm(AiaMode::Hwaccel, 1).unwrap();
    let b = k.create_vm(AiaMode::Hwaccel, 1).unwrap();
    k.set_affinity(a, 0, &[0]).unwrap();
    k.set_affinity(b, 0, &[0]).unwrap();
    assert_eq!(
        k.enter(a, 0).unwrap(),
        Some(Entry::VsFile { cpu: 0, line: 1 })
    );
    assert_eq!(
        k.enter(a, 0).unwrap(),
        Some(Entry::VsFile { cpu: 0, line: 1 })
    );
    // Moving a's affinity frees nothing until a runs on cpu 1.
    k.set_affinity(a, 0, &[1]).unwrap();
    assert_eq!(k.used_lines(0), 1);
    let mut k2 = k.clone();
    assert_eq!(
        k2.enter(b, 0).unwrap(),
        Some(Entry::Failed { cpu: 0 }),
        "b came too early"
    );
    assert_eq!(
        k.enter(a, 0).unwrap(),
        Some(Entry::VsFile { cpu: 1, line: 1 })
    );
    assert_eq!(k.used_lines(0), 0);
    assert_eq!(
        k.enter(b, 0).unwrap(),
        Some(Entry::VsFile { cpu: 0, line: 1 })
    );
}

#[test]
fn hwaccel_failed_migration_keeps_the_old_file() {
    let mut k = SimKvm::new([1, 1]);
    let a = k.create_vm(AiaMode::Hwaccel, 1).unwrap();
    let b = k.create_vm(AiaMode::Hwaccel, 1).unwrap();
    k.set_affinity(a, 0, &[0]).unwrap();
    k.set_affinity(b, 0, &[1]).unwrap();
    k.enter(a, 0).unwrap();
    k.enter(b, 0).unwrap();
    k.set_affinity(a, 0, &[1]).unwrap();
    assert_eq!(k.enter(a, 0).unwrap(), Some(Entry::Failed { cpu: 1 }));
    assert_eq!(k.used_lines(0), 1);
}

#[test]
fn cpu_offline_pushes_owners_to_sw_file_and_the_scheduler_moves_them() {
    let mut k = SimKvm::new([2, 2]);
    let vm = k.create_vm(AiaMode::Auto, 1).unwrap();
    k.set_affinity(vm, 0, &[0]).unwrap();
    k.enter(vm, 0).unwrap();
    k.set_cpu_online(0, false).unwrap();
    assert_eq!(k.used_lines(0), 0);
    // Affinity has no online CPU left: the fallback CPU runs it.
    assert_eq!(
        k.enter(vm, 0).unwrap(),
        Some(Entry::VsFile { cpu: 1, line: 1 })
    );
}

#[test]
fn modes_needing_files_are_refused_on_a_host_without_them() {
    let mut k = SimKvm::new([0, 0]);
    assert_eq!(
        k.create_vm(AiaMode::Hwaccel, 1),
        Err(KvmError::NoGuestFiles(AiaMode::Hwaccel))
    );
    assert!(k.create_vm(AiaMode::Auto, 1).is_err());
    assert!(k.create_vm(AiaMode::Emul, 1).is_ok());
}

#[test]
fn destroy_frees_every_line() {
    let mut k = SimKvm::new([3]);
    let vm = k.create_vm(AiaMode::Auto, 3).unwrap();
    for i in 0..3 {
        k.enter(vm, i).unwrap();
    }
    assert_eq!(k.used_lines(0), 3);
    k.destroy_vm(vm).unwrap();
    assert_eq!(k.used_lines(0), 0);
    assert_eq!(k.enter(vm, 0), Err(KvmError::NoSuchVcpu));
}

#[test]
fn paused_vms_and_blocked_vcpus_do_not_enter_and_keep_their_lines() {
    let mut k = SimKvm::new([1, 1]);
    let vm = k.create_vm(AiaMode::Auto, 1).unwrap();
    k.set_affinity(vm, 0, &[0]).unwrap();
    k.set_paused(vm, true).unwrap();
    assert_eq!(k.enter(vm, 0).unwrap(), None);
    k.set_paused(vm, false).unwrap();
    assert_eq!(
        k.enter(vm, 0).unwrap(),
        Some(Entry::VsFile { cpu: 0, line: 1 })
    );
    k.set_blocked(vm, 0, true).unwrap();
    k.set_affinity(vm, 0, &[1]).unwrap();
    assert_eq!(k.enter(vm, 0).unwrap(), None);
    assert_eq!(
        k.used_lines(0),
        1,
        "a blocked vCPU keeps its line (lazy release)"
    );
    k.set_blocked(vm, 0, false).unwrap();
    assert_eq!(
        k.enter(vm, 0).unwrap(),
        Some(Entry::VsFile { cpu: 1, line: 1 })
    );
    assert_eq!(k.used_lines(0), 0);
}

#[test]
fn linux_never_takes_its_last_online_cpu_down() {
    let mut k = SimKvm::new([2, 2]);
    k.set_cpu_online(1, false).unwrap();
    assert_eq!(k.set_cpu_online(0, false), Err(KvmError::LastOnlineCpu(0)));
    assert!(k.is_online(0));
    // Taking an offline CPU down again is not the last one going.
    k.set_cpu_online(1, false).unwrap();
}

#[test]
fn an_offline_or_missing_cpu_is_not_online() {
    let mut k = SimKvm::new([2, 2]);
    k.set_cpu_online(1, false).unwrap();
    assert!(k.is_online(0));
    assert!(!k.is_online(1));
    assert!(!k.is_online(2));
}

#[test]
fn a_vm_is_stopped_only_once_an_entry_failed() {
    let mut k = SimKvm::new([1]);
    let a = k.create_vm(AiaMode::Hwaccel, 1).unwrap();
    let b = k.create_vm(AiaMode::Hwaccel, 1).unwrap();
    k.enter(a, 0).unwrap();
    assert!(!k.is_stopped(a), "entered on a VS-file");
    assert!(!k.is_stopped(b), "never entered");
    assert_eq!(k.enter(b, 0).unwrap(), Some(Entry::Failed { cpu: 0 }));
    assert!(k.is_stopped(b));
    assert!(!k.is_stopped(a));
}

#[test]
fn reshape_to_fewer_lines_drops_only_the_lines_beyond_the_new_count() {
    let mut k = SimKvm::new([3]);
    let vm = k.create_vm(AiaMode::Auto, 3).unwrap();
    for i in 0..3 {
        k.enter(vm, i).unwrap();
    }
    k.reshape(&[2]);
    assert_eq!(k.used_lines(0), 2);
    assert_eq!(k.held_line(vm, 0).unwrap(), Some((0, 1)));
    assert_eq!(k.held_line(vm, 1).unwrap(), Some((0, 2)));
    assert_eq!(k.held_line(vm, 2).unwrap(), None, "its line is gone");
    // The freed vCPU finds no line left at its next entry.
    assert_eq!(k.enter(vm, 2).unwrap(), Some(Entry::SwFile { cpu: 0 }));
}

#[test]
fn reshape_adds_new_cpus_online_and_empty() {
    let mut k = SimKvm::new([1]);
    let vm = k.create_vm(AiaMode::Auto, 1).unwrap();
    k.reshape(&[1, 2]);
    k.set_affinity(vm, 0, &[1]).unwrap();
    assert!(k.is_online(1));
    assert_eq!(
        k.enter(vm, 0).unwrap(),
        Some(Entry::VsFile { cpu: 1, line: 1 })
    );
}

#[test]
fn reshape_drops_a_removed_cpu_from_lines_and_affinities() {
    let mut k = SimKvm::new([2, 2, 2]);
    let vm = k.create_vm(AiaMode::Auto, 2).unwrap();
    k.set_affinity(vm, 0, &[2]).unwrap();
    k.enter(vm, 0).unwrap();
    k.set_affinity(vm, 0, &[1, 2]).unwrap();
    k.set_affinity(vm, 1, &[2]).unwrap();
    k.reshape(&[2, 2]);
    assert_eq!(k.held_line(vm, 0).unwrap(), None, "cpu 2 is gone");
    // Left with cpu 1 only, though it last ran on cpu 2.
    assert_eq!(
        k.enter(vm, 0).unwrap(),
        Some(Entry::VsFile { cpu: 1, line: 1 })
    );
    // Left with no cpu at all: it may run anywhere.
    assert_eq!(
        k.enter(vm, 1).unwrap(),
        Some(Entry::VsFile { cpu: 0, line: 1 })
    );
}

#[test]
fn reshape_keeps_a_thread_on_the_cpu_it_last_ran_on() {
    let mut k = SimKvm::new([2, 2]);
    let vm = k.create_vm(AiaMode::Auto, 1).unwrap();
    k.set_affinity(vm, 0, &[1]).unwrap();
    k.enter(vm, 0).unwrap();
    k.set_affinity(vm, 0, &[0, 1]).unwrap();
    k.reshape(&[2, 2]);
    assert_eq!(
        k.enter(vm, 0).unwrap(),
        Some(Entry::VsFile { cpu: 1, line: 1 }),
        "sticky: no move, no new line"
    );
}

#[test]
fn last_entry_is_what_the_latest_entry_ended_in() {
    let mut k = SimKvm::new([1]);
    let vm = k.create_vm(AiaMode::Auto, 2).unwrap();
    assert_eq!(k.last_entry(vm, 0).unwrap(), None, "never entered");
    k.enter(vm, 0).unwrap();
    k.enter(vm, 1).unwrap();
    assert_eq!(
        k.last_entry(vm, 0).unwrap(),
        Some(Entry::VsFile { cpu: 0, line: 1 })
    );
    assert_eq!(k.last_entry(vm, 1).unwrap(), Some(Entry::SwFile { cpu: 0 }));
}

#[test]
fn vm_handles_lists_the_live_vms_with_their_vcpu_counts() {
    let mut k = SimKvm::new([1]);
    let a = k.create_vm(AiaMode::Auto, 2).unwrap();
    let b = k.create_vm(AiaMode::Emul, 3).unwrap();
    let c = k.create_vm(AiaMode::Auto, 1).unwrap();
    k.destroy_vm(b).unwrap();
    assert_eq!(k.vm_handles().collect::<Vec<_>>(), [(a, 2), (c, 1)]);
}
