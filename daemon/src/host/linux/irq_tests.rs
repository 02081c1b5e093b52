use std::sync::{Arc, Mutex};

use super::*;

/// Files in memory; a write to a path listed in `fail` returns that errno.
/// A write that succeeds sets the IRQ's effective affinity to what was asked,
/// unless `routes` names the IRQ's smp_affinity_list: then the kernel routes
/// it there instead (as Linux does for a managed IRQ, or an irqchip that
/// cannot reach the CPU asked for); with `pending`, it leaves it as it was
/// (the move waits for the IRQ's next interrupt, as on RISC-V's IMSIC).
#[derive(Clone, Default)]
struct FakeFs {
    files: Arc<Mutex<HashMap<PathBuf, String>>>,
    fail: Arc<Mutex<HashMap<PathBuf, Errno>>>,
    routes: Arc<Mutex<HashMap<PathBuf, String>>>,
    pending: Arc<Mutex<bool>>,
    writes: Arc<Mutex<u32>>,
}

impl FakeFs {
    fn with(files: &[(&str, &str)]) -> Self {
        let fs = FakeFs::default();
        for (p, c) in files {
            fs.files
                .lock()
                .unwrap()
                .insert(PathBuf::from("/r").join(p), c.to_string());
        }
        fs
    }

    fn set(&self, path: &str, content: &str) {
        self.files
            .lock()
            .unwrap()
            .insert(PathBuf::from("/r").join(path), content.to_string());
    }
}

impl IrqFs for FakeFs {
    fn read(&self, path: &Path) -> io::Result<String> {
        self.files
            .lock()
            .unwrap()
            .get(path)
            .cloned()
            .ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))
    }

    fn write(&self, path: &Path, data: &str) -> io::Result<()> {
        *self.writes.lock().unwrap() += 1;
        if let Some(e) = self.fail.lock().unwrap().get(path) {
            return Err(io::Error::from_raw_os_error(*e as i32));
        }
        let mut files = self.files.lock().unwrap();
        files.insert(path.to_path_buf(), format!("{data}\n"));
        if *self.pending.lock().unwrap() {
            return Ok(());
        }
        let eff = path.with_file_name("effective_affinity_list");
        let routed = self.routes.lock().unwrap().get(path).cloned();
        files.insert(eff, routed.unwrap_or_else(|| format!("{data}\n")));
        Ok(())
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        let files = self.files.lock().unwrap();
        let names: Vec<String> = files
            .keys()
            .filter(|p| p.parent() == Some(dir))
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        if names.is_empty() {
            Err(io::Error::from(io::ErrorKind::NotFound))
        } else {
            Ok(names)
        }
    }
}

fn bdf(s: &str) -> Bdf {
    s.parse().unwrap()
}

#[test]
fn finds_irqs_in_msi_irqs_or_proc_interrupts() {
    let fs = FakeFs::with(&[
        ("sys/bus/pci/devices/0000:01:00.0/msi_irqs/41", "msix"),
        ("sys/bus/pci/devices/0000:01:00.0/msi_irqs/40", "msix"),
        (
            "proc/interrupts",
            "  52:   0   0  IMSIC-PCI  1 Edge  vfio-msix[0](0000:02:00.0)\n  53:   0   0  IMSIC-PCI  2 Edge  vfio-msix[1](0000:02:00.0)\n  54:   0   0  IMSIC-PCI  3 Edge  eth0\n",
        ),
    ]);
    let root = Path::new("/r");
    assert_eq!(device_irqs(&fs, root, &bdf("01:00.0")), [40, 41]);
    assert_eq!(device_irqs(&fs, root, &bdf("02:00.0")), [52, 53]);
    assert!(device_irqs(&fs, root, &bdf("03:00.0")).is_empty());
}

#[test]
fn reads_before_writing_and_reads_back_the_effective_affinity() {
    let fs = FakeFs::with(&[
        ("proc/irq/40/smp_affinity_list", "0-3\n"),
        ("proc/irq/41/smp_affinity_list", "2\n"),
    ]);
    let mut s = Steering::new("/r".into(), Box::new(fs.clone()));
    let out = s.steer(&[40, 41], &[1, 2], 0);
    assert_eq!(
        out[0],
        Outcome::Moved {
            irq: 40,
            hart: 1,
            effective: vec![1]
        }
    );
    assert_eq!(out[1], Outcome::Unchanged { irq: 41, hart: 2 });
    assert_eq!(
        *fs.writes.lock().unwrap(),
        1,
        "equal affinity is not rewritten"
    );
}

#[test]
fn classifies_errors_like_irqbalance() {
    for (errno, class) in [
        (Errno::EBUSY, ErrorClass::Transient),
        (Errno::EINVAL, ErrorClass::Transient),
        (Errno::ENOMEM, ErrorClass::Transient),
        (Errno::ENOSPC, ErrorClass::TargetFull),
        (Errno::EIO, ErrorClass::Permanent),
        (Errno::EPERM, ErrorClass::Permanent),
    ] {
        assert_eq!(
            ErrorClass::of(&io::Error::from_raw_os_error(errno as i32)),
            class,
            "{errno}"
        );
    }
}

#[test]
fn transient_failures_back_off_and_then_succeed() {
    let fs = FakeFs::with(&[("proc/irq/40/smp_affinity_list", "0\n")]);
    let path = PathBuf::from("/r/proc/irq/40/smp_affinity_list");
    fs.fail.lock().unwrap().insert(path.clone(), Errno::EBUSY);
    let mut s = Steering::new("/r".into(), Box::new(fs.clone()));
    assert!(matches!(
        s.steer(&[40], &[1], 0)[0],
        Outcome::Failed {
            class: ErrorClass::Transient,
            ..
        }
    ));
    assert_eq!(
        s.steer(&[40], &[1], 100)[0],
        Outcome::Skipped { irq: 40 },
        "waits out the backoff"
    );
    fs.fail.lock().unwrap().clear();
    assert!(matches!(
        s.steer(&[40], &[1], 5_000)[0],
        Outcome::Moved { .. }
    ));
}

#[test]
fn enospc_marks_the_hart_full_and_later_irqs_go_elsewhere() {
    let fs = FakeFs::with(&[
        ("proc/irq/40/smp_affinity_list", "0\n"),
        ("proc/irq/41/smp_affinity_list", "0\n"),
    ]);
    fs.fail.lock().unwrap().insert(
        PathBuf::from("/r/proc/irq/40/smp_affinity_list"),
        Errno::ENOSPC,
    );
    let mut s = Steering::new("/r".into(), Box::new(fs.clone()));
    assert!(matches!(
        s.steer(&[40], &[1, 2], 0)[0],
        Outcome::Failed {
            class: ErrorClass::TargetFull,
            hart: 1,
            ..
        }
    ));
    let out = s.steer(&[41], &[1, 2], 10);
    assert_eq!(
        out[0],
        Outcome::Moved {
            irq: 41,
            hart: 2,
            effective: vec![2]
        }
    );
}

#[test]
fn permanent_failures_stop_managing_the_irq() {
    let fs = FakeFs::with(&[("proc/irq/40/smp_affinity_list", "0\n")]);
    fs.fail.lock().unwrap().insert(
        PathBuf::from("/r/proc/irq/40/smp_affinity_list"),
        Errno::EIO,
    );
    let mut s = Steering::new("/r".into(), Box::new(fs.clone()));
    assert!(matches!(
        s.steer(&[40], &[1], 0)[0],
        Outcome::Failed {
            class: ErrorClass::Permanent,
            ..
        }
    ));
    fs.fail.lock().unwrap().clear();
    assert_eq!(
        s.steer(&[40], &[1], 60_000)[0],
        Outcome::Skipped { irq: 40 }
    );
    assert_eq!(*fs.writes.lock().unwrap(), 1, "never written again");
}

#[test]
fn does_not_fight_whoever_moves_an_irq_afterwards() {
    let fs = FakeFs::with(&[("proc/irq/40/smp_affinity_list", "0\n")]);
    let mut s = Steering::new("/r".into(), Box::new(fs.clone()));
    assert!(matches!(s.steer(&[40], &[1], 0)[0], Outcome::Moved { .. }));
    // irqbalance (say) moves it; ifad's target has not changed.
    fs.files.lock().unwrap().insert(
        PathBuf::from("/r/proc/irq/40/smp_affinity_list"),
        "3\n".into(),
    );
    assert_eq!(s.steer(&[40], &[1], 1_000)[0], Outcome::Skipped { irq: 40 });
    assert_eq!(*fs.writes.lock().unwrap(), 1);
    // The vCPU moves: the IRQ follows.
    assert!(matches!(
        s.steer(&[40], &[2], 2_000)[0],
        Outcome::Moved { hart: 2, .. }
    ));
}

#[test]
fn reports_the_effective_affinity_the_kernel_chose_not_the_one_asked_for() {
    let fs = FakeFs::with(&[
        ("proc/irq/40/smp_affinity_list", "0-3\n"),
        ("proc/irq/41/smp_affinity_list", "0-3\n"),
    ]);
    // The write succeeds, but the kernel keeps IRQ 40 on CPU 0 and spreads
    // IRQ 41 over 2-3.
    let routes = [("40", "0\n"), ("41", "2-3\n")];
    for (irq, eff) in routes {
        fs.routes.lock().unwrap().insert(
            PathBuf::from(format!("/r/proc/irq/{irq}/smp_affinity_list")),
            eff.into(),
        );
    }
    let mut s = Steering::new("/r".into(), Box::new(fs.clone()));
    let out = s.steer(&[40, 41], &[1, 2], 0);
    assert_eq!(
        out,
        [
            Outcome::Moved {
                irq: 40,
                hart: 1,
                effective: vec![0]
            },
            Outcome::Moved {
                irq: 41,
                hart: 2,
                effective: vec![2, 3]
            },
        ],
        "the read-back, not the request"
    );
    assert_eq!(out[0].rerouted(), Some(&[0][..]));
    assert_eq!(out[1].rerouted(), None, "2-3 still holds hart 2");
    let unreadable = Outcome::Moved {
        irq: 42,
        hart: 2,
        effective: vec![],
    };
    assert_eq!(unreadable.rerouted(), None, "no read-back: nothing known");
    assert_eq!(*fs.writes.lock().unwrap(), 2);
    // What the kernel answered is not fought: the same target is not
    // written again.
    assert_eq!(
        s.steer(&[40, 41], &[1, 2], 1_000),
        [Outcome::Skipped { irq: 40 }, Outcome::Skipped { irq: 41 }]
    );
    assert_eq!(*fs.writes.lock().unwrap(), 2);
}

/// IRQ 40 on CPU 3, where it has fired 7 times; the kernel makes moves at
/// the next interrupt (GENERIC_PENDING_IRQ, as RISC-V's IMSIC does).
fn pending_kernel() -> FakeFs {
    let fs = FakeFs::with(&[
        ("proc/irq/40/smp_affinity_list", "3\n"),
        ("proc/irq/40/effective_affinity_list", "3\n"),
    ]);
    fs.set("proc/interrupts", &interrupts([0, 0, 0, 7]));
    *fs.pending.lock().unwrap() = true;
    fs
}

/// /proc/interrupts with IRQ 40's counts on 4 CPUs.
fn interrupts(counts: [u64; 4]) -> String {
    let [a, b, c, d] = counts;
    format!(
        "           CPU0       CPU1       CPU2       CPU3\n 10:  1  2  3  4  RISC-V INTC   5 Edge  riscv-timer\n \
         40:  {a}  {b}  {c}  {d}  IMSIC-PCI-MSIX-0000:00:01.0   0 Edge  virtio0-config\n"
    )
}

#[test]
fn a_move_the_kernel_makes_at_the_next_interrupt_is_pending_not_rerouted() {
    let fs = pending_kernel();
    let mut s = Steering::new("/r".into(), Box::new(fs.clone()));
    let pending = Outcome::Pending { irq: 40, hart: 1 };
    assert_eq!(s.steer(&[40], &[1], 0), std::slice::from_ref(&pending));
    // It has not fired yet: still pending, and not written again.
    assert_eq!(s.steer(&[40], &[1], 500), [pending]);
    assert_eq!(*fs.writes.lock().unwrap(), 1);
    // It fires, on the CPU asked for: the move is confirmed, once.
    fs.set("proc/interrupts", &interrupts([0, 1, 0, 7]));
    fs.set("proc/irq/40/effective_affinity_list", "1\n");
    let out = s.steer(&[40], &[1], 1000);
    let moved = Outcome::Moved {
        irq: 40,
        hart: 1,
        effective: vec![1],
    };
    assert_eq!(out, [moved]);
    assert_eq!(out[0].rerouted(), None);
    assert_eq!(s.steer(&[40], &[1], 1500), [Outcome::Skipped { irq: 40 }]);
}

#[test]
fn a_move_still_elsewhere_after_the_irq_fired_was_rerouted() {
    let fs = pending_kernel();
    let mut s = Steering::new("/r".into(), Box::new(fs.clone()));
    assert!(matches!(
        s.steer(&[40], &[1], 0)[0],
        Outcome::Pending { .. }
    ));
    // It fired, and still on CPU 3: the kernel routes it there.
    fs.set("proc/interrupts", &interrupts([0, 0, 0, 8]));
    let out = s.steer(&[40], &[1], 500);
    assert_eq!(out[0].rerouted(), Some(&[3][..]), "{out:?}");
    assert_eq!(s.steer(&[40], &[1], 1000), [Outcome::Skipped { irq: 40 }]);
}
