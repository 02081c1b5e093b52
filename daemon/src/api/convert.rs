//! Between engine views and ifa.v1 messages.

use ifa_api::v1;

use crate::core::imsic_layout::GuestMsiGeometry;
use crate::core::{AiaMode, Backing, Class, CoreError, GuestImsicLayout, IrqRate, IrqRateHint};
use crate::engine::events::{Event, EventKind};
use crate::engine::{
    HartView, MoveOutcome, MoveView, PlaceOutcome, StatusView, VcpuView, VmState, VmView,
};

pub fn class_from_proto(raw: i32) -> Option<Class> {
    match v1::Class::try_from(raw).ok()? {
        v1::Class::Guaranteed => Some(Class::Guaranteed),
        v1::Class::Burstable => Some(Class::Burstable),
        v1::Class::BestEffort => Some(Class::BestEffort),
        v1::Class::Unspecified => None,
    }
}

fn class_to_proto(c: Class) -> v1::Class {
    match c {
        Class::Guaranteed => v1::Class::Guaranteed,
        Class::Burstable => v1::Class::Burstable,
        Class::BestEffort => v1::Class::BestEffort,
    }
}

fn mode_to_proto(m: AiaMode) -> v1::AiaMode {
    match m {
        AiaMode::Emul => v1::AiaMode::Emul,
        AiaMode::Hwaccel => v1::AiaMode::Hwaccel,
        AiaMode::Auto => v1::AiaMode::Auto,
    }
}

fn backing_to_proto(b: Backing) -> v1::Backing {
    match b {
        Backing::VsFile => v1::Backing::Vsfile,
        Backing::Mrif => v1::Backing::Mrif,
    }
}

fn state_to_proto(s: VmState) -> v1::VmState {
    match s {
        VmState::Ready => v1::VmState::Ready,
        VmState::Pending => v1::VmState::Pending,
        VmState::Advice => v1::VmState::Advice,
        VmState::Failed => v1::VmState::Failed,
    }
}

fn vcpu_to_proto(v: VcpuView) -> v1::Vcpu {
    v1::Vcpu {
        vcpu: v.vcpu,
        hart: v.hart,
        backing: backing_to_proto(v.backing).into(),
        guest_imsic_gpa: v.guest_imsic_gpa,
        vsfile_hpa: v.vsfile_hpa,
        is_mrif: v.backing == Backing::Mrif,
        vsfile_line: v.line.map_or(0, u32::from),
        tid: v.tid.unwrap_or(0),
        expected_irq_rate: v.expected_irq_rate.map(IrqRate::per_second),
        irq_rate: v.irq_rate,
    }
}

/// A request's interrupt-rate hint, unchecked: `IrqRateHint::per_vcpu`
/// checks it against the VM. `None`: the request gave none (or an empty
/// oneof).
pub fn irq_rate_hint_from_proto(h: Option<v1::ExpectedIrqRate>) -> Option<IrqRateHint> {
    use v1::expected_irq_rate::Rates;
    Some(match h?.rates? {
        Rates::EachVcpu(rate) => IrqRateHint::EachVcpu(rate),
        Rates::PerVcpu(p) => IrqRateHint::PerVcpu(p.rates),
    })
}

/// A request's layout, checked for type only: `PlaceSpec` validates it
/// against the VM. `None`: the request gave none (or an empty oneof).
pub fn layout_from_proto(
    l: Option<v1::GuestImsicLayout>,
) -> Result<Option<GuestImsicLayout>, CoreError> {
    use v1::guest_imsic_layout::Layout;
    let Some(layout) = l.and_then(|l| l.layout) else {
        return Ok(None);
    };
    Ok(Some(match layout {
        Layout::Qemu(q) => GuestImsicLayout::Qemu {
            sockets: q.sockets,
            guest_index_bits: u8::try_from(q.guest_index_bits).map_err(|_| {
                CoreError::invalid(
                    "guest_imsic.qemu.guest_index_bits",
                    format!("{} is out of range 0..=3", q.guest_index_bits),
                )
            })?,
        },
        Layout::CloudHypervisor(_) => GuestImsicLayout::CloudHypervisor,
        Layout::Kvmtool(_) => GuestImsicLayout::Kvmtool,
        Layout::Strided(s) => GuestImsicLayout::Strided {
            base: s.base,
            stride: s.stride,
        },
        Layout::PerVcpu(p) => GuestImsicLayout::PerVcpu(p.gpas),
    }))
}

fn layout_to_proto(l: GuestImsicLayout) -> v1::GuestImsicLayout {
    use v1::guest_imsic_layout::{self as g, Layout};
    let layout = match l {
        GuestImsicLayout::Qemu {
            sockets,
            guest_index_bits,
        } => Layout::Qemu(g::Qemu {
            sockets,
            guest_index_bits: u32::from(guest_index_bits),
        }),
        GuestImsicLayout::CloudHypervisor => Layout::CloudHypervisor(g::CloudHypervisor {}),
        GuestImsicLayout::Kvmtool => Layout::Kvmtool(g::Kvmtool {}),
        GuestImsicLayout::Strided { base, stride } => Layout::Strided(g::Strided { base, stride }),
        GuestImsicLayout::PerVcpu(gpas) => Layout::PerVcpu(g::PerVcpu { gpas }),
    };
    v1::GuestImsicLayout {
        layout: Some(layout),
    }
}

fn msi_to_proto(g: GuestMsiGeometry) -> v1::GuestMsiGeometry {
    v1::GuestMsiGeometry {
        msi_addr_mask: g.msi_addr_mask,
        msi_addr_pattern: g.msi_addr_pattern,
        group_index_bits: g.group_index_bits,
        group_index_shift: g.group_index_shift,
    }
}

pub fn vm_to_proto(vm: VmView) -> v1::Vm {
    v1::Vm {
        vm: vm.vm,
        class: class_to_proto(vm.class).into(),
        aia_mode: mode_to_proto(vm.aia_mode).into(),
        state: state_to_proto(vm.state).into(),
        priority: vm.priority,
        allowed_harts: vm.allowed,
        devices: vm.devices,
        vcpus: vm.vcpus.into_iter().map(vcpu_to_proto).collect(),
        guest_imsic: vm.guest_imsic.map(layout_to_proto),
        guest_msi: vm.guest_msi.map(msi_to_proto),
    }
}

pub fn move_to_proto(m: MoveView) -> v1::Move {
    v1::Move {
        vm: m.vm,
        vcpu: m.vcpu,
        from_hart: m.from,
        to_hart: m.to,
        backing: backing_to_proto(m.backing).into(),
    }
}

pub fn place_to_proto(p: PlaceOutcome) -> v1::PlaceResponse {
    v1::PlaceResponse {
        vm: Some(vm_to_proto(p.vm)),
        demoted: p.demoted.into_iter().map(move_to_proto).collect(),
    }
}

pub fn migrate_to_proto(m: MoveOutcome) -> v1::MigrateResponse {
    v1::MigrateResponse {
        before: Some(vcpu_to_proto(m.before)),
        after: Some(vcpu_to_proto(m.after)),
    }
}

pub fn status_to_proto(s: StatusView) -> v1::Status {
    v1::Status {
        host: s.host.to_string(),
        harts: s.harts,
        harts_online: s.harts_online,
        vsfiles_total: s.vsfiles_total,
        vsfiles_used: s.vsfiles_used,
        vsfiles_free: s.vsfiles_free(),
        vms: s.vms,
        vcpus_vsfile: s.vcpus_vsfile,
        vcpus_mrif: s.vcpus_mrif,
        version: env!("CARGO_PKG_VERSION").to_string(),
        host_imsic: s.host_imsic.map(|g| v1::HostImsicGeometry {
            guest_index_bits: u32::from(g.guest_index_bits),
            hart_index_bits: u32::from(g.hart_index_bits),
            group_index_bits: u32::from(g.group_index_bits),
            group_index_shift: u32::from(g.group_index_shift),
        }),
    }
}

pub fn hart_to_proto(h: HartView) -> v1::Hart {
    v1::Hart {
        hart: h.hart,
        vsfiles: h.vsfiles,
        used: h.used,
        online: h.online,
        numa_node: h.numa_node,
        vcpus: h.vcpus,
        drained: h.drained,
        releasing: h.releasing,
    }
}

pub fn event_to_proto(e: Event) -> v1::Event {
    let kind = match e.kind {
        EventKind::Placed => v1::EventKind::Placed,
        EventKind::Refused => v1::EventKind::Refused,
        EventKind::Demoted => v1::EventKind::Demoted,
        EventKind::Promoted => v1::EventKind::Promoted,
        EventKind::Migrated => v1::EventKind::Migrated,
        EventKind::Drained => v1::EventKind::Drained,
        EventKind::Drift => v1::EventKind::Drift,
        EventKind::Released => v1::EventKind::Released,
        EventKind::Hart => v1::EventKind::Hart,
    };
    v1::Event {
        seq: e.seq,
        time_unix_ms: e.time_unix_ms,
        kind: kind as i32,
        vm: e.vm.map(|v| v.to_string()).unwrap_or_default(),
        vcpu: e.vcpu,
        hart: e.hart,
        from_hart: e.from,
        to_hart: e.to,
        backing: e.backing.map_or(v1::Backing::Unspecified, backing_to_proto) as i32,
        class: e.class.map_or(v1::Class::Unspecified, class_to_proto) as i32,
        message: e.message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unspecified_or_unknown_class_is_none() {
        assert_eq!(class_from_proto(0), None);
        assert_eq!(class_from_proto(99), None);
        assert_eq!(class_from_proto(3), Some(Class::BestEffort));
    }
}
