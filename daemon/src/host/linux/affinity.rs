//! CPU affinity of threads, through the kernel (sched_setaffinity needs
//! CAP_SYS_NICE for other users' threads).

use nix::sched::{CpuSet, sched_getaffinity, sched_setaffinity};
use nix::unistd::Pid;

pub fn set(tid: u32, cpus: &[u32]) -> nix::Result<()> {
    let mut set = CpuSet::new();
    for &c in cpus {
        set.set(c as usize)?;
    }
    sched_setaffinity(Pid::from_raw(tid as i32), &set)
}

pub fn get(tid: u32) -> nix::Result<Vec<u32>> {
    let set = sched_getaffinity(Pid::from_raw(tid as i32))?;
    Ok((0..CpuSet::count())
        .filter(|&c| set.is_set(c).unwrap_or(false))
        .map(|c| c as u32)
        .collect())
}
