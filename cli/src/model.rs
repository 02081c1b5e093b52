//! What ifactl prints, as JSON (`-o json`) and as tables. Enum values are
//! the lower-case words the CLI takes; addresses are hex strings.

use ifa_api::v1;
use serde::Serialize;

#[derive(Debug, Serialize)]
pub struct Status {
    pub host: String,
    pub version: String,
    pub harts: u32,
    pub harts_online: u32,
    pub vsfiles: VsFiles,
    pub vms: u32,
    pub vcpus: VcpuCounts,
    /// The host's IMSIC geometry; null when the firmware does not describe it.
    pub host_imsic: Option<HostImsic>,
}

#[derive(Debug, Serialize)]
pub struct HostImsic {
    pub guest_index_bits: u32,
    pub hart_index_bits: u32,
    pub group_index_bits: u32,
    pub group_index_shift: u32,
}

#[derive(Debug, Serialize)]
pub struct VsFiles {
    pub total: u32,
    pub used: u32,
    pub free: u32,
}

#[derive(Debug, Serialize)]
pub struct VcpuCounts {
    pub vsfile: u32,
    pub mrif: u32,
}

#[derive(Debug, Serialize)]
pub struct Hart {
    pub hart: u32,
    pub numa_node: u32,
    pub online: bool,
    pub drained: bool,
    pub releasing: u32,
    pub vsfiles: u32,
    pub used: u32,
    pub free: u32,
    pub vcpus: u32,
}

#[derive(Debug, Serialize)]
pub struct Vm {
    pub vm: String,
    pub class: &'static str,
    pub aia_mode: &'static str,
    pub state: &'static str,
    pub priority: i32,
    pub allowed_harts: Vec<u32>,
    pub devices: Vec<String>,
    /// The guest IMSIC layout placed with; null: unknown.
    pub guest_imsic: Option<GuestImsic>,
    /// Guest MSI geometry for irqbypass (QEMU, kvmtool); null: unknown.
    pub guest_msi: Option<GuestMsi>,
    pub vcpus: Vec<Vcpu>,
    /// Only in the reply to place and advise: who gave up a VS-file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub demoted: Option<Vec<Move>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum GuestImsic {
    Qemu { sockets: u32, guest_index_bits: u32 },
    CloudHypervisor,
    Kvmtool,
    Strided { base: String, stride: String },
    PerVcpu { gpas: Vec<String> },
}

impl GuestImsic {
    fn from_proto(l: v1::GuestImsicLayout) -> Option<Self> {
        use v1::guest_imsic_layout::Layout;
        Some(match l.layout? {
            Layout::Qemu(q) => GuestImsic::Qemu {
                sockets: q.sockets,
                guest_index_bits: q.guest_index_bits,
            },
            Layout::CloudHypervisor(_) => GuestImsic::CloudHypervisor,
            Layout::Kvmtool(_) => GuestImsic::Kvmtool,
            Layout::Strided(s) => GuestImsic::Strided {
                base: hex(s.base),
                stride: hex(s.stride),
            },
            Layout::PerVcpu(p) => GuestImsic::PerVcpu {
                gpas: p.gpas.into_iter().map(hex).collect(),
            },
        })
    }

    /// One line for the table view.
    pub fn describe(&self) -> String {
        match self {
            GuestImsic::Qemu {
                sockets,
                guest_index_bits,
            } => format!("qemu, {sockets} socket(s), guest-index-bits {guest_index_bits}"),
            GuestImsic::CloudHypervisor => "cloud-hypervisor".into(),
            GuestImsic::Kvmtool => "kvmtool".into(),
            GuestImsic::Strided { base, stride } => format!("{base} + vcpu x {stride}"),
            GuestImsic::PerVcpu { .. } => "per vCPU".into(),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct GuestMsi {
    /// Page numbers (address >> 12), as the IOMMU's device context holds them.
    pub msi_addr_mask: String,
    pub msi_addr_pattern: String,
    pub group_index_bits: u32,
    pub group_index_shift: u32,
}

#[derive(Debug, Serialize)]
pub struct Move {
    pub vm: String,
    pub vcpu: u32,
    pub from_hart: u32,
    pub to_hart: u32,
    pub backing: &'static str,
}

#[derive(Debug, Serialize)]
pub struct Migrated {
    pub vm: String,
    pub before: Vcpu,
    pub after: Vcpu,
}

#[derive(Debug, Serialize)]
pub struct Drained {
    pub hart: u32,
    pub moved: Vec<Move>,
}

#[derive(Debug, Serialize)]
pub struct Vcpu {
    pub vcpu: u32,
    pub hart: u32,
    pub backing: &'static str,
    pub is_mrif: bool,
    pub vsfile_line: Option<u32>,
    /// null: unknown (placed without a guest IMSIC layout).
    pub guest_imsic_gpa: Option<String>,
    pub vsfile_hpa: Option<String>,
    /// The VMM thread running it, once attached.
    pub tid: Option<u32>,
    /// Interrupts per second hinted at placement; null: no hint.
    pub expected_irq_rate: Option<f64>,
    /// Interrupts per second ifad counts it as taking (measured or hinted).
    pub irq_rate: f64,
}

#[derive(Debug, Serialize)]
pub struct Released {
    pub vm: String,
    pub vsfiles_freed: u32,
}

pub fn class_name(raw: i32) -> &'static str {
    match v1::Class::try_from(raw) {
        Ok(v1::Class::Guaranteed) => "guaranteed",
        Ok(v1::Class::Burstable) => "burstable",
        Ok(v1::Class::BestEffort) => "best-effort",
        _ => "unknown",
    }
}

fn mode_name(raw: i32) -> &'static str {
    match v1::AiaMode::try_from(raw) {
        Ok(v1::AiaMode::Emul) => "emul",
        Ok(v1::AiaMode::Hwaccel) => "hwaccel",
        Ok(v1::AiaMode::Auto) => "auto",
        _ => "unknown",
    }
}

fn backing_name(raw: i32) -> &'static str {
    match v1::Backing::try_from(raw) {
        Ok(v1::Backing::Vsfile) => "vsfile",
        Ok(v1::Backing::Mrif) => "mrif",
        _ => "unknown",
    }
}

fn state_name(raw: i32) -> &'static str {
    match v1::VmState::try_from(raw) {
        Ok(v1::VmState::Ready) => "ready",
        Ok(v1::VmState::Pending) => "pending",
        Ok(v1::VmState::Advice) => "advice",
        Ok(v1::VmState::Failed) => "failed",
        _ => "unknown",
    }
}

fn hex(addr: u64) -> String {
    format!("{addr:#x}")
}

impl From<v1::Status> for Status {
    fn from(s: v1::Status) -> Self {
        Status {
            host: s.host,
            version: s.version,
            harts: s.harts,
            harts_online: s.harts_online,
            vsfiles: VsFiles {
                total: s.vsfiles_total,
                used: s.vsfiles_used,
                free: s.vsfiles_free,
            },
            vms: s.vms,
            vcpus: VcpuCounts {
                vsfile: s.vcpus_vsfile,
                mrif: s.vcpus_mrif,
            },
            host_imsic: s.host_imsic.map(|g| HostImsic {
                guest_index_bits: g.guest_index_bits,
                hart_index_bits: g.hart_index_bits,
                group_index_bits: g.group_index_bits,
                group_index_shift: g.group_index_shift,
            }),
        }
    }
}

impl From<v1::Hart> for Hart {
    fn from(h: v1::Hart) -> Self {
        Hart {
            hart: h.hart,
            numa_node: h.numa_node,
            online: h.online,
            drained: h.drained,
            releasing: h.releasing,
            vsfiles: h.vsfiles,
            used: h.used,
            free: if h.online {
                h.vsfiles.saturating_sub(h.used)
            } else {
                0
            },
            vcpus: h.vcpus,
        }
    }
}

impl From<v1::Vcpu> for Vcpu {
    fn from(v: v1::Vcpu) -> Self {
        Vcpu {
            vcpu: v.vcpu,
            hart: v.hart,
            backing: backing_name(v.backing),
            is_mrif: v.is_mrif,
            vsfile_line: (v.vsfile_line != 0).then_some(v.vsfile_line),
            guest_imsic_gpa: v.guest_imsic_gpa.map(hex),
            vsfile_hpa: (v.vsfile_hpa != 0).then(|| hex(v.vsfile_hpa)),
            tid: (v.tid != 0).then_some(v.tid),
            expected_irq_rate: v.expected_irq_rate,
            irq_rate: v.irq_rate,
        }
    }
}

impl From<v1::Move> for Move {
    fn from(m: v1::Move) -> Self {
        Move {
            vm: m.vm,
            vcpu: m.vcpu,
            from_hart: m.from_hart,
            to_hart: m.to_hart,
            backing: backing_name(m.backing),
        }
    }
}

impl From<v1::Vm> for Vm {
    fn from(vm: v1::Vm) -> Self {
        Vm {
            class: class_name(vm.class),
            aia_mode: mode_name(vm.aia_mode),
            state: state_name(vm.state),
            priority: vm.priority,
            allowed_harts: vm.allowed_harts,
            vm: vm.vm,
            devices: vm.devices,
            guest_imsic: vm.guest_imsic.and_then(GuestImsic::from_proto),
            guest_msi: vm.guest_msi.map(|g| GuestMsi {
                msi_addr_mask: hex(g.msi_addr_mask),
                msi_addr_pattern: hex(g.msi_addr_pattern),
                group_index_bits: g.group_index_bits,
                group_index_shift: g.group_index_shift,
            }),
            vcpus: vm.vcpus.into_iter().map(Into::into).collect(),
            demoted: None,
        }
    }
}

impl From<v1::PlaceResponse> for Vm {
    fn from(p: v1::PlaceResponse) -> Self {
        let mut vm: Vm = p.vm.unwrap_or_default().into();
        vm.demoted = Some(p.demoted.into_iter().map(Into::into).collect());
        vm
    }
}

#[derive(Debug, Serialize)]
pub struct Event {
    pub seq: u64,
    pub time_unix_ms: i64,
    pub kind: &'static str,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub vm: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vcpu: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hart: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from_hart: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to_hart: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backing: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub class: Option<&'static str>,
    pub message: String,
}

fn event_kind_name(raw: i32) -> &'static str {
    match v1::EventKind::try_from(raw) {
        Ok(v1::EventKind::Placed) => "placed",
        Ok(v1::EventKind::Refused) => "refused",
        Ok(v1::EventKind::Demoted) => "demoted",
        Ok(v1::EventKind::Promoted) => "promoted",
        Ok(v1::EventKind::Migrated) => "migrated",
        Ok(v1::EventKind::Drained) => "drained",
        Ok(v1::EventKind::Drift) => "drift",
        Ok(v1::EventKind::Released) => "released",
        Ok(v1::EventKind::Hart) => "hart",
        _ => "unknown",
    }
}

impl From<v1::Event> for Event {
    fn from(e: v1::Event) -> Self {
        Event {
            seq: e.seq,
            time_unix_ms: e.time_unix_ms,
            kind: event_kind_name(e.kind),
            vm: e.vm,
            vcpu: e.vcpu,
            hart: e.hart,
            from_hart: e.from_hart,
            to_hart: e.to_hart,
            backing: (e.backing != 0).then(|| backing_name(e.backing)),
            class: (e.class != 0).then(|| class_name(e.class)),
            message: e.message,
        }
    }
}
