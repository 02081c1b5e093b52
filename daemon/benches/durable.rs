//! Latency of acknowledged changes with durability on: each place and
//! release returns only after the state file was replaced and fsynced
//! (write, fsync, rename, fsync the directory) in a temp dir on this
//! machine's disk. The whole state is rewritten each time, so the figures
//! are given for a small and a large resident state.
//! Run: cargo bench -p ifad --bench durable

mod figures;

use std::time::Instant;

use ifad::core::request::PlaceSpec;
use ifad::core::{Class, VmId};
use ifad::engine::{Engine, EngineConfig};
use ifad::host::sim::{SimHost, SimSpec};
use ifad::metrics::Metrics;
use ifad::state::StateDir;

use figures::percentiles;

fn spec(name: &str, vcpus: u32, class: Class) -> PlaceSpec {
    PlaceSpec::parse(name, vcpus, Some(class), &[]).expect("valid")
}

fn run(harts: u32, files: u8, resident_vms: u32, rounds: usize) {
    let dir = tempfile::tempdir().expect("tempdir");
    let sim = SimSpec {
        harts,
        files,
        numa: 1,
    };
    let mut engine = Engine::new(
        Box::new(SimHost::from_spec(&sim)),
        Metrics::new("bench", "simulated"),
        EngineConfig::default(),
    );
    let store = StateDir::open(dir.path()).expect("state dir");
    engine.persist_to(store, 0).expect("first write");
    for i in 0..resident_vms {
        let class = [Class::Guaranteed, Class::Burstable, Class::BestEffort][i as usize % 3];
        engine
            .place(spec(&format!("r{i}"), 4, class), 0)
            .expect("resident VM fits");
    }
    let bytes = std::fs::metadata(dir.path().join("state")).map_or(0, |m| m.len());
    println!(
        "{harts} harts x {files} VS-files, {} resident vCPUs, state file {} KiB:",
        resident_vms * 4,
        bytes / 1024
    );
    let (mut place, mut release) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        let id = VmId::parse("probe").expect("valid");
        let t = Instant::now();
        engine
            .place(spec("probe", 4, Class::Guaranteed), round as u64)
            .expect("fits");
        place.push(t.elapsed());
        let t = Instant::now();
        engine.release(&id, round as u64).expect("placed");
        release.push(t.elapsed());
    }
    println!(
        "  place 4-vCPU guaranteed, durable   {}",
        percentiles(place)
    );
    println!(
        "  release 4-vCPU, durable            {}",
        percentiles(release)
    );
}

fn main() {
    run(16, 7, 20, 500);
    run(1024, 63, 2_000, 200);
}
