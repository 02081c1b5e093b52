//! Figures at scale, printed: latency percentiles of placing and releasing
//! a 16-vCPU VM, a full re-plan, and ledger memory per resident vCPU.
//! Run: cargo bench -p ifad --bench scale

mod common;
mod figures;

use figures::percentiles;

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::Instant;

use ifad::core::Class;
use ifad::core::policy;

/// Counts live heap bytes, to measure what the ledger keeps.
struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

fn main() {
    let t = common::topology();
    let before = LIVE.load(Ordering::Relaxed);
    let mut ledger = common::resident(&t);
    let bytes = LIVE.load(Ordering::Relaxed) - before;
    let vcpus = ledger.vms().map(|vm| vm.vcpus.len()).sum::<usize>();
    println!(
        "host: {} harts x {} VS-files, {} resident vCPUs in {} VMs, {} VS-files used",
        common::HARTS,
        common::FILES,
        vcpus,
        ledger.vm_count(),
        ledger.vsfiles_used()
    );
    println!(
        "ledger memory: {} bytes, {:.1} bytes per resident vCPU (target < 200)",
        bytes,
        bytes as f64 / vcpus as f64
    );

    for class in [Class::Guaranteed, Class::Burstable, Class::BestEffort] {
        let rounds = 2000;
        let (mut place, mut release) = (Vec::with_capacity(rounds), Vec::with_capacity(rounds));
        let mut advise = Vec::with_capacity(rounds);
        for i in 0..rounds {
            let name = format!("bench{i}");
            let spec = common::spec(&name, class);
            let start = Instant::now();
            black_box(policy::plan_place(&t, &ledger, &spec).expect("fits"));
            advise.push(start.elapsed());
            let start = Instant::now();
            common::place(&t, &mut ledger, &spec, i as u64);
            place.push(start.elapsed());
            let id = common::id(&name);
            let start = Instant::now();
            black_box(ledger.remove(&id).expect("placed"));
            black_box(policy::plan_promotions(&t, &ledger, i as u64, 30_000));
            release.push(start.elapsed());
        }
        println!(
            "advise  16-vCPU {:<11} {}",
            class.as_str(),
            percentiles(advise)
        );
        println!(
            "place   16-vCPU {:<11} {}",
            class.as_str(),
            percentiles(place)
        );
        println!(
            "release 16-vCPU {:<11} {}",
            class.as_str(),
            percentiles(release)
        );
    }

    let mut replans = Vec::new();
    for _ in 0..10 {
        let start = Instant::now();
        let (fresh, unplaced) = policy::replan_all(&t, &ledger);
        replans.push(start.elapsed());
        assert!(unplaced.is_empty());
        black_box(fresh);
    }
    println!(
        "full re-plan of {vcpus} vCPUs   {} (target < 50 ms)",
        percentiles(replans)
    );
}
