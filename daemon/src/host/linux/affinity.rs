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

/// Sends `signal` to one thread of another process (tgkill), to make a vCPU
/// thread leave KVM_RUN and enter the guest again on its new hart: KVM
/// frees its old VS-file only then, and an idle vCPU may not run for long.
/// QEMU kicks its own vCPU threads with SIG_IPI (SIGUSR1); a VMM without a
/// handler for the signal would die of it, so the caller must know the VMM.
pub fn kick(pid: u32, tid: u32, signal: nix::sys::signal::Signal) -> nix::Result<()> {
    #[allow(unsafe_code)]
    // SAFETY: tgkill takes three integers and touches no memory of ours.
    let r = unsafe {
        nix::libc::syscall(
            nix::libc::SYS_tgkill,
            nix::libc::c_long::from(pid as i32),
            nix::libc::c_long::from(tid as i32),
            nix::libc::c_long::from(signal as i32),
        )
    };
    nix::errno::Errno::result(r).map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::sys::signal::Signal;

    #[test]
    fn kicks_reach_a_thread_of_a_process() {
        // SIGCHLD is ignored by default: a harmless kick of ourselves.
        let me = std::process::id();
        let tid = nix::unistd::gettid().as_raw() as u32;
        kick(me, tid, Signal::SIGCHLD).unwrap();
        // A thread id that is not in the process is refused (ESRCH).
        assert_eq!(
            kick(me, u32::MAX >> 2, Signal::SIGCHLD),
            Err(nix::errno::Errno::ESRCH)
        );
    }
}
