//! Whether this machine is a RISC-V KVM host ifad could manage for real.

use std::path::Path;

/// Why the Linux backend cannot run here, or `None` if it could.
pub fn not_a_riscv_kvm_host(root: &Path, arch: &str) -> Option<String> {
    if arch != "riscv64" {
        return Some(format!("this machine is {arch}, not a RISC-V host"));
    }
    if !root.join("dev/kvm").exists() {
        return Some(format!(
            "{} does not exist: KVM is not loaded",
            root.join("dev/kvm").display()
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn other_architectures_and_missing_kvm_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let why = not_a_riscv_kvm_host(dir.path(), "x86_64").unwrap();
        assert!(why.contains("x86_64"), "{why}");
        let why = not_a_riscv_kvm_host(dir.path(), "riscv64").unwrap();
        assert!(why.contains("KVM is not loaded"), "{why}");
        std::fs::create_dir(dir.path().join("dev")).unwrap();
        std::fs::write(dir.path().join("dev/kvm"), "").unwrap();
        assert_eq!(not_a_riscv_kvm_host(dir.path(), "riscv64"), None);
    }
}
