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
