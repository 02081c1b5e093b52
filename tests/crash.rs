//! Crash test: a client drives random place / release / migrate (of every
//! class) / drain / undrain / attach (always refused: the simulated host
//! cannot attach a VMM) through `ifactl` while the daemon is killed with
//! SIGKILL at random moments. The simulated machine keeps its
//! own file, written at each host effect, so a kill between a host effect
//! and its checkpoint leaves a machine that differs from the saved ledger.
//! After each restart on the same state dir: every acknowledged change is
//! there, the change in flight at the kill is either whole or absent, no
//! hart holds more than its VS-files, and the ledger agrees with the
//! simulated machine (the same VMs; each vCPU pinned to its hart; each
//! VS-file vCPU holding, on the machine, the line the daemon shows).
//!
//! The state log is compacted every few changes (`--state-log-bytes`), so
//! kills land in appends and in compactions alike.
//!
//! Every other kill follows one to three host effects (changes of the
//! machine file), to land between a host effect and its checkpoint. `IFAD_CRASH_KILLS` (default 40)
//! sets the least number of kills (more, up to three times as many, until
//! restarts had both a VM and a vCPU pin to reconcile with the machine),
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
/// The simulated machine's own file in the state dir.
const MACHINE: &str = "simulated-machine";
/// The killer waits up to this long after the client starts; one round in
/// four, up to the longer delay, so that changes pile up between kills.
const MAX_KILL_DELAY_US: u64 = 100_000;
const LONG_KILL_DELAY_US: u64 = 300_000;
/// How long a killer waiting for a host effect waits at most.
const EFFECT_WAIT: Duration = Duration::from_millis(300);
/// Bounds the operations of one round, should the killer be slow.
const MAX_OPS_PER_ROUND: usize = 200;
/// Operations kept for a failure report.
const HISTORY: usize = 40;
/// Bounds the reads of a restarted daemon and its machine that must agree.
const STABLE_READS: usize = 50;

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

/// One VM as the daemon shows it: its class and, per vCPU, its hart.
#[derive(Clone, Debug, PartialEq)]
struct Vm {
    class: String,
    harts: Vec<u64>,
}

/// What the daemon shows (and, between kills, what the test knows it has
/// made durable): the VMs and the drained harts.
#[derive(Clone, Debug, Default, PartialEq)]
struct State {
    vms: BTreeMap<String, Vm>,
    drained: BTreeSet<u64>,
}

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
    Drain {
        hart: u64,
    },
    Undrain {
        hart: u64,
    },
    Attach {
        vm: String,
        pid: u64,
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
            Op::Drain { hart } => format!("-o json drain --hart {hart}"),
            Op::Undrain { hart } => format!("-o json undrain --hart {hart}"),
            Op::Attach { vm, pid } => format!("-o json attach --vm {vm} --pid {pid}"),
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
        // No promotion waits out an anti-thrash interval: every move the
        // daemon makes on its own happens in the settle of a change, never
        // in a later tick, so what a read shows is what was made durable.
        "--min-move-interval",
        "86400",
        // Compactions every few changes, so kills land in them too.
        "--state-log-bytes",
        "4096",
    ])
}

/// A random operation, mostly one that can succeed given the state.
fn pick(rng: &mut Rng, known: &State) -> Op {
    if rng.percent(12) {
        let hart = rng.below(HARTS);
        return if known.drained.len() >= 2 || (known.drained.contains(&hart) && rng.percent(70)) {
            let drained: Vec<u64> = known.drained.iter().copied().collect();
            Op::Undrain {
                hart: *drained
                    .get(rng.below(drained.len().max(1) as u64) as usize)
                    .unwrap_or(&hart),
            }
        } else {
            Op::Drain { hart }
        };
    }
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
    match known.vms.get(&vm) {
        None if rng.percent(85) => place(rng, vm),
        // Refusals: an unknown VM.
        None if rng.percent(50) => Op::Release { vm },
        None => Op::Migrate {
            vm,
            vcpu: 0,
            hart: rng.below(HARTS),
        },
        // A refusal: the id is taken.
        Some(_) if rng.percent(6) => place(rng, vm),
        Some(_) if rng.percent(30) => Op::Release { vm },
        // Always a refusal: the simulated host cannot attach a VMM.
        Some(_) if rng.percent(10) => Op::Attach {
            vm,
            pid: 1000 + rng.below(1000),
        },
        Some(v) => Op::Migrate {
            vm,
            vcpu: rng.below(v.harts.len() as u64),
            hart: rng.below(HARTS),
        },
    }
}

/// Checks an acknowledged operation's reply: it says the change was made.
fn check_reply(op: &Op, reply: &Value) {
    match op {
        Op::Place { vcpus, class, .. } => {
            let got = vm_of(reply).unwrap_or_else(|e| panic!("{op}: {e}"));
            assert_eq!(got.class, *class, "{op}: {reply}");
            assert_eq!(got.harts.len() as u64, *vcpus, "{op}: {reply}");
        }
        Op::Migrate { hart, .. } => {
            assert_eq!(
                reply["after"]["hart"].as_u64(),
                Some(*hart),
                "{op}: {reply}"
            );
        }
        Op::Drain { hart } => {
            assert_eq!(reply["hart"].as_u64(), Some(*hart), "{op}: {reply}");
        }
        Op::Attach { .. } => panic!("{op}: the simulated host cannot attach, yet: {reply}"),
        Op::Release { .. } | Op::Undrain { .. } => {}
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
        if !v["tid"].is_null() {
            return Err(format!("vCPU {i} attached on the simulated host: {v}"));
        }
    }
    Ok(Vm { class, harts })
}

/// What the daemon shows, or why it could not be read (a kill).
fn read(d: &Daemon) -> Result<(State, Value), String> {
    let vms = d.ctl("-o json vms");
    let harts = d.ctl("-o json harts");
    if vms.code != 0 || harts.code != 0 {
        return Err(format!("{}{}", vms.stderr, harts.stderr));
    }
    let (vms, harts) = (vms.json(), harts.json());
    let mut state = State::default();
    for vm in vms.as_array().expect("vms is an array") {
        let id = vm["vm"].as_str().expect("vm id").to_string();
        if state.vms.insert(id.clone(), vm_of(vm)?).is_some() {
            return Err(format!("{id} listed twice"));
        }
    }
    for h in harts.as_array().expect("harts is an array") {
        if h["drained"] == true {
            state.drained.insert(h["hart"].as_u64().expect("hart"));
        }
    }
    Ok((state, serde_json::json!({ "vms": vms, "harts": harts })))
}

/// Whether the operation's own effect shows in `seen` (given `before`, the
/// state it was sent in, and the reply if it was acknowledged).
fn applied(op: &Op, before: &State, reply: Option<&Value>, seen: &State) -> bool {
    match op {
        Op::Place { vm, vcpus, class } => {
            !before.vms.contains_key(vm)
                && seen.vms.get(vm).is_some_and(|s| {
                    s.class == *class
                        && s.harts.len() as u64 == *vcpus
                        && reply.is_none_or(|r| vm_of(r).is_ok_and(|r| r.harts == s.harts))
                })
        }
        Op::Release { vm } => before.vms.contains_key(vm) && !seen.vms.contains_key(vm),
        Op::Migrate { vm, vcpu, hart } => {
            before.vms.contains_key(vm)
                && seen
                    .vms
                    .get(vm)
                    .is_some_and(|s| s.harts.get(*vcpu as usize) == Some(hart))
        }
        Op::Drain { hart } => {
            seen.drained.contains(hart) && seen.vms.values().all(|v| !v.harts.contains(hart))
        }
        Op::Undrain { hart } => !seen.drained.contains(hart),
        // Always refused (the simulated host cannot attach): it changes
        // nothing, so it is never seen applied.
        Op::Attach { .. } => false,
    }
}

/// Whether `seen` is `before` with `op` applied, where the vCPUs the daemon
/// may move on its own in the change's settle (promotions, demotions and
/// rehomes of burstable and best-effort vCPUs, a drain's evacuation) may
/// be anywhere; everything else as it was.
fn after(op: &Op, before: &State, seen: &State) -> Result<(), String> {
    let mut expected = before.clone();
    match op {
        Op::Place { vm, .. } => {
            expected.vms.insert(vm.clone(), seen.vms[vm].clone());
        }
        Op::Release { vm } => {
            expected.vms.remove(vm);
        }
        Op::Migrate { vm, vcpu, hart } => {
            expected.vms.get_mut(vm).expect("placed").harts[*vcpu as usize] = *hart;
        }
        Op::Drain { hart } => {
            expected.drained.insert(*hart);
        }
        Op::Undrain { hart } => {
            expected.drained.remove(hart);
        }
        Op::Attach { .. } => {}
    }
    if expected.drained != seen.drained {
        return Err(format!(
            "drained harts: expected {:?}, daemon shows {:?}",
            expected.drained, seen.drained
        ));
    }
    for (id, want) in &expected.vms {
        let Some(s) = seen.vms.get(id) else {
            return Err(format!("{id} lost: expected {want:?}"));
        };
        // Only a guaranteed vCPU, or the one migrated, is where it was
        // sent; a drained hart's guaranteed vCPUs went elsewhere.
        let pinned = |i: usize, w: &u64| {
            want.class == "guaranteed" && !matches!(op, Op::Drain { hart } if hart == w)
                || matches!(op, Op::Migrate { vm, vcpu, .. } if vm == id && *vcpu as usize == i)
        };
        let moved = want.harts.len() != s.harts.len()
            || want
                .harts
                .iter()
                .zip(&s.harts)
                .enumerate()
                .any(|(i, (w, s))| w != s && pinned(i, w));
        if want.class != s.class || moved {
            return Err(format!("{id}: expected {want:?}, daemon shows {s:?}"));
        }
    }
    if let Some(extra) = seen.vms.keys().find(|id| !expected.vms.contains_key(*id)) {
        return Err(format!(
            "{extra} present but never acknowledged: {:?}",
            seen.vms[extra]
        ));
    }
    Ok(())
}

/// What the last round left unsure.
enum Last {
    /// Nothing: `known` is what the daemon had made durable.
    Nothing,
    /// Acknowledged, with this reply, but not read back: its side effects
    /// are unknown.
    Acked(Op, Value),
    /// In flight at the kill: whole or absent.
    InFlight(Op),
}

/// The simulated machine, as its file shows it: per VM id, per vCPU, its
/// affinity and the line it holds (hart, line).
type Machine = BTreeMap<String, Vec<(Vec<u64>, Option<(u64, u64)>)>>;

fn machine(state: &Path) -> Result<Machine, String> {
    let path = state.join(MACHINE);
    let bytes = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let m: Value =
        serde_json::from_slice(&bytes).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut out = Machine::new();
    for entry in m["vms"].as_array().ok_or("machine without vms")? {
        let id = entry[0].as_str().ok_or("vm id")?.to_string();
        let handle = entry[1].as_u64().ok_or("vm handle")? as usize;
        let vm = &m["kvm"]["vms"][handle];
        let vcpus = vm["vcpus"]
            .as_array()
            .ok_or_else(|| format!("{id}: no such handle"))?;
        let vcpus = vcpus
            .iter()
            .map(|v| {
                let affinity = v["affinity"]
                    .as_array()
                    .map(|a| a.iter().filter_map(Value::as_u64).collect())
                    .unwrap_or_default();
                let hw = &v["file"]["Hw"];
                let held = hw["cpu"].as_u64().zip(hw["line"].as_u64());
                (affinity, held)
            })
            .collect();
        out.insert(id, vcpus);
    }
    Ok(out)
}

/// How far the machine is from what the daemon shows: VMs on one side
/// only, and vCPUs pinned elsewhere than their hart.
fn differences(m: &Machine, seen: &State) -> (usize, usize) {
    let ids: BTreeSet<&String> = m.keys().chain(seen.vms.keys()).collect();
    let (mut vms, mut pins) = (0, 0);
    for id in ids {
        match (m.get(id), seen.vms.get(id)) {
            (Some(vcpus), Some(vm)) => {
                pins += vcpus
                    .iter()
                    .zip(&vm.harts)
                    .filter(|((affinity, _), hart)| affinity[..] != [**hart])
                    .count();
            }
            _ => vms += 1,
        }
    }
    (vms, pins)
}

/// The ledger agrees with the machine: the same VMs, each vCPU pinned to
/// its hart, and each VS-file vCPU of a running VM holding on the machine
/// the line the daemon shows (and no other vCPU holding one).
fn agrees(m: &Machine, raw: &Value) -> Result<usize, String> {
    let vms = raw["vms"].as_array().expect("vms");
    let ids: BTreeSet<&str> = vms.iter().filter_map(|v| v["vm"].as_str()).collect();
    if ids != m.keys().map(String::as_str).collect() {
        return Err(format!(
            "the daemon has VMs {ids:?}, the simulated machine runs {:?}",
            m.keys().collect::<Vec<_>>()
        ));
    }
    let mut lines = 0;
    for vm in vms {
        let id = vm["vm"].as_str().unwrap();
        let on_machine = &m[id];
        let vcpus = vm["vcpus"].as_array().unwrap();
        if vcpus.len() != on_machine.len() {
            return Err(format!(
                "{id}: {} vCPUs, {} on the machine",
                vcpus.len(),
                on_machine.len()
            ));
        }
        let running = vm["state"] == "ready";
        for (v, (affinity, held)) in vcpus.iter().zip(on_machine) {
            let hart = v["hart"].as_u64().unwrap();
            if affinity[..] != [hart] {
                return Err(format!(
                    "{id} vCPU {}: on hart {hart}, pinned to {affinity:?} on the machine",
                    v["vcpu"]
                ));
            }
            if !running {
                continue;
            }
            let shown = match (v["backing"].as_str(), v["vsfile_line"].as_u64()) {
                (Some("vsfile"), Some(line)) => Some((hart, line)),
                _ => None,
            };
            if shown != *held {
                return Err(format!(
                    "{id} vCPU {}: the daemon shows {} line {:?} on hart {hart}, the machine holds {held:?}",
                    v["vcpu"], v["backing"], v["vsfile_line"]
                ));
            }
            lines += usize::from(held.is_some());
        }
    }
    Ok(lines)
}

/// The moves a daemon's log reports it made on its own: (vm, vcpu, from, to).
fn promotions(log: &str) -> Vec<(String, usize, u64, u64)> {
    log.lines()
        .filter(|l| {
            l.contains("promoted to a VS-file")
                || l.contains("kept where the host holds its VS-file")
        })
        .filter_map(|l| {
            let field = |name: &str| {
                l.split_whitespace()
                    .find_map(|w| w.strip_prefix(name)?.strip_prefix('='))
                    .map(str::to_string)
            };
            Some((
                field("vm")?,
                field("vcpu")?.parse().ok()?,
                field("from")?.parse().ok()?,
                field("to")?.parse().ok()?,
            ))
        })
        .collect()
}

/// `known` with the daemon's own moves applied, in order.
fn with_moves(known: &State, moves: &[(String, usize, u64, u64)]) -> State {
    let mut after = known.clone();
    for (vm, vcpu, from, to) in moves {
        if let Some(h) = after.vms.get_mut(vm).and_then(|v| v.harts.get_mut(*vcpu))
            && h == from
        {
            *h = *to;
        }
    }
    after
}

/// Checks the restarted daemon against what the test knows and what was
/// unsure at the kill; returns what it shows, and the VS-file lines it
/// found agreeing with the machine.
fn check(
    d: &Daemon,
    state: &Path,
    known: &State,
    last: &Last,
    promoted: &mut usize,
) -> Result<(State, usize), String> {
    // A read of the machine, then the daemon, then the machine again, that
    // agree: the daemon is between two changes of its own (ticks).
    let mut tries = 0;
    let (seen, raw, m) = loop {
        let m = machine(state)?;
        let (seen, raw) = read(d)?;
        if machine(state)? == m {
            break (seen, raw, m);
        }
        tries += 1;
        if tries == STABLE_READS {
            return Err("the simulated machine never stood still".into());
        }
    };
    // Once restarted, the daemon may move vCPUs on its own, and says so:
    // promotions in its first settle, and a guaranteed vCPU kept where the
    // machine holds its line when an AUTO vCPU took the one on its hart.
    let moves = promotions(&d.log());
    *promoted += moves.len();
    let known = &with_moves(known, &moves);
    for (id, v) in &seen.vms {
        // `vm X` agrees with `vms`.
        let one = vm_of(&d.json(&format!("vm {id}")))?;
        if one != *v {
            return Err(format!("`vm {id}` shows {one:?}, `vms` shows {v:?}"));
        }
    }
    match last {
        Last::Nothing => {
            if seen != *known {
                return Err(format!("expected {known:?}, daemon shows {seen:?}"));
            }
        }
        Last::InFlight(op) => {
            if seen != *known {
                if !applied(op, known, None, &seen) {
                    return Err(format!(
                        "in flight `{op}` half-applied, or something else changed: expected {known:?}, daemon shows {seen:?}"
                    ));
                }
                after(op, known, &seen)
                    .map_err(|e| format!("in flight `{op}` applied, but {e}"))?;
            }
        }
        Last::Acked(op, reply) => {
            if !applied(op, known, Some(reply), &seen) {
                return Err(format!(
                    "acknowledged `{op}` ({reply}) lost: daemon shows {seen:?}"
                ));
            }
            after(op, known, &seen).map_err(|e| format!("after acknowledged `{op}`: {e}"))?;
        }
    }

    // No hart over its VS-files; no VS-file held by two vCPUs.
    let harts = raw["harts"].as_array().expect("harts is an array");
    if harts.len() as u64 != HARTS {
        return Err(format!("{} harts", harts.len()));
    }
    let mut lines = BTreeSet::new();
    let mut backed = [0u64; HARTS as usize];
    for vm in raw["vms"].as_array().unwrap() {
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
    let agreed = agrees(&m, &raw)?;
    Ok((seen, agreed))
}

#[test]
fn acknowledged_changes_survive_sigkill_at_random_moments() {
    let kills = env_u64("IFAD_CRASH_KILLS", 40);
    let seed = env_u64("IFAD_CRASH_SEED", 0x1fad_c0de);
    let mut rng = Rng::new(seed);
    let state = tempfile::tempdir().unwrap();
    let mut known = State::default();
    let mut history: Vec<String> = Vec::new();
    let (mut acked, mut refused, mut in_flight, mut unread) = (0u64, 0u64, 0u64, 0u64);
    let mut attach_refused = 0u64;
    // Moves the restarted daemons made on their own (and logged).
    let mut promoted = 0usize;
    let (mut differed, mut lines_agreed) = (0u64, 0usize);
    // Reconciled on restart: VMs on one side only, vCPUs pinned elsewhere.
    let (mut vms_reconciled, mut pins_reconciled) = (0usize, 0usize);
    let mut acked_kinds: BTreeMap<String, u64> = BTreeMap::new();
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
    let mut round = 0;
    // At least `kills` kills; more, up to three times as many, until kills
    // between a host effect and its checkpoint left the machine with a VM
    // the ledger did not have (or the other way round) and with a vCPU
    // pinned elsewhere than its ledger hart.
    let exercised = |vms: usize, pins: usize| vms > 0 && pins > 0;
    while round < kills || (!exercised(vms_reconciled, pins_reconciled) && round < 3 * kills) {
        round += 1;
        let killed = Arc::new(AtomicBool::new(false));
        let longest = if rng.percent(25) {
            LONG_KILL_DELAY_US
        } else {
            MAX_KILL_DELAY_US
        };
        let delay = Duration::from_micros(rng.below(longest + 1));
        // Every other round, the kill follows the machine's first, second
        // or third change after the delay: host effects (a change makes
        // several), most likely before their checkpoint.
        let on_effect = rng.percent(50);
        let effects = 1 + rng.below(3);
        let pid = Pid::from_raw(d.pid() as i32);
        let killer = {
            let killed = Arc::clone(&killed);
            let machine = state.path().join(MACHINE);
            std::thread::spawn(move || {
                std::thread::sleep(delay);
                if on_effect {
                    // Each change is a new file renamed into place.
                    use std::os::unix::fs::MetadataExt;
                    let ino = |p: &Path| std::fs::metadata(p).map_or(0, |m| m.ino());
                    let until = Instant::now() + EFFECT_WAIT;
                    for _ in 0..effects {
                        let was = ino(&machine);
                        while ino(&machine) == was && Instant::now() < until {
                            std::thread::yield_now();
                        }
                    }
                }
                // Raised before the signal, so that any failure the kill
                // may have caused is seen with it raised.
                killed.store(true, Ordering::SeqCst);
                // The child is not reaped before the join below: the pid
                // is still ours.
                kill(pid, Signal::SIGKILL).expect("SIGKILL ifad");
            })
        };

        let mut last = Last::Nothing;
        for _ in 0..MAX_OPS_PER_ROUND {
            let op = pick(&mut rng, &known);
            let out: Ctl = d.ctl(&op.command());
            // A failure seen before the killer raised the flag came from a
            // live daemon: a refusal. After it, it may be the kill's.
            let after_kill = killed.load(Ordering::SeqCst);
            if out.code == 0 {
                let reply = out.json();
                check_reply(&op, &reply);
                acked += 1;
                let kind = op.to_string();
                *acked_kinds
                    .entry(match &op {
                        Op::Place { class, .. } => format!("place {class}"),
                        Op::Migrate { vm, .. } => format!("migrate {}", known.vms[vm].class),
                        _ => kind.split(' ').next().unwrap_or_default().to_string(),
                    })
                    .or_default() += 1;
                history.push(format!("[{round}] ok       {op}"));
                // Read back what the change did besides (promotions,
                // demotions): that is what it made durable.
                match read(&d) {
                    Ok((seen, _)) => {
                        if !applied(&op, &known, Some(&reply), &seen) {
                            fail(
                                &format!("acknowledged `{op}` ({reply}) not shown: {seen:?}"),
                                round,
                                &history,
                                &d.log(),
                            );
                        }
                        if let Err(e) = after(&op, &known, &seen) {
                            fail(&format!("after `{op}`: {e}"), round, &history, &d.log());
                        }
                        known = seen;
                    }
                    Err(e) if killed.load(Ordering::SeqCst) => {
                        unread += 1;
                        history.push(format!("[{round}] (not read back: {})", e.trim_end()));
                        last = Last::Acked(op, reply);
                        break;
                    }
                    Err(e) => fail(
                        &format!("reading back `{op}`: {e}"),
                        round,
                        &history,
                        &d.log(),
                    ),
                }
            } else if after_kill {
                in_flight += 1;
                history.push(format!(
                    "[{round}] IN FLIGHT {op}: exit {}: {}",
                    out.code,
                    out.stderr.trim_end()
                ));
                last = Last::InFlight(op);
                break;
            } else {
                assert!(
                    out.code == 1 || out.code == 2,
                    "seed {seed}: `{op}` exit {}: {out:?}",
                    out.code
                );
                if matches!(op, Op::Attach { .. }) {
                    assert!(
                        out.stderr.contains("cannot do that"),
                        "seed {seed}: `{op}`: {out:?}"
                    );
                    attach_refused += 1;
                }
                refused += 1;
                history.push(format!(
                    "[{round}] refused  {op}: {}",
                    out.stderr.trim_end()
                ));
            }
            if killed.load(Ordering::SeqCst) {
                break;
            }
        }
        killer.join().expect("killer thread");
        history.push(format!(
            "[{round}] -- SIGKILL after {delay:?}{}",
            if on_effect {
                format!(" and {effects} host effect(s)")
            } else {
                String::new()
            }
        ));
        drop(d); // reaps the killed daemon; its lock goes with it

        // The machine as the killed daemon left it.
        let left = machine(state.path()).unwrap_or_default();
        d = start(state.path());
        match check(&d, state.path(), &known, &last, &mut promoted) {
            Ok((now, agreed)) => {
                let (vms, pins) = differences(&left, &now);
                if vms + pins > 0 {
                    differed += 1;
                    vms_reconciled += vms;
                    pins_reconciled += pins;
                    history.push(format!(
                        "[{round}] -- restart reconciled the machine: {vms} VM(s), {pins} vCPU pin(s)"
                    ));
                }
                lines_agreed += agreed;
                known = now;
            }
            Err(what) => fail(&what, round, &history, &d.log()),
        }
    }

    // A clean stop keeps it all as well.
    assert!(d.stop().is_some_and(|s| s.success()), "{}", d.log());
    let d = start(state.path());
    if let Err(what) = check(&d, state.path(), &known, &Last::Nothing, &mut promoted) {
        fail(&what, round, &history, &d.log());
    }

    eprintln!(
        "crash test: seed {seed}, {round} kills, {acked} acknowledged {acked_kinds:?}, {refused} refused ({attach_refused} attach), \
         {in_flight} in flight at a kill, {unread} acknowledged but not read back; \
         {differed} restarts found the machine differing from the ledger ({vms_reconciled} VMs, \
         {pins_reconciled} vCPU pins reconciled), \
         {lines_agreed} VS-file lines checked against the machine, {promoted} moves of their own on restart; \
         {} VMs at the end, {:.1?}",
        known.vms.len(),
        began.elapsed()
    );
    assert!(acked > 0, "no operation was acknowledged");
    assert!(in_flight > 0, "no kill landed during an operation");
    assert!(
        exercised(vms_reconciled, pins_reconciled),
        "in {round} kills, the restarts reconciled {vms_reconciled} VMs and {pins_reconciled} \
         vCPU pins with the machine: a crash between a host effect and its checkpoint was \
         not exercised"
    );
}
