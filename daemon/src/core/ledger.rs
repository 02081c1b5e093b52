//! Who holds what: every placed VM, its vCPUs' harts and backings, where KVM
//! really holds each vCPU's line, and the per-hart counts and orders that
//! policy decides on. Counts and orders are indexes kept incrementally (every
//! change goes through `unindex` / `index`); `verify` recomputes them.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::core::pressure::{InterruptCount, Pressure, PressureLevel};
use crate::core::request::PlaceSpec;
use crate::core::{
    Backing, Bdf, Class, CoreError, GuestImsicLayout, HartId, IrqRate, Topology, VcpuKey, VmId,
};

/// Milliseconds of the engine's monotonic clock.
pub type Millis = u64;

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct VcpuRecord {
    /// The hart the vCPU thread is pinned to.
    pub hart: HartId,
    /// What ifad intends; for AUTO vCPUs also what KVM will do.
    pub backing: Backing,
    /// Guest external interrupt line of the VS-file, as the host reported it.
    pub line: Option<u8>,
    /// Where KVM really holds a line for this vCPU. It differs from
    /// `hart` after a move until the vCPU next enters the guest: KVM frees
    /// the old line only then, and a blocked vCPU keeps it.
    pub held_on: Option<HartId>,
    /// Last time policy moved it (anti-thrash).
    pub moved_at: Option<Millis>,
    /// Since when it has waited on MRIF (promotion order).
    pub waiting_since: Millis,
    /// Interrupts per second the placement hinted for it; `None`: no hint
    /// (also in state files written before hints existed). Kept and shown
    /// only: policy does not read it yet (issue 14).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_irq_rate: Option<IrqRate>,
}

impl VcpuRecord {
    /// Holds a line on a hart it no longer intends to use.
    fn releasing_on(&self) -> Option<HartId> {
        self.held_on
            .filter(|&h| !(self.backing == Backing::VsFile && self.hart == h))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct VmRecord {
    pub id: VmId,
    pub class: Class,
    pub priority: i32,
    pub devices: Vec<Bdf>,
    /// Harts the VM may use; `None`: all.
    pub allowed: Option<Vec<HartId>>,
    pub vcpus: Vec<VcpuRecord>,
    /// Placement order; earlier VMs entered KVM first.
    pub seq: u64,
    /// Admitted onto files that are still being released: the VMM must not
    /// run it yet.
    pub pending: bool,
    /// A HWACCEL entry failed (a hart went offline under it): the VMM has
    /// stopped the VM, so it no longer counts against any hart's files.
    pub failed: bool,
    /// The guest IMSIC layout given at placement. Absent in state files
    /// written before layouts existed: those VMs' addresses are unknown.
    #[serde(default)]
    pub guest_imsic: Option<GuestImsicLayout>,
}

impl VmRecord {
    /// The placement's hint, one rate per vCPU; `None` unless every vCPU
    /// has one (hints are given for a whole VM).
    pub fn expected_irq_rates(&self) -> Option<Vec<IrqRate>> {
        self.vcpus.iter().map(|v| v.expected_irq_rate).collect()
    }

    pub fn allows(&self, hart: HartId) -> bool {
        self.allowed
            .as_ref()
            .is_none_or(|a| a.binary_search(&hart).is_ok())
    }
}

/// Per-hart occupancy.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HartLoad {
    /// vCPUs placed here on a VS-file (holding or about to hold one).
    pub vsfiles_used: u32,
    /// vCPU threads placed here, any backing.
    pub vcpus: u32,
    /// Lines KVM still holds here for vCPUs that moved away.
    pub releasing: u32,
    /// Lines KVM holds here, as last observed.
    pub held: u32,
    /// Of `releasing`, lines that will not free at the holder's next entry:
    /// its VM was stopped, or its own hart is offline and it runs here on
    /// the scheduler's fallback.
    pub stuck: u32,
}

/// Burstable vCPUs on MRIF, best promotion candidates first: high priority
/// (the operator's override), then busiest, then VMs with devices (only
/// VS-file vCPUs can get irqbypass), then longest waiting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct WaitKey {
    pub priority: Reverse<i32>,
    pub busy: Reverse<PressureLevel>,
    pub no_devices: bool,
    pub since: Millis,
    pub seq: u64,
    pub vcpu: u32,
}

/// Burstable vCPUs on VS-files, first to be demoted first: low priority
/// before high (the operator's override), quiet before busy, no devices
/// before devices, newest before oldest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct VictimKey {
    pub priority: i32,
    pub quiet: PressureLevel,
    pub has_devices: bool,
    pub newest: Reverse<u64>,
    pub vcpu: u32,
}

impl VictimKey {
    pub fn seq(&self) -> u64 {
        self.newest.0
    }
}

#[derive(Debug, Clone, Default)]
pub struct Ledger {
    vms: BTreeMap<u64, VmRecord>,
    ids: HashMap<VmId, u64>,
    load: Vec<HartLoad>,
    drained: Vec<bool>,
    offline: Vec<bool>,
    device_owner: HashMap<Bdf, VmId>,
    waiting: BTreeSet<WaitKey>,
    /// Per hart, waiting vCPUs in KVM entry order (seq, vcpu).
    waiting_on: Vec<BTreeSet<(u64, u32)>>,
    victims: BTreeSet<VictimKey>,
    /// Measured interrupt demand per (seq, vcpu); not kept across restarts
    /// (measuring starts again), so not in the records.
    pressure: HashMap<(u64, u32), Pressure>,
    next_seq: u64,
    /// What changed since the last `take_changes`, so a checkpoint writes
    /// only that (a durable change costs its own size, not the state's).
    changes: Changes,
}

/// What changed in a ledger since the changes were last taken.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Changes {
    /// VMs placed, changed or removed (a removed one is no longer in the
    /// ledger).
    pub vms: BTreeSet<VmId>,
    /// Which harts are drained.
    pub drained: bool,
}

impl Ledger {
    pub fn new(topology: &Topology) -> Self {
        let n = topology.len();
        Ledger {
            load: vec![HartLoad::default(); n],
            drained: vec![false; n],
            offline: topology.harts().iter().map(|h| !h.online).collect(),
            waiting_on: vec![BTreeSet::new(); n],
            ..Ledger::default()
        }
    }

    /// What changed since the last call, and starts afresh.
    pub fn take_changes(&mut self) -> Changes {
        std::mem::take(&mut self.changes)
    }

    /// The record of a live VM, for a change: the VM is marked changed.
    /// Every change of a record goes through here (or `insert`, `remove`,
    /// `adopt`), so none is missing from the next checkpoint.
    fn record_mut(&mut self, seq: u64) -> &mut VmRecord {
        let vm = self.vms.get_mut(&seq).expect("live");
        self.changes.vms.insert(vm.id.clone());
        vm
    }

    /// The seq the next placed VM gets (seqs are never reused).
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    pub fn vm(&self, id: &VmId) -> Option<&VmRecord> {
        self.ids.get(id).and_then(|s| self.vms.get(s))
    }

    pub fn vm_by_seq(&self, seq: u64) -> Option<&VmRecord> {
        self.vms.get(&seq)
    }

    /// VMs in placement order.
    pub fn vms(&self) -> impl Iterator<Item = &VmRecord> {
        self.vms.values()
    }

    pub fn vm_count(&self) -> usize {
        self.vms.len()
    }

    pub fn load(&self, hart: HartId) -> HartLoad {
        self.load.get(hart as usize).copied().unwrap_or_default()
    }

    pub fn is_offline(&self, hart: HartId) -> bool {
        self.offline.get(hart as usize).copied().unwrap_or(false)
    }

    pub fn is_drained(&self, hart: HartId) -> bool {
        self.drained.get(hart as usize).copied().unwrap_or(false)
    }

    pub fn vsfiles_used(&self) -> u32 {
        self.load.iter().map(|l| l.vsfiles_used).sum()
    }

    /// Whether new vCPUs may land on a hart: it exists, is online, and is
    /// not drained.
    pub fn eligible(&self, topology: &Topology, hart: HartId) -> bool {
        topology.hart(hart).is_some_and(|h| h.online) && !self.is_drained(hart)
    }

    /// VS-files free right now (not reserved, not still held by a vCPU that
    /// moved away) on an eligible hart; 0 otherwise.
    pub fn free(&self, topology: &Topology, hart: HartId) -> u32 {
        if !self.eligible(topology, hart) {
            return 0;
        }
        let l = self.load(hart);
        u32::from(topology.harts()[hart as usize].vsfiles)
            .saturating_sub(l.vsfiles_used + l.releasing)
    }

    /// Whether every line reserved on the hart is really free in KVM.
    pub fn settled(&self, topology: &Topology, hart: HartId) -> bool {
        let l = self.load(hart);
        topology
            .hart(hart)
            .is_some_and(|h| l.vsfiles_used + l.releasing <= u32::from(h.vsfiles))
    }

    /// Whether an AUTO vCPU may wait on MRIF here without KVM handing it a
    /// line meant for someone else: KVM holds every line, and none is
    /// promised to a vCPU that has not entered yet.
    pub fn safe_for_waiting(&self, topology: &Topology, hart: HartId) -> bool {
        let l = self.load(hart);
        topology
            .hart(hart)
            .is_some_and(|h| l.held >= u32::from(h.vsfiles))
            && self.settled(topology, hart)
    }

    /// Per hart, whether one of its lines is promised to a vCPU of a
    /// pending VM: its VMM stays paused until the VM is ready, so the line
    /// stays free in KVM for whichever AUTO vCPU enters there first.
    pub fn promised_to_pending(&self) -> Vec<bool> {
        let mut promised = vec![false; self.load.len()];
        for vm in self.vms.values().filter(|vm| vm.pending) {
            for v in &vm.vcpus {
                if v.backing == Backing::VsFile && v.held_on != Some(v.hart) {
                    promised[v.hart as usize] = true;
                }
            }
        }
        promised
    }

    pub fn waiting(&self) -> impl Iterator<Item = &WaitKey> {
        self.waiting.iter()
    }

    pub fn waiting_on(&self, hart: HartId) -> impl Iterator<Item = &(u64, u32)> {
        self.waiting_on[hart as usize].iter()
    }

    pub fn victims(&self) -> impl Iterator<Item = &VictimKey> {
        self.victims.iter()
    }

    pub fn key_of(&self, seq: u64, vcpu: u32) -> VcpuKey {
        VcpuKey {
            vm: self.vms[&seq].id.clone(),
            vcpu,
        }
    }

    /// Refuses what a placement could not take: a known VM id or a device
    /// another VM holds.
    pub fn check_admissible(&self, spec: &PlaceSpec) -> Result<(), CoreError> {
        if self.ids.contains_key(&spec.vm) {
            return Err(CoreError::VmExists(spec.vm.clone()));
        }
        for dev in &spec.devices {
            if let Some(owner) = self.device_owner.get(dev) {
                return Err(CoreError::DeviceInUse {
                    device: dev.to_string(),
                    owner: owner.clone(),
                });
            }
        }
        Ok(())
    }

    /// Records a new VM whose vCPUs go where `plan` says. Nothing runs yet:
    /// no line is held until the host reports an entry.
    pub fn insert(
        &mut self,
        spec: &PlaceSpec,
        plan: &[(HartId, Backing)],
        pending: bool,
        now: Millis,
    ) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.changes.vms.insert(spec.vm.clone());
        let rates = spec.expected_irq_rates.as_deref();
        let vcpus = plan
            .iter()
            .enumerate()
            .map(|(i, &(hart, backing))| VcpuRecord {
                hart,
                backing,
                line: None,
                held_on: None,
                moved_at: None,
                waiting_since: now,
                expected_irq_rate: rates.map(|r| r[i]),
            })
            .collect();
        for dev in &spec.devices {
            self.device_owner.insert(*dev, spec.vm.clone());
        }
        self.ids.insert(spec.vm.clone(), seq);
        self.vms.insert(
            seq,
            VmRecord {
                id: spec.vm.clone(),
                class: spec.class,
                priority: spec.priority,
                devices: spec.devices.clone(),
                allowed: spec.allowed.clone(),
                vcpus,
                seq,
                pending,
                failed: false,
                guest_imsic: spec.guest_imsic.clone(),
            },
        );
        for vcpu in 0..plan.len() as u32 {
            self.index(seq, vcpu, true);
        }
        seq
    }

    /// Forgets a VM and everything it held; its VMM is gone, so KVM frees
    /// its lines at once.
    pub fn remove(&mut self, id: &VmId) -> Result<VmRecord, CoreError> {
        let seq = *self
            .ids
            .get(id)
            .ok_or_else(|| CoreError::VmNotFound(id.clone()))?;
        for vcpu in 0..self.vms[&seq].vcpus.len() as u32 {
            self.index(seq, vcpu, false);
        }
        self.ids.remove(id);
        self.changes.vms.insert(id.clone());
        let record = self.vms.remove(&seq).expect("indexed");
        for vcpu in 0..record.vcpus.len() as u32 {
            self.pressure.remove(&(seq, vcpu));
        }
        for dev in &record.devices {
            self.device_owner.remove(dev);
        }
        Ok(record)
    }

    /// Re-pins a vCPU and sets what it should run on there. A line it
    /// holds stays held (releasing) until the host reports it entered anew.
    pub fn move_vcpu(
        &mut self,
        key: &VcpuKey,
        hart: HartId,
        backing: Backing,
        now: Millis,
        policy_move: bool,
    ) -> Result<(), CoreError> {
        self.update(key, |v| {
            if v.backing == Backing::VsFile && backing == Backing::Mrif {
                v.waiting_since = now;
            }
            if v.hart != hart && policy_move {
                v.moved_at = Some(now);
            }
            if v.hart != hart || backing == Backing::Mrif {
                v.line = None;
            }
            v.hart = hart;
            v.backing = backing;
        })
    }

    /// What the host showed after the vCPU entered: where KVM holds its
    /// line now (`None`: on MRIF) and which line.
    pub fn observed(
        &mut self,
        key: &VcpuKey,
        held_on: Option<HartId>,
        line: Option<u8>,
    ) -> Result<(), CoreError> {
        self.update(key, |v| {
            v.held_on = held_on;
            v.line = line.filter(|_| held_on == Some(v.hart));
        })
    }

    /// Changes a vCPU's backing where it is, as KVM did on its own (an
    /// AUTO upgrade or fallback, or a line lost to a hart going offline).
    pub fn set_backing(
        &mut self,
        key: &VcpuKey,
        backing: Backing,
        now: Millis,
    ) -> Result<(), CoreError> {
        let hart = self.vcpu(key)?.hart;
        self.move_vcpu(key, hart, backing, now, false)
    }

    pub fn set_pending(&mut self, id: &VmId, pending: bool) {
        if let Some(&seq) = self.ids.get(id) {
            self.record_mut(seq).pending = pending;
        }
    }

    /// Marks a VM stopped by a failed HWACCEL entry: its files are no
    /// longer reserved (KVM hands them to whoever enters next).
    pub fn set_failed(&mut self, id: &VmId) {
        let Some(&seq) = self.ids.get(id) else {
            return;
        };
        if self.vms[&seq].failed {
            return;
        }
        let who = self.select(|vm, _| vm.seq == seq);
        self.reindexed(&who, |l| l.record_mut(seq).failed = true);
    }

    /// Follows a hart going offline or online.
    pub fn set_offline(&mut self, hart: HartId, offline: bool) {
        if self.offline.get(hart as usize) == Some(&offline) {
            return;
        }
        let who = self.select(|_, v| v.hart == hart);
        self.reindexed(&who, |l| l.offline[hart as usize] = offline);
    }

    pub fn set_drained(&mut self, hart: HartId, drained: bool) {
        if let Some(d) = self.drained.get_mut(hart as usize) {
            self.changes.drained |= *d != drained;
            *d = drained;
        }
    }

    /// KVM drops every line of an offline hart: nobody holds one there.
    pub fn hart_lost_lines(&mut self, hart: HartId) {
        let who = self.select(|_, v| v.held_on == Some(hart));
        self.reindexed(&who, |l| {
            for &(seq, vcpu) in &who {
                let v = &mut l.record_mut(seq).vcpus[vcpu as usize];
                v.held_on = None;
                v.line = None;
            }
        });
    }

    /// The vCPUs, as (seq, index), for which `pred` holds.
    fn select(&self, pred: impl Fn(&VmRecord, &VcpuRecord) -> bool) -> Vec<(u64, u32)> {
        self.vms
            .values()
            .flat_map(|vm| {
                let pred = &pred;
                vm.vcpus
                    .iter()
                    .enumerate()
                    .filter(move |(_, v)| pred(vm, v))
                    .map(move |(i, _)| (vm.seq, i as u32))
            })
            .collect()
    }

    /// Applies `change` with `who` taken out of every index, then puts them
    /// back, so the indexes follow whatever `change` did to them.
    fn reindexed(&mut self, who: &[(u64, u32)], change: impl FnOnce(&mut Self)) {
        for &(seq, vcpu) in who {
            self.index(seq, vcpu, false);
        }
        change(self);
        for &(seq, vcpu) in who {
            self.index(seq, vcpu, true);
        }
    }

    pub fn vcpu(&self, key: &VcpuKey) -> Result<&VcpuRecord, CoreError> {
        self.vm(&key.vm)
            .and_then(|vm| vm.vcpus.get(key.vcpu as usize))
            .ok_or_else(|| CoreError::VmNotFound(key.vm.clone()))
    }

    fn update(&mut self, key: &VcpuKey, f: impl FnOnce(&mut VcpuRecord)) -> Result<(), CoreError> {
        let seq = *self
            .ids
            .get(&key.vm)
            .ok_or_else(|| CoreError::VmNotFound(key.vm.clone()))?;
        if key.vcpu as usize >= self.vms[&seq].vcpus.len() {
            return Err(CoreError::invalid(
                "vcpu",
                format!("vm {} has no vcpu {}", key.vm, key.vcpu),
            ));
        }
        self.index(seq, key.vcpu, false);
        f(&mut self.record_mut(seq).vcpus[key.vcpu as usize]);
        self.index(seq, key.vcpu, true);
        Ok(())
    }

    /// One vCPU's pressure: measured, or else as its hint says.
    fn pressure_at(&self, seq: u64, vcpu: u32) -> Pressure {
        self.pressure.get(&(seq, vcpu)).copied().unwrap_or_else(|| {
            Pressure::hinted(self.vms[&seq].vcpus[vcpu as usize].expected_irq_rate)
        })
    }

    fn level(&self, seq: u64, vcpu: u32) -> PressureLevel {
        self.pressure_at(seq, vcpu).level()
    }

    /// Interrupts per second a vCPU takes, as far as ifad knows.
    pub fn interrupt_rate(&self, key: &VcpuKey) -> Result<f64, CoreError> {
        let hint = self.vcpu(key)?.expected_irq_rate;
        let seq = self.ids[&key.vm];
        Ok(self.pressure_at(seq, key.vcpu).per_second(hint))
    }

    /// Interrupts per second of vCPU `vcpu` of the VM placed as `seq`.
    pub fn rate_at(&self, seq: u64, vcpu: u32) -> f64 {
        let hint = self.vms[&seq].vcpus[vcpu as usize].expected_irq_rate;
        self.pressure_at(seq, vcpu).per_second(hint)
    }

    /// Interrupts per second of each of a VM's vCPUs, in vCPU order.
    pub fn interrupt_rates<'a>(&'a self, vm: &'a VmRecord) -> impl Iterator<Item = f64> + 'a {
        vm.vcpus.iter().enumerate().map(move |(i, v)| {
            self.pressure_at(vm.seq, i as u32)
                .per_second(v.expected_irq_rate)
        })
    }

    /// Takes in one reading of what the host counts of a vCPU's interrupts;
    /// reorders it for swapping and promotion only if its level moved.
    pub fn observe_interrupts(
        &mut self,
        key: &VcpuKey,
        count: InterruptCount,
        now: Millis,
    ) -> Result<(), CoreError> {
        let hint = self.vcpu(key)?.expected_irq_rate;
        let seq = self.ids[&key.vm];
        let before = self.pressure_at(seq, key.vcpu);
        let mut after = before;
        after.observe(hint, count, now);
        if after.level() == before.level() {
            self.pressure.insert((seq, key.vcpu), after);
            return Ok(());
        }
        self.index(seq, key.vcpu, false);
        self.pressure.insert((seq, key.vcpu), after);
        self.index(seq, key.vcpu, true);
        Ok(())
    }

    /// Adds (or removes) one vCPU's contribution to every index.
    fn index(&mut self, seq: u64, vcpu: u32, add: bool) {
        let vm = &self.vms[&seq];
        let v = &vm.vcpus[vcpu as usize];
        let step = |n: &mut u32| if add { *n += 1 } else { *n -= 1 };
        let load = &mut self.load[v.hart as usize];
        step(&mut load.vcpus);
        if v.backing == Backing::VsFile && !vm.failed {
            step(&mut load.vsfiles_used);
        }
        // A stopped VM's lines stay held but serve nobody: count them with
        // the lines being released.
        let stuck = vm.failed || self.offline[v.hart as usize];
        let idle = if vm.failed {
            v.held_on
        } else {
            v.releasing_on()
        };
        if let Some(h) = idle {
            step(&mut self.load[h as usize].releasing);
            if stuck {
                step(&mut self.load[h as usize].stuck);
            }
        }
        if let Some(h) = v.held_on {
            step(&mut self.load[h as usize].held);
        }
        if vm.class != Class::Burstable {
            return;
        }
        match v.backing {
            Backing::Mrif => {
                let key = WaitKey {
                    priority: Reverse(vm.priority),
                    busy: Reverse(self.level(seq, vcpu)),
                    no_devices: vm.devices.is_empty(),
                    since: v.waiting_since,
                    seq,
                    vcpu,
                };
                let on = &mut self.waiting_on[v.hart as usize];
                if add {
                    self.waiting.insert(key);
                    on.insert((seq, vcpu));
                } else {
                    self.waiting.remove(&key);
                    on.remove(&(seq, vcpu));
                }
            }
            Backing::VsFile => {
                let key = VictimKey {
                    priority: vm.priority,
                    quiet: self.level(seq, vcpu),
                    has_devices: !vm.devices.is_empty(),
                    newest: Reverse(seq),
                    vcpu,
                };
                if add {
                    self.victims.insert(key);
                } else {
                    self.victims.remove(&key);
                }
            }
        }
    }

    /// Recomputes every index from the records and checks the invariants:
    /// indexes agree; no hart has more VS-files placed on it than it has;
    /// KVM holds no more lines on a hart than it has; no guaranteed vCPU on
    /// MRIF; no best-effort vCPU on a VS-file; pinned only where allowed.
    pub fn verify(&self, topology: &Topology) -> Result<(), String> {
        let mut fresh = Ledger::new(topology);
        fresh.next_seq = self.next_seq;
        fresh.offline = self.offline.clone();
        fresh.pressure = self.pressure.clone();
        let mut held = vec![0u32; topology.len()];
        for vm in self.vms.values() {
            fresh.vms.insert(vm.seq, vm.clone());
            fresh.ids.insert(vm.id.clone(), vm.seq);
            for (i, v) in vm.vcpus.iter().enumerate() {
                if v.hart as usize >= topology.len() {
                    return Err(format!("vm {} vcpu {i} on unknown hart {}", vm.id, v.hart));
                }
                fresh.index(vm.seq, i as u32, true);
                if let Some(h) = v.held_on {
                    held[h as usize] += 1;
                }
                // Linux widens affinity when every allowed hart goes offline;
                // the engine moves the vCPU back once one can take it.
                let any_allowed = topology
                    .online()
                    .any(|h| vm.allows(h.id) && !self.is_drained(h.id));
                if !vm.allows(v.hart) && any_allowed && vm.class == Class::Guaranteed {
                    return Err(format!(
                        "vm {} vcpu {i} on hart {} it may not use",
                        vm.id, v.hart
                    ));
                }
                match (vm.class, v.backing) {
                    (Class::Guaranteed, Backing::Mrif) if !vm.failed => {
                        return Err(format!("guaranteed vm {} vcpu {i} is on MRIF", vm.id));
                    }
                    (Class::BestEffort, Backing::VsFile) => {
                        return Err(format!("best-effort vm {} vcpu {i} holds a VS-file", vm.id));
                    }
                    _ => {}
                }
            }
        }
        if fresh.load != self.load {
            return Err("per-hart counts differ from the records".into());
        }
        if fresh.waiting != self.waiting
            || fresh.waiting_on != self.waiting_on
            || fresh.victims != self.victims
        {
            return Err("promotion or demotion order differs from the records".into());
        }
        for (h, (l, held)) in topology.harts().iter().zip(self.load.iter().zip(&held)) {
            let cap = u32::from(h.vsfiles);
            if l.vsfiles_used > cap || *held > cap {
                return Err(format!(
                    "hart {}: {} VS-files placed, {held} held, of {cap}",
                    h.id, l.vsfiles_used
                ));
            }
        }
        Ok(())
    }
}

#[path = "ledger_restore.rs"]
mod restore;
pub use restore::SavedLedger;

#[cfg(test)]
#[path = "ledger_tests.rs"]
mod tests;
