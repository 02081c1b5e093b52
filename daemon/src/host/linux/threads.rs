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

/// Voluntary context switches of a vCPU thread so far
/// (/proc/<pid>/task/<tid>/status): the thread blocks once per halt in WFI,
/// so this counts the vCPU's wake-ups, which its interrupts cause, on a
/// VS-file as on MRIF (the rig measured 0.6-0.9 per guest IPI per thread on
/// both). `None` if the thread is gone.
pub fn wakeups(proc_root: &Path, pid: u32, tid: u32) -> Option<u64> {
    let process = procfs::process::Process::new_with_root(proc_root.join(pid.to_string())).ok()?;
    let tid = i32::try_from(tid).ok()?;
    process
        .task_from_tid(tid)
        .ok()?
        .status()
        .ok()?
        .voluntary_ctxt_switches
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

    #[test]
    fn wakeups_are_a_thread_s_voluntary_context_switches() {
        let root = tempfile::tempdir().unwrap();
        let task = root.path().join("4242/task/4250");
        std::fs::create_dir_all(&task).unwrap();
        let status = "Name:\tCPU 0/KVM\nState:\tS (sleeping)\nTgid:\t4242\nPid:\t4250\n\
            PPid:\t1\nTracerPid:\t0\nUid:\t0\t0\t0\t0\nGid:\t0\t0\t0\t0\nFDSize:\t64\n\
            Groups:\t\nThreads:\t4\nSigQ:\t0/3067\nSigPnd:\t0000000000000000\n\
            ShdPnd:\t0000000000000000\nSigBlk:\t0000000000000000\nSigIgn:\t0000000000000000\n\
            SigCgt:\t0000000000000000\nCapInh:\t0000000000000000\nCapPrm:\t0000000000000000\n\
            CapEff:\t0000000000000000\nCapBnd:\t0000000000000000\nCpus_allowed:\t1\n\
            Cpus_allowed_list:\t0\nvoluntary_ctxt_switches:\t150\nnonvoluntary_ctxt_switches:\t545\n";
        std::fs::write(task.join("status"), status).unwrap();
        assert_eq!(wakeups(root.path(), 4242, 4250), Some(150));
        assert_eq!(wakeups(root.path(), 4242, 4251), None, "no such thread");
        assert_eq!(wakeups(root.path(), 4243, 4250), None, "no such process");
    }

    #[test]
    fn a_thread_that_blocks_counts_wakeups() {
        let me = std::process::id();
        let (tx, rx) = std::sync::mpsc::channel::<u32>();
        let (ack, acked) = std::sync::mpsc::channel::<u32>();
        let handle = std::thread::spawn(move || {
            ack.send(rustix::thread::gettid().as_raw_nonzero().get() as u32)
                .unwrap();
            while let Ok(n) = rx.recv() {
                ack.send(n).unwrap();
            }
        });
        let tid = acked.recv().unwrap();
        let before = wakeups(Path::new("/proc"), me, tid).expect("own thread");
        for n in 0..50 {
            tx.send(n).unwrap();
            assert_eq!(acked.recv().unwrap(), n);
        }
        let after = wakeups(Path::new("/proc"), me, tid).expect("own thread");
        drop(tx);
        handle.join().unwrap();
        // Each round it waits on an empty channel at least once it has
        // sent its ack before the next message exists: it blocked.
        assert!(after > before, "{before} -> {after}");
    }
}
