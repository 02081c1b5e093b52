//! Read-only snapshots of the engine's state, as the API returns them.

use crate::core::imsic_layout::GuestMsiGeometry;
use crate::core::ledger::VmRecord;
use crate::core::policy::{Move, Placement};
use crate::core::request::PlaceSpec;
use crate::core::topology::ImsicGeometry;
use crate::core::{AiaMode, Backing, Class, GuestImsicLayout, HartId, IrqRate, Ledger, Topology};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusView {
    pub host: &'static str,
    pub harts: u32,
    pub harts_online: u32,
    pub vsfiles_total: u32,
    pub vsfiles_used: u32,
    pub vms: u32,
    pub vcpus_vsfile: u32,
    pub vcpus_mrif: u32,
    pub host_imsic: Option<ImsicGeometry>,
}

impl StatusView {
    pub fn new(host: &'static str, topology: &Topology, ledger: &Ledger) -> Self {
        let (mut vsfile, mut mrif) = (0, 0);
        for vm in ledger.vms() {
            for v in &vm.vcpus {
                match v.backing {
                    Backing::VsFile => vsfile += 1,
                    Backing::Mrif => mrif += 1,
                }
            }
        }
        StatusView {
            host,
            harts: topology.len() as u32,
            harts_online: topology.online().count() as u32,
            vsfiles_total: topology.vsfiles_online(),
            vsfiles_used: ledger.vsfiles_used(),
            vms: ledger.vm_count() as u32,
            vcpus_vsfile: vsfile,
            vcpus_mrif: mrif,
            host_imsic: topology.imsic(),
        }
    }

    pub fn vsfiles_free(&self) -> u32 {
        self.vsfiles_total.saturating_sub(self.vsfiles_used)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HartView {
    pub hart: HartId,
    pub vsfiles: u32,
    pub used: u32,
    pub online: bool,
    pub numa_node: u32,
    pub vcpus: u32,
    pub drained: bool,
    pub releasing: u32,
}

impl HartView {
    pub fn all(topology: &Topology, ledger: &Ledger) -> Vec<HartView> {
        topology
            .harts()
            .iter()
            .map(|h| {
                let load = ledger.load(h.id);
                HartView {
                    hart: h.id,
                    vsfiles: u32::from(h.vsfiles),
                    used: load.vsfiles_used,
                    online: h.online,
                    numa_node: h.numa_node,
                    vcpus: load.vcpus,
                    drained: ledger.is_drained(h.id),
                    releasing: load.releasing,
                }
            })
            .collect()
    }
}

/// One vCPU with the record irqbypass needs: {gpa, hpa, is_mrif}.
#[derive(Debug, Clone, PartialEq)]
pub struct VcpuView {
    pub vcpu: u32,
    pub hart: HartId,
    pub backing: Backing,
    pub line: Option<u8>,
    /// `None`: the VM was placed without a guest IMSIC layout.
    pub guest_imsic_gpa: Option<u64>,
    /// 0 while on MRIF or before the host reported the line.
    pub vsfile_hpa: u64,
    /// The VMM's thread running this vCPU, once attached.
    pub tid: Option<u32>,
    /// Interrupts per second hinted at placement; `None`: no hint.
    pub expected_irq_rate: Option<IrqRate>,
    /// Interrupts per second ifad counts it as taking (measured or hinted).
    pub irq_rate: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VmState {
    /// The VMM may run every vCPU.
    Ready,
    /// Waiting for demoted vCPUs to release the VS-files it was given; the
    /// VMM must stay paused.
    Pending,
    /// Advice only: nothing was placed.
    Advice,
    /// A HWACCEL entry failed and the VMM stopped it: release and place
    /// it again.
    Failed,
}

impl VmState {
    pub fn as_str(self) -> &'static str {
        match self {
            VmState::Ready => "ready",
            VmState::Pending => "pending",
            VmState::Advice => "advice",
            VmState::Failed => "failed",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct VmView {
    pub vm: String,
    pub class: Class,
    pub aia_mode: AiaMode,
    pub state: VmState,
    pub priority: i32,
    pub allowed: Vec<HartId>,
    pub devices: Vec<String>,
    pub vcpus: Vec<VcpuView>,
    pub guest_imsic: Option<GuestImsicLayout>,
    /// Guest MSI geometry for irqbypass, where the VMM's rule is known.
    pub guest_msi: Option<GuestMsiGeometry>,
}

/// One vCPU moved by policy or an operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MoveView {
    pub vm: String,
    pub vcpu: u32,
    pub from: HartId,
    pub to: HartId,
    pub backing: Backing,
}

impl From<&Move> for MoveView {
    fn from(m: &Move) -> Self {
        MoveView {
            vm: m.key.vm.to_string(),
            vcpu: m.key.vcpu,
            from: m.from,
            to: m.to,
            backing: m.backing,
        }
    }
}

fn guest_imsic_gpa(layout: Option<&GuestImsicLayout>, vcpu: usize, vcpus: usize) -> Option<u64> {
    layout?.gpa(vcpu as u32, vcpus as u32)
}

fn guest_msi(layout: Option<&GuestImsicLayout>, vcpus: usize) -> Option<GuestMsiGeometry> {
    layout?.msi_geometry(vcpus as u32)
}

impl VmView {
    pub fn new(
        record: &VmRecord,
        topology: &Topology,
        tids: &[Option<u32>],
        rates: impl Iterator<Item = f64>,
    ) -> Self {
        let vcpus = record
            .vcpus
            .iter()
            .zip(rates)
            .enumerate()
            .map(|(i, (v, irq_rate))| {
                let hpa = match (v.backing, v.line, topology.hart(v.hart)) {
                    (Backing::VsFile, Some(line), Some(h)) => h.vsfile_pa(line),
                    _ => 0,
                };
                VcpuView {
                    vcpu: i as u32,
                    hart: v.hart,
                    backing: v.backing,
                    line: v.line.filter(|_| v.backing == Backing::VsFile),
                    guest_imsic_gpa: guest_imsic_gpa(
                        record.guest_imsic.as_ref(),
                        i,
                        record.vcpus.len(),
                    ),
                    vsfile_hpa: hpa,
                    tid: tids.get(i).copied().flatten(),
                    expected_irq_rate: v.expected_irq_rate,
                    irq_rate,
                }
            })
            .collect();
        VmView {
            vm: record.id.to_string(),
            class: record.class,
            aia_mode: record.class.aia_mode(),
            state: if record.failed {
                VmState::Failed
            } else if record.pending {
                VmState::Pending
            } else {
                VmState::Ready
            },
            priority: record.priority,
            allowed: record.allowed.clone().unwrap_or_default(),
            devices: record.devices.iter().map(ToString::to_string).collect(),
            vcpus,
            guest_imsic: record.guest_imsic.clone(),
            guest_msi: guest_msi(record.guest_imsic.as_ref(), record.vcpus.len()),
        }
    }

    /// What a placement would look like; lines are unknown until KVM runs it.
    pub fn planned(spec: &PlaceSpec, placement: &Placement) -> Self {
        VmView {
            vm: spec.vm.to_string(),
            class: spec.class,
            aia_mode: spec.class.aia_mode(),
            state: VmState::Advice,
            priority: spec.priority,
            allowed: spec.allowed.clone().unwrap_or_default(),
            devices: spec.devices.iter().map(ToString::to_string).collect(),
            vcpus: placement
                .vcpus
                .iter()
                .enumerate()
                .map(|(i, &(hart, backing))| VcpuView {
                    vcpu: i as u32,
                    hart,
                    backing,
                    line: None,
                    guest_imsic_gpa: guest_imsic_gpa(
                        spec.guest_imsic.as_ref(),
                        i,
                        placement.vcpus.len(),
                    ),
                    vsfile_hpa: 0,
                    tid: None,
                    expected_irq_rate: spec.expected_irq_rates.as_ref().map(|r| r[i]),
                    irq_rate: spec
                        .expected_irq_rates
                        .as_ref()
                        .map_or(0.0, |r| r[i].per_second()),
                })
                .collect(),
            guest_imsic: spec.guest_imsic.clone(),
            guest_msi: guest_msi(spec.guest_imsic.as_ref(), placement.vcpus.len()),
        }
    }
}
