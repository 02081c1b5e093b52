//! A stand-in VMM for tests: threads named like QEMU's vCPU threads
//! (`CPU <n>/KVM`) that idle until the process is killed or a minute has
//! passed. Usage: fake-vmm <vcpus> [pattern with {n}]
//!
//! With `FAKE_VMM_SIGNALS=1` each vCPU thread instead waits for SIGUSR1
//! and SIGUSR2 sent to it (blocked everywhere, taken with sigwait, so no
//! handler runs) and prints `SIGUSR1 <n>` for each one it receives: the
//! record of which threads were kicked, in the order each thread got them.
use std::time::{Duration, Instant};

use nix::sys::signal::{SigSet, Signal};

const LIFETIME: Duration = Duration::from_secs(60);

fn main() {
    let mut args = std::env::args().skip(1);
    let vcpus: u32 = args.next().and_then(|a| a.parse().ok()).unwrap_or(1);
    let pattern = args.next().unwrap_or_else(|| "CPU {n}/KVM".to_string());
    let signals = std::env::var_os("FAKE_VMM_SIGNALS").is_some_and(|v| v == "1");
    let mut set = SigSet::empty();
    set.add(Signal::SIGUSR1);
    set.add(Signal::SIGUSR2);
    if signals {
        // Before any thread starts: every thread inherits the mask.
        set.thread_block().expect("block SIGUSR1 and SIGUSR2");
    }
    let start = Instant::now();
    // A thread's name is set when it starts running: say ready only after
    // every vCPU thread has.
    let running = std::sync::Arc::new(std::sync::Barrier::new(vcpus as usize + 1));
    let threads: Vec<_> = (0..vcpus)
        .map(|n| {
            let running = running.clone();
            std::thread::Builder::new()
                .name(pattern.replace("{n}", &n.to_string()))
                .spawn(move || {
                    running.wait();
                    if signals {
                        // Returns only for a signal pending for this thread
                        // (or the process; the tests send to threads).
                        while let Ok(sig) = set.wait() {
                            println!("{} {n}", sig.as_str());
                        }
                    }
                    while start.elapsed() < LIFETIME {
                        std::thread::sleep(Duration::from_millis(50));
                    }
                })
                .expect("spawn vCPU thread")
        })
        .collect();
    running.wait();
    println!("ready");
    for t in threads {
        let _ = t.join();
    }
}
