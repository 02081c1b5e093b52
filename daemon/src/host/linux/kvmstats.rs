//! Without the kprobe observer, KVM's per-vCPU statistics hint at which
//! vCPUs run on the SW-file (MRIF): every guest access to its interrupt
//! file traps, so `csr_exit_kernel` climbs (debugfs
//! /sys/kernel/debug/kvm/<pid>-<fd>/vcpu<N>/). A vCPU whose counter did not
//! move may hold a VS-file or may just be idle: that stays unknown.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};

const COUNTER: &str = "csr_exit_kernel";

/// The debugfs directories of a VMM's VMs (`<pid>-<fd>`).
fn vm_dirs(debugfs_kvm: &Path, pid: u32) -> Vec<PathBuf> {
    let prefix = format!("{pid}-");
    fs::read_dir(debugfs_kvm)
        .map(|entries| {
            entries
                .flatten()
                .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
                .map(|e| e.path())
                .collect()
        })
        .unwrap_or_default()
}

/// Samples one VMM's counters; per vCPU, whether it trapped on its
/// interrupt file since the previous sample (`None`: cannot tell).
#[derive(Debug, Default)]
pub struct TrapWatch {
    last: HashMap<(u32, u32), u64>,
}

impl TrapWatch {
    pub fn sample(&mut self, debugfs_kvm: &Path, pid: u32, vcpus: usize) -> Vec<Option<bool>> {
        let dirs = vm_dirs(debugfs_kvm, pid);
        (0..vcpus as u32)
            .map(|vcpu| {
                let value = dirs.iter().find_map(|d| {
                    fs::read_to_string(d.join(format!("vcpu{vcpu}")).join(COUNTER))
                        .ok()?
                        .trim()
                        .parse::<u64>()
                        .ok()
                })?;
                let before = self.last.insert((pid, vcpu), value);
                before.map(|b| value > b)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_climbing_counter_means_traps() {
        let dir = tempfile::tempdir().unwrap();
        let kvm = dir.path();
        for (vcpu, v) in [(0, "10"), (1, "7")] {
            fs::create_dir_all(kvm.join(format!("42-11/vcpu{vcpu}"))).unwrap();
            fs::write(kvm.join(format!("42-11/vcpu{vcpu}/csr_exit_kernel")), v).unwrap();
        }
        let mut w = TrapWatch::default();
        assert_eq!(
            w.sample(kvm, 42, 3),
            [None, None, None],
            "no previous sample"
        );
        fs::write(kvm.join("42-11/vcpu0/csr_exit_kernel"), "25\n").unwrap();
        assert_eq!(w.sample(kvm, 42, 3), [Some(true), Some(false), None]);
        assert_eq!(w.sample(kvm, 7, 1), [None], "another process");
    }
}
