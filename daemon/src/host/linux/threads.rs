//! A VMM's vCPU threads, found by name in /proc/<pid>/task/*/comm, and the
//! process's start time (so a reused PID is never taken for the VMM).

use std::fs;
use std::io;
use std::path::Path;

/// vCPU thread names, `{n}` standing for the vCPU index: QEMU, cloud-
/// hypervisor, kvmtool.
pub const DEFAULT_PATTERNS: [&str; 3] = ["CPU {n}/KVM", "vcpu{n}", "kvm-vcpu-{n}"];

/// The vCPU index a thread name denotes under `pattern`, if any.
pub fn vcpu_index(pattern: &str, comm: &str) -> Option<u32> {
    let (prefix, suffix) = pattern.split_once("{n}")?;
    let digits = comm.strip_prefix(prefix)?.strip_suffix(suffix)?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Thread id per vCPU index (`None` where no thread was found) for the
/// first pattern that names any thread of `pid`.
pub fn vcpu_threads(
    proc_root: &Path,
    pid: u32,
    vcpus: usize,
    patterns: &[String],
) -> io::Result<Vec<Option<u32>>> {
    let mut named = Vec::new();
    for entry in fs::read_dir(proc_root.join(pid.to_string()).join("task"))? {
        let entry = entry?;
        let Some(tid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        // A thread may exit between listing and reading: skip it.
        if let Ok(comm) = fs::read_to_string(entry.path().join("comm")) {
            named.push((tid, comm.trim_end_matches('\n').to_string()));
        }
    }
    for pattern in patterns {
        let mut out = vec![None; vcpus];
        let mut any = false;
        for (tid, comm) in &named {
            if let Some(i) = vcpu_index(pattern, comm).filter(|&i| (i as usize) < vcpus) {
                out[i as usize] = Some(*tid);
                any = true;
            }
        }
        if any {
            return Ok(out);
        }
    }
    Ok(vec![None; vcpus])
}

/// Field 22 of /proc/<pid>/stat: start time in clock ticks since boot.
pub fn start_time(proc_root: &Path, pid: u32) -> Option<u64> {
    let stat = fs::read_to_string(proc_root.join(pid.to_string()).join("stat")).ok()?;
    parse_start_time(&stat)
}

/// The command name may hold spaces and parentheses: fields are counted
/// after the last ')'.
pub fn parse_start_time(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// Field 39 of /proc/<pid>/task/<tid>/stat: the CPU the thread last ran on.
pub fn last_cpu(proc_root: &Path, pid: u32, tid: u32) -> Option<u32> {
    let path = proc_root
        .join(pid.to_string())
        .join("task")
        .join(tid.to_string())
        .join("stat");
    let stat = fs::read_to_string(path).ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(36)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_of_the_usual_vmms() {
        assert_eq!(vcpu_index("CPU {n}/KVM", "CPU 12/KVM"), Some(12));
        assert_eq!(vcpu_index("vcpu{n}", "vcpu3"), Some(3));
        assert_eq!(vcpu_index("kvm-vcpu-{n}", "kvm-vcpu-0"), Some(0));
        for other in [
            "CPU /KVM",
            "CPU x/KVM",
            "qemu-system-ris",
            "vcpu",
            "CPU 1/KVMx",
        ] {
            assert_eq!(vcpu_index("CPU {n}/KVM", other), None, "{other}");
        }
    }

    #[test]
    fn start_time_survives_odd_command_names() {
        let stat =
            "1234 (CPU 0/KVM) (x) S 1 1234 1234 0 -1 4194560 100 0 0 0 5 6 0 0 20 0 3 0 98765 0 0";
        assert_eq!(parse_start_time(stat), Some(98765));
    }

    #[test]
    fn finds_this_process_s_own_threads() {
        let me = std::process::id();
        let start = start_time(Path::new("/proc"), me);
        assert!(start.is_some());
        // The name is set by the new thread itself: wait until it runs, and
        // keep it alive until the scan is done (not for a fixed time).
        let (started, wait) = std::sync::mpsc::channel();
        let (done, finish) = std::sync::mpsc::channel::<()>();
        let handle = std::thread::Builder::new()
            .name("vcpu0".into())
            .spawn(move || {
                started.send(()).unwrap();
                finish.recv().unwrap();
            })
            .unwrap();
        wait.recv().unwrap();
        let tids = vcpu_threads(Path::new("/proc"), me, 2, &["vcpu{n}".to_string()]).unwrap();
        done.send(()).unwrap();
        handle.join().unwrap();
        assert!(tids[0].is_some() && tids[1].is_none(), "{tids:?}");
    }
}
