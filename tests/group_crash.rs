//! Crash test for group commit: several clients at once place and release
//! VMs of their own through `ifactl` (so the engine commits their changes
//! in shared groups) while the daemon is killed with SIGKILL at random
//! moments, with a log small enough that compactions happen too. After
//! each restart on the same state dir: every change a client was told of is
//! there, a change in flight at the kill is whole or absent, and no VM is
//! there that no client placed. `IFAD_GROUP_CRASH_KILLS` (default 8) sets
//! the kills, `IFAD_GROUP_CRASH_SEED` the seed; a failure names both.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ifa_e2e::Daemon;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

const CLIENTS: usize = 6;
/// VMs each client cycles through.
const PER_CLIENT: usize = 4;
/// Bounds each client's operations in a round, should the kill be late.
const MAX_OPS: usize = 400;
const MAX_KILL_DELAY_MS: u64 = 400;

/// What the clients know of one VM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Known {
    Placed,
    Released,
    /// A place or release was sent and its answer lost to the kill.
    InFlight,
}

type Ledger = Arc<Mutex<BTreeMap<String, Known>>>;

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name).map_or(default, |v| {
        v.parse()
            .unwrap_or_else(|_| panic!("{name}={v}: not a number"))
    })
}

fn start(state: &Path) -> Daemon {
    Daemon::start(&[
        "--simulate=harts=4,files=3",
        "--state-dir",
        state.to_str().unwrap(),
        "--state-log-bytes",
        "4096",
    ])
}

/// One client: for each of its VMs in turn, places it if the daemon has
/// it released, releases it if placed; stops at the first answer lost.
fn client(d: &Daemon, id: usize, known: &Ledger, seed: u64) {
    let mut rng = seed | 1;
    for _ in 0..MAX_OPS {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let vm = format!("c{id}v{}", rng % PER_CLIENT as u64);
        let state = known
            .lock()
            .unwrap()
            .get(&vm)
            .copied()
            .unwrap_or(Known::Released);
        let (command, after) = match state {
            Known::Released => (
                format!("place --vm {vm} --vcpus 1 --class burstable"),
                Known::Placed,
            ),
            Known::Placed => (format!("release --vm {vm}"), Known::Released),
            Known::InFlight => unreachable!("a client stops at its first lost answer"),
        };
        known.lock().unwrap().insert(vm.clone(), Known::InFlight);
        let out = d.ctl(&command);
        if out.code != 0 {
            // The daemon died under it (any refusal would be a bug: each
            // client alone places and releases its own VMs).
            return;
        }
        known.lock().unwrap().insert(vm, after);
    }
}

/// What the restarted daemon shows, checked against what clients know;
/// returns the clients' knowledge settled by it.
fn check(d: &Daemon, known: &BTreeMap<String, Known>) -> Result<BTreeMap<String, Known>, String> {
    let vms = d.json("vms");
    let mut shown = BTreeMap::new();
    for vm in vms.as_array().ok_or("vms is not a list")? {
        let name = vm["vm"].as_str().ok_or("a VM without a name")?.to_string();
        let vcpus = vm["vcpus"].as_array().map_or(0, Vec::len);
        if vcpus != 1 {
            return Err(format!("{name}: {vcpus} vCPUs, half a placement"));
        }
        shown.insert(name, ());
    }
    let mut settled = BTreeMap::new();
    for name in shown.keys() {
        if !known.contains_key(name) {
            return Err(format!("{name} is there, and no client placed it"));
        }
    }
    for (name, k) in known {
        let there = shown.contains_key(name);
        match (k, there) {
            (Known::Placed, false) => return Err(format!("{name}: placement acknowledged, lost")),
            (Known::Released, true) => return Err(format!("{name}: release acknowledged, back")),
            _ => {}
        }
        settled.insert(
            name.clone(),
            if there {
                Known::Placed
            } else {
                Known::Released
            },
        );
    }
    Ok(settled)
}

#[test]
fn changes_committed_in_groups_survive_sigkill() {
    let kills = env_u64("IFAD_GROUP_CRASH_KILLS", 8);
    let seed = env_u64(
        "IFAD_GROUP_CRASH_SEED",
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64,
    );
    let state = tempfile::tempdir().unwrap();
    let mut known = BTreeMap::new();
    let mut acknowledged = 0usize;
    for round in 0..kills {
        let d = Arc::new(start(state.path()));
        let shared: Ledger = Arc::new(Mutex::new(known.clone()));
        let clients: Vec<_> = (0..CLIENTS)
            .map(|id| {
                let (d, shared) = (Arc::clone(&d), Arc::clone(&shared));
                let s = seed ^ ((round << 8) + id as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
                thread::spawn(move || client(&d, id, &shared, s))
            })
            .collect();
        let delay = 50 + (seed ^ round).wrapping_mul(0x2545_f491_4f6c_dd1d) % MAX_KILL_DELAY_MS;
        thread::sleep(Duration::from_millis(delay));
        kill(Pid::from_raw(d.pid() as i32), Signal::SIGKILL).unwrap();
        for c in clients {
            c.join().unwrap();
        }
        drop(d);
        known = shared.lock().unwrap().clone();
        acknowledged += known.values().filter(|k| **k != Known::InFlight).count();
        let d = start(state.path());
        known = check(&d, &known).unwrap_or_else(|e| {
            panic!(
                "IFAD_GROUP_CRASH_SEED={seed} IFAD_GROUP_CRASH_KILLS={kills}, after kill {round}: {e}\n{}",
                d.log()
            )
        });
    }
    assert!(
        acknowledged > 0,
        "no change was acknowledged before any kill"
    );
}
