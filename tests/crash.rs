//! Crash test: a client drives random place / release / migrate through
//! `ifactl` while the daemon is killed with SIGKILL at random moments. After
//! each restart on the same state dir, every acknowledged change is there,
//! the change in flight at the kill is either whole or absent, and no hart
//! holds more than its VS-files.
//!
//! `IFAD_CRASH_KILLS` (default 50) sets the number of kills,
//! `IFAD_CRASH_SEED` the seed of the random choices; a failure names both.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use ifa_e2e::{Ctl, Daemon};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::Value;

const SPEC: &str = "harts=4,files=3";
const HARTS: u64 = 4;
const POOL: usize = 6;
const CLASSES: [&str; 3] = ["guaranteed", "burstable", "best-effort"];
/// The killer waits up to this long after the client starts; one round in
/// four, up to the longer delay, so that changes pile up between kills.
const MAX_KILL_DELAY_US: u64 = 40_000;
const LONG_KILL_DELAY_US: u64 = 150_000;
/// Bounds the operations of one round, should the killer be slow.
const MAX_OPS_PER_ROUND: usize = 200;
/// Operations kept for a failure report.
const HISTORY: usize = 40;

/// xorshift64*: small, seeded, good enough to pick operations.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn percent(&mut self, p: u64) -> bool {
        self.below(100) < p
    }
}

/// What the test believes of one VM: its class and, per vCPU, its hart
/// (compared only for guaranteed VMs, whose vCPUs never move on their own).
#[derive(Clone, Debug, PartialEq)]
struct Vm {
    class: String,
    harts: Vec<u64>,
}

type Model = BTreeMap<String, Vm>;

#[derive(Clone, Debug)]
enum Op {
    Place {
        vm: String,
        vcpus: u64,
        class: &'static str,
    },
    Release {
        vm: String,
    },
    Migrate {
        vm: String,
        vcpu: u64,
        hart: u64,
    },
}

impl Op {
    fn command(&self) -> String {
        match self {
            Op::Place { vm, vcpus, class } => {
                format!("-o json place --vm {vm} --vcpus {vcpus} --class {class}")
            }
            Op::Release { vm } => format!("-o json release --vm {vm}"),
            Op::Migrate { vm, vcpu, hart } => {
                format!("-o json migrate --vm {vm} --vcpu {vcpu} --hart {hart}")
            }
        }
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = self.command();
        f.write_str(c.strip_prefix("-o json ").unwrap_or(&c))
    }
}

fn env_u64(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(v) => v
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v}: not a number")),
        Err(_) => default,
    }
}

fn start(state: &Path) -> Daemon {
    Daemon::start(&[
        &format!("--simulate={SPEC}"),
        "--state-dir",
        state.to_str().unwrap(),
    ])
}

/// A random operation, mostly one that can succeed given the model.
fn pick(rng: &mut Rng, model: &Model) -> Op {
    let vm = format!("v{}", rng.below(POOL as u64));
    let place = |rng: &mut Rng, vm: String| Op::Place {
        vm,
        vcpus: 1 + rng.below(3),
        class: match rng.below(4) {
            0 | 1 => CLASSES[0],
            2 => CLASSES[1],
            _ => CLASSES[2],
        },
    };
    match model.get(&vm) {
        None if rng.percent(85) => place(rng, vm),
        // Refusals: an unknown VM.
        None if rng.percent(50) => Op::Release { vm },
        None => Op::Migrate {
            vm,
            vcpu: 0,
            hart: rng.below(HARTS),
        },
        // A refusal: the id is taken.
        Some(_) if rng.percent(8) => place(rng, vm),
        Some(_) if rng.percent(45) => Op::Release { vm },
        Some(v) => Op::Migrate {
            vm,
            vcpu: rng.below(v.harts.len() as u64),
            hart: rng.below(HARTS),
        },
    }
}

/// Applies an acknowledged operation, given ifactl's JSON reply.
fn apply(model: &mut Model, op: &Op, reply: &Value) {
    match op {
        Op::Place { vm, vcpus, class } => {
            let got = vm_of(reply).unwrap_or_else(|e| panic!("{op}: {e}"));
            assert_eq!(got.class, *class, "{op}: {reply}");
            assert_eq!(got.harts.len() as u64, *vcpus, "{op}: {reply}");
            assert!(model.insert(vm.clone(), got).is_none(), "{op} acked twice");
        }
        Op::Release { vm } => {
            assert!(model.remove(vm).is_some(), "{op}: acked but not placed");
        }
        Op::Migrate { vm, vcpu, hart } => {
            assert_eq!(
                reply["after"]["hart"].as_u64(),
                Some(*hart),
                "{op}: {reply}"
            );
            let v = model.get_mut(vm).expect("migrated VM is placed");
            v.harts[*vcpu as usize] = *hart;
        }
    }
}

/// A VM as `ifactl -o json vm` shows it; checks it is whole.
fn vm_of(vm: &Value) -> Result<Vm, String> {
    let class = vm["class"].as_str().unwrap_or_default().to_string();
    if !CLASSES.contains(&class.as_str()) {
        return Err(format!("class {class:?}: {vm}"));
    }
    let vcpus = vm["vcpus"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    if vcpus.is_empty() {
        return Err(format!("a VM without vCPUs: {vm}"));
    }
    let mut harts = Vec::new();
    for (i, v) in vcpus.iter().enumerate() {
        let hart = v["hart"].as_u64().unwrap_or(u64::MAX);
        let backing = v["backing"].as_str().unwrap_or_default();
        let fits = match class.as_str() {
            "guaranteed" => backing == "vsfile",
            "best-effort" => backing == "mrif",
            _ => backing == "vsfile" || backing == "mrif",
        };
        if v["vcpu"].as_u64() != Some(i as u64) || hart >= HARTS || !fits {
            return Err(format!("vCPU {i} of a {class} VM: {v}"));
        }
        harts.push(hart);
    }
    Ok(Vm { class, harts })
}

/// Whether `seen` is the VM the model expects: same class and vCPU count,
/// and for guaranteed VMs the same harts.
fn same(expected: &Vm, seen: &Vm) -> bool {
    expected.class == seen.class
        && expected.harts.len() == seen.harts.len()
        && (expected.class != "guaranteed" || expected.harts == seen.harts)
}

/// Checks the restarted daemon against the model and the operation that was
/// in flight at the kill; returns the model updated to what it shows.
fn check(d: &Daemon, model: &Model, unknown: Option<&Op>) -> Result<Model, String> {
    let vms = d.json("vms");
    let mut seen = Model::new();
    for vm in vms.as_array().expect("vms is an array") {
        let id = vm["vm"].as_str().expect("vm id").to_string();
        let v = vm_of(vm)?;
        // `vm X` agrees with `vms`.
        let one = vm_of(&d.json(&format!("vm {id}")))?;
        if one != v {
            return Err(format!("`vm {id}` shows {one:?}, `vms` shows {v:?}"));
        }
        if seen.insert(id.clone(), v).is_some() {
            return Err(format!("{id} listed twice"));
        }
    }

    // What the model allows for the VM touched by the unknown operation.
    let mut expected = model.clone();
    if let Some(op) = unknown {
        match op {
            Op::Place { vm, vcpus, class } if !model.contains_key(vm) => match seen.get(vm) {
                None => {}
                Some(s) if s.class == *class && s.harts.len() as u64 == *vcpus => {
                    expected.insert(vm.clone(), s.clone());
                }
                Some(s) => {
                    return Err(format!("in flight `{op}` half-applied: {vm} is {s:?}"));
                }
            },
            Op::Release { vm } if model.contains_key(vm) && !seen.contains_key(vm) => {
                expected.remove(vm);
            }
            Op::Migrate { vm, vcpu, hart } if model.contains_key(vm) => {
                let old = &model[vm];
                if let Some(s) = seen.get(vm) {
                    let mut moved = old.clone();
                    moved.harts[*vcpu as usize] = *hart;
                    if same(&moved, s) {
                        expected.insert(vm.clone(), moved);
                    }
                }
            }
            // Refused whatever happened: nothing may change.
            _ => {}
        }
    }

    for (id, want) in &expected {
        match seen.get(id) {
            None => return Err(format!("{id} lost: expected {want:?}")),
            Some(s) if !same(want, s) => {
                return Err(format!("{id}: expected {want:?}, daemon shows {s:?}"));
            }
            Some(_) => {}
        }
    }
    if let Some(extra) = seen.keys().find(|id| !expected.contains_key(*id)) {
        return Err(format!(
            "{extra} present but never acknowledged: {:?}",
            seen[extra]
        ));
    }

    // No hart over its VS-files; no VS-file held by two vCPUs.
    let harts = d.json("harts");
    let harts = harts.as_array().expect("harts is an array");
    if harts.len() as u64 != HARTS {
        return Err(format!("{} harts", harts.len()));
    }
    let mut lines = BTreeSet::new();
    let mut backed = [0u64; HARTS as usize];
    for vm in vms.as_array().unwrap() {
        for v in vm["vcpus"].as_array().unwrap() {
            if v["backing"] == "vsfile" {
                let hart = v["hart"].as_u64().unwrap();
                backed[hart as usize] += 1;
                if !lines.insert((hart, v["vsfile_line"].as_u64())) {
                    return Err(format!("VS-file {hart}/{} held twice", v["vsfile_line"]));
                }
            }
        }
    }
    for h in harts {
        let hart = h["hart"].as_u64().expect("hart");
        let vsfiles = h["vsfiles"].as_u64().expect("vsfiles");
        let used = h["used"].as_u64().expect("used");
        if used > vsfiles || backed[hart as usize] > vsfiles {
            return Err(format!(
                "hart {hart} over-committed: {used} used, {} vCPUs on VS-files, {vsfiles} VS-files",
                backed[hart as usize]
            ));
        }
    }
    Ok(seen)
}

#[test]
fn acknowledged_changes_survive_sigkill_at_random_moments() {
    let kills = env_u64("IFAD_CRASH_KILLS", 50);
    let seed = env_u64("IFAD_CRASH_SEED", 0x1fad_c0de);
    let mut rng = Rng::new(seed);
    let state = tempfile::tempdir().unwrap();
    let mut model = Model::new();
    let mut history: Vec<String> = Vec::new();
    let (mut acked, mut refused, mut in_flight) = (0u64, 0u64, 0u64);
    let began = Instant::now();

    let fail = |what: &str, round: u64, history: &[String], log: &str| -> ! {
        let from = history.len().saturating_sub(HISTORY);
        panic!(
            "IFAD_CRASH_SEED={seed} IFAD_CRASH_KILLS={kills}, after kill {round}: {what}\n\
             last operations (oldest first):\n  {}\nrestarted daemon's log:\n{log}",
            history[from..].join("\n  ")
        )
    };

    let mut d = start(state.path());
    for round in 1..=kills {
        let killed = Arc::new(AtomicBool::new(false));
        let longest = if rng.percent(25) {
            LONG_KILL_DELAY_US
        } else {
            MAX_KILL_DELAY_US
        };
        let delay = Duration::from_micros(rng.below(longest + 1));
        let pid = Pid::from_raw(d.pid() as i32);
        let killer = {
            let killed = Arc::clone(&killed);
            std::thread::spawn(move || {
                std::thread::sleep(delay);
                // Raised before the signal, so that any failure the kill
                // may have caused is seen with it raised.
                killed.store(true, Ordering::SeqCst);
                // The child is not reaped before the join below: the pid
                // is still ours.
                kill(pid, Signal::SIGKILL).expect("SIGKILL ifad");
            })
        };

        let mut unknown = None;
        for _ in 0..MAX_OPS_PER_ROUND {
            let op = pick(&mut rng, &model);
            let out: Ctl = d.ctl(&op.command());
            // A failure seen before the killer raised the flag came from a
            // live daemon: a refusal. After it, it may be the kill's.
            let after_kill = killed.load(Ordering::SeqCst);
            if out.code == 0 {
                apply(&mut model, &op, &out.json());
                acked += 1;
                history.push(format!("[{round}] ok       {op}"));
            } else if after_kill {
                in_flight += 1;
                history.push(format!(
                    "[{round}] IN FLIGHT {op}: exit {}: {}",
                    out.code,
                    out.stderr.trim_end()
                ));
                unknown = Some(op);
            } else {
                assert!(
                    out.code == 1 || out.code == 2,
                    "seed {seed}: `{op}` exit {}: {out:?}",
                    out.code
                );
                refused += 1;
                history.push(format!(
                    "[{round}] refused  {op}: {}",
                    out.stderr.trim_end()
                ));
            }
            if after_kill {
                break;
            }
        }
        killer.join().expect("killer thread");
        history.push(format!("[{round}] -- SIGKILL after {delay:?}"));
        drop(d); // reaps the killed daemon; its lock goes with it

        d = start(state.path());
        match check(&d, &model, unknown.as_ref()) {
            Ok(now) => model = now,
            Err(what) => fail(&what, round, &history, &d.log()),
        }
    }

    // A clean stop keeps it all as well.
    assert!(d.stop().is_some_and(|s| s.success()), "{}", d.log());
    let d = start(state.path());
    if let Err(what) = check(&d, &model, None) {
        fail(&what, kills, &history, &d.log());
    }

    eprintln!(
        "crash test: seed {seed}, {kills} kills, {acked} acknowledged, {refused} refused, \
         {in_flight} in flight at a kill, {} VMs at the end, {:.1?}",
        model.len(),
        began.elapsed()
    );
    assert!(acked > 0, "no operation was acknowledged");
    assert!(in_flight > 0, "no kill landed during an operation");
}
