//! What durability costs an acknowledged change, in the engine itself (no
//! gRPC): the same places and releases with the state kept (each returns
//! only after its log record was appended and `fdatasync`ed, in a temp dir
//! on this machine's disk) and with no state at all, measured in one run.
//! The simulated host keeps its machine in its own file, as the daemon's
//! does, in both. Given for a small and a large resident state, with the
//! snapshot and log sizes.
//! Run: cargo bench -p ifad --bench durable

mod figures;

use std::path::Path;
use std::time::{Duration, Instant};

use ifad::core::request::PlaceSpec;
use ifad::core::{Class, VmId};
use ifad::engine::{Engine, EngineConfig};
use ifad::host::sim::{SimHost, SimSpec};
use ifad::metrics::Metrics;
use ifad::state::StateDir;

use figures::percentiles;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Durability {
    Kept,
    None,
}

fn spec(name: &str, vcpus: u32, class: Class) -> PlaceSpec {
    PlaceSpec::parse(name, vcpus, Some(class), &[]).expect("valid")
}

fn p50(mut samples: Vec<Duration>) -> Duration {
    samples.sort_unstable();
    samples[samples.len() / 2]
}

fn engine(dir: &Path, harts: u32, files: u8, durability: Durability) -> Engine {
    let sim = SimSpec {
        harts,
        files,
        numa: 1,
    };
    let host = SimHost::from_spec(&sim)
        .with_machine_file(&dir.join("machine"))
        .expect("machine file");
    let mut engine = Engine::new(
        Box::new(host),
        Metrics::new("bench", "simulated"),
        EngineConfig::default(),
    );
    if durability == Durability::Kept {
        let store = StateDir::open(&dir.join("state")).expect("state dir");
        engine.persist_to(store, 0).expect("first write");
    }
    engine
}

/// Bytes of the files in `dir` whose names start with `prefix`.
fn bytes(dir: &Path, prefix: &str) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter(|e| e.file_name().to_string_lossy().starts_with(prefix))
                .map(|e| e.metadata().map_or(0, |m| m.len()))
                .sum()
        })
        .unwrap_or(0)
}

/// Place and release round trips of a 4-vCPU guaranteed VM.
fn run(
    harts: u32,
    files: u8,
    resident_vms: u32,
    rounds: usize,
    durability: Durability,
) -> (Vec<Duration>, Vec<Duration>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut engine = engine(dir.path(), harts, files, durability);
    for i in 0..resident_vms {
        let class = [Class::Guaranteed, Class::Burstable, Class::BestEffort][i as usize % 3];
        engine
            .place(spec(&format!("r{i}"), 4, class), 0)
            .expect("resident VM fits");
    }
    let (mut place, mut release) = (Vec::new(), Vec::new());
    let id = VmId::parse("probe").expect("valid");
    for round in 0..rounds {
        let t = Instant::now();
        engine
            .place(spec("probe", 4, Class::Guaranteed), round as u64)
            .expect("fits");
        place.push(t.elapsed());
        let t = Instant::now();
        engine.release(&id, round as u64).expect("placed");
        release.push(t.elapsed());
    }
    if durability == Durability::Kept {
        let state = dir.path().join("state");
        println!(
            "  snapshot {} KiB, log {} KiB",
            bytes(&state, "state") / 1024,
            bytes(&state, "log.") / 1024
        );
    }
    (place, release)
}

fn compare(harts: u32, files: u8, resident_vms: u32, rounds: usize) {
    println!(
        "{harts} harts x {files} VS-files, {} resident vCPUs:",
        resident_vms * 4
    );
    let (place, release) = run(harts, files, resident_vms, rounds, Durability::Kept);
    let (bare_place, bare_release) = run(harts, files, resident_vms, rounds, Durability::None);
    println!(
        "  place 4-vCPU, durable      {}",
        percentiles(place.clone())
    );
    println!(
        "  place 4-vCPU, no state     {}",
        percentiles(bare_place.clone())
    );
    println!(
        "  release 4-vCPU, durable    {}",
        percentiles(release.clone())
    );
    println!(
        "  release 4-vCPU, no state   {}",
        percentiles(bare_release.clone())
    );
    let added = |d: Duration, b: Duration| d.as_secs_f64() * 1e6 - b.as_secs_f64() * 1e6;
    println!(
        "  durability adds (p50): place {:.0} us, release {:.0} us",
        added(p50(place), p50(bare_place)),
        added(p50(release), p50(bare_release))
    );
}

fn main() {
    compare(16, 7, 20, 500);
    compare(1024, 63, 2_000, 100);
}
