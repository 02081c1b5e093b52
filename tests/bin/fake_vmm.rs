//! A stand-in VMM for tests: threads named like QEMU's vCPU threads
//! (`CPU <n>/KVM`) that idle until the process is killed or a minute has
//! passed. Usage: fake-vmm <vcpus> [pattern with {n}]
use std::time::{Duration, Instant};

const LIFETIME: Duration = Duration::from_secs(60);

fn main() {
    let mut args = std::env::args().skip(1);
    let vcpus: u32 = args.next().and_then(|a| a.parse().ok()).unwrap_or(1);
    let pattern = args.next().unwrap_or_else(|| "CPU {n}/KVM".to_string());
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
