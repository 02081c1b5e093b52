//! The API as a client sees it, against the real daemon (`ifad --simulate
//! --sim-machine memory` on a Unix socket, its state in a temp dir on this
//! machine's disk: what is measured is ifad, not the simulated kernel's own
//! file, which is measured apart), with the floors it is judged against
//! measured in the same run: an empty gRPC call (the health check) and a
//! 200-byte append with `fdatasync` on the same disk. Prints each figure and
//! its ratio to the target's floor.
//! Run: cargo bench -p ifad --bench api

// Shared by the benches: this one uses only the host and its residents.
#[allow(dead_code)]
mod common;
mod figures;

use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use ifa_api::v1;
use ifa_api::v1::allocator_client::AllocatorClient;
use ifa_e2e::Daemon;
use ifad::state::{Snapshot, StateDir};
use tonic::transport::Channel;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

use figures::percentiles;

const SMALL_HOST: &str = "harts=16,files=7";
/// The simulated machine in memory only (see the module doc).
const MACHINE_IN_MEMORY: [&str; 2] = ["--sim-machine", "memory"];
const ROUNDS: usize = 2_000;
/// Place round trips on the large host (each costs what the state does).
const LARGE_ROUNDS: usize = 20;
const CLIENTS: usize = 8;
const THROUGHPUT_FOR: Duration = Duration::from_secs(3);

fn p50(mut samples: Vec<Duration>) -> Duration {
    samples.sort_unstable();
    samples[samples.len() / 2]
}

/// 200-byte appends, each made durable with `fdatasync`, in `dir`.
fn append_floor(dir: &Path) -> Vec<Duration> {
    let mut f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("floor"))
        .expect("a file in the temp dir");
    let record = [0x5au8; 200];
    (0..ROUNDS)
        .map(|_| {
            let t = Instant::now();
            f.write_all(&record).expect("append");
            f.sync_data().expect("fdatasync");
            t.elapsed()
        })
        .collect()
}

async fn empty_calls(channel: Channel) -> Vec<Duration> {
    let mut health = HealthClient::new(channel);
    let mut out = Vec::with_capacity(ROUNDS);
    for _ in 0..ROUNDS {
        let t = Instant::now();
        health
            .check(HealthCheckRequest::default())
            .await
            .expect("health answers");
        out.push(t.elapsed());
    }
    out
}

fn place(vm: &str) -> v1::PlaceRequest {
    v1::PlaceRequest {
        vm: vm.into(),
        vcpus: 4,
        class: v1::Class::Guaranteed.into(),
        ..Default::default()
    }
}

/// Place round trips (each followed by a release, not timed).
async fn places(c: &mut AllocatorClient<Channel>, vm: &str, rounds: usize) -> Vec<Duration> {
    let mut out = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let t = Instant::now();
        c.place(place(vm)).await.expect("fits");
        out.push(t.elapsed());
        c.release(v1::ReleaseRequest { vm: vm.into() })
            .await
            .expect("placed");
    }
    out
}

/// Place+release pairs per second with `CLIENTS` clients, each its own VM.
async fn pairs_per_second(socket: &Path) -> f64 {
    let deadline = Instant::now() + THROUGHPUT_FOR;
    let mut tasks = Vec::new();
    for i in 0..CLIENTS {
        let mut c = ifa_api::client::connect(socket).await.expect("connects");
        tasks.push(tokio::spawn(async move {
            let vm = format!("load{i}");
            let mut pairs = 0u64;
            while Instant::now() < deadline {
                c.place(place(&vm)).await.expect("fits");
                c.release(v1::ReleaseRequest { vm: vm.clone() })
                    .await
                    .expect("placed");
                pairs += 1;
            }
            pairs
        }));
    }
    let started = Instant::now();
    let mut pairs = 0;
    for t in tasks {
        pairs += t.await.expect("client task");
    }
    pairs as f64 / started.elapsed().as_secs_f64()
}

/// A state dir holding the benchmark host's 50,000 resident vCPUs, as a
/// daemon on the simulated host would have left it.
fn large_state(dir: &Path) {
    let t = common::topology();
    let ledger = common::resident(&t);
    let snapshot = Snapshot {
        host_kind: "simulated".into(),
        ledger: ledger.save(),
        ..Snapshot::default()
    };
    let mut store = StateDir::open(dir).expect("state dir");
    store.write_snapshot(0, snapshot).expect("written");
}

/// Where a change's time goes inside the daemon, as its metrics say:
/// the commits (record + fdatasync) against the whole round trip.
fn print_breakdown(d: &Daemon) {
    let Some(addr) = d.metrics else { return };
    let body = ifa_e2e::http_get(addr, "/metrics");
    let mean_us = |name: &str| {
        let sum = ifa_e2e::sample(&body, &format!("{name}_sum"));
        let count = ifa_e2e::sample(&body, &format!("{name}_count"));
        1e6 * sum / count.max(1.0)
    };
    println!(
        "  inside the daemon: a commit {:.0} us on average",
        mean_us("ifad_checkpoint_write_seconds"),
    );
}

fn ratio(name: &str, value: Duration, floor: Duration, target: f64) {
    let r = value.as_secs_f64() / floor.as_secs_f64();
    let verdict = if r <= target { "meets" } else { "MISSES" };
    println!("  {name:<44} {value:>9.2?}  {r:>6.2}x  (target <= {target}x: {verdict})");
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let scratch = tempfile::tempdir().expect("tempdir");
    let floor_samples = append_floor(scratch.path());
    println!(
        "200-byte append + fdatasync     {}",
        percentiles(floor_samples.clone())
    );
    let append = p50(floor_samples);

    let mut with_file = Daemon::simulate(SMALL_HOST);
    let mut c = ifa_api::client::connect(&with_file.socket)
        .await
        .expect("connects");
    let file_samples = places(&mut c, "probe", ROUNDS / 4).await;
    println!(
        "place, 4 vCPUs, {SMALL_HOST}, machine file  {}",
        percentiles(file_samples)
    );
    with_file.stop();

    let small_spec = format!("--simulate={SMALL_HOST}");
    let mut small = Daemon::start(&[&small_spec, MACHINE_IN_MEMORY[0], MACHINE_IN_MEMORY[1]]);
    let channel = ifa_api::client::connect_channel(&small.socket)
        .await
        .expect("connects");
    let empty_samples = empty_calls(channel.clone()).await;
    println!(
        "empty gRPC call (health check)  {}",
        percentiles(empty_samples.clone())
    );
    let empty = p50(empty_samples);
    let mut c = AllocatorClient::new(channel);
    let place_samples = places(&mut c, "probe", ROUNDS).await;
    println!(
        "place, 4 vCPUs, {SMALL_HOST}  {}",
        percentiles(place_samples.clone())
    );
    let small_place = p50(place_samples);
    print_breakdown(&small);
    let pairs = pairs_per_second(&small.socket).await;
    small.stop();

    let spec = format!(
        "--simulate=harts={},files={},numa=2",
        common::HARTS,
        common::FILES
    );
    let mut empty_host = Daemon::start(&[&spec, MACHINE_IN_MEMORY[0], MACHINE_IN_MEMORY[1]]);
    let mut c = ifa_api::client::connect(&empty_host.socket)
        .await
        .expect("connects");
    let empty_host_samples = places(&mut c, "probe", LARGE_ROUNDS).await;
    println!(
        "place, 4 vCPUs, empty {} x {} host  {}",
        common::HARTS,
        common::FILES,
        percentiles(empty_host_samples.clone())
    );
    let empty_host_place = p50(empty_host_samples);
    empty_host.stop();

    let large_dir = tempfile::tempdir().expect("tempdir");
    let state = large_dir.path().join("state");
    large_state(&state);
    let started = Instant::now();
    let mut large = Daemon::start(&[
        &spec,
        MACHINE_IN_MEMORY[0],
        MACHINE_IN_MEMORY[1],
        "--state-dir",
        state.to_str().expect("utf-8"),
    ]);
    let startup = started.elapsed();
    let mut c = ifa_api::client::connect(&large.socket)
        .await
        .expect("connects");
    let large_samples = places(&mut c, "probe", LARGE_ROUNDS).await;
    println!(
        "place, 4 vCPUs, {} resident vCPUs  {}",
        common::RESIDENT_VCPUS,
        percentiles(large_samples.clone())
    );
    let large_place = p50(large_samples);
    large.stop();

    println!("\nratios (p50, measured in this run):");
    ratio(
        "place / (empty call + append)",
        small_place,
        empty + append,
        1.3,
    );
    ratio(
        "place at 50,000 resident vCPUs / empty host",
        large_place,
        empty_host_place,
        1.2,
    );
    let verdict = if pairs >= 10_000.0 { "meets" } else { "MISSES" };
    println!(
        "  place+release pairs/s, {CLIENTS} clients           {pairs:>9.0}  (target >= 10000: {verdict})"
    );
    let verdict = if startup < Duration::from_secs(1) {
        "meets"
    } else {
        "MISSES"
    };
    println!(
        "  start-up with 50,000 resident vCPUs         {startup:>9.2?}  (until ready; target < 1 s: {verdict})"
    );
}
