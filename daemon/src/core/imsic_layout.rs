//! Where a VM's guest IMSIC pages are: the VMM's choice, told to ifad at
//! placement. KVM will not say (since Linux ddba91801aeb it answers EIO to
//! VM, vCPU and device ioctls from any process but the VM's creator), so
//! ifad records what the orchestrator gives and never invents an address:
//! a VM placed without a layout has none ("unknown").
//!
//! Constants are the VMMs' own, checked in their sources:
//! - QEMU virt (hw/riscv/virt.c, include/hw/riscv/virt.h,
//!   include/hw/intc/riscv_imsic.h): S-level IMSICs at `VIRT_IMSIC_S`
//!   0x2800_0000, one 16 MiB group per socket (`VIRT_IMSIC_GROUP_MAX_SIZE`
//!   = 1 << `IMSIC_MMIO_GROUP_MIN_SHIFT` 24), harts of a socket
//!   `IMSIC_HART_SIZE(guest_bits)` = 4 KiB << guest-index-bits apart;
//!   at most `VIRT_SOCKETS_MAX` 4 sockets; vCPUs split over sockets as
//!   hw/riscv/numa.c `riscv_numa_get_default_cpu_node_id` does (`cpus /
//!   sockets` each, the rest on the last); `aia-guests` at most 7, so
//!   guest-index-bits at most 3.
//! - cloud-hypervisor (arch/src/riscv64/layout.rs, its AIA device):
//!   `IMSIC_START` 0x0400_0000 + vCPU x `KVM_DEV_RISCV_IMSIC_SIZE` (4 KiB).
//! - kvmtool (riscv/aia.c, riscv/include/kvm/kvm-arch.h): `RISCV_IRQCHIP`
//!   0x0800_0000 + vCPU x 4 KiB.

use crate::core::CoreError;
use crate::core::topology::IMSIC_PAGE;

/// QEMU virt's `VIRT_IMSIC_S` base.
pub const QEMU_IMSIC_S_BASE: u64 = 0x2800_0000;
/// QEMU virt's per-socket IMSIC window (`IMSIC_MMIO_GROUP_MIN_SHIFT`).
pub const QEMU_GROUP_SHIFT: u32 = 24;
/// QEMU virt's `VIRT_SOCKETS_MAX`.
pub const QEMU_MAX_SOCKETS: u32 = 4;
/// Guest-index-bits of QEMU's `aia-guests` maximum (7 guest files).
pub const QEMU_MAX_GUEST_INDEX_BITS: u8 = 3;
/// cloud-hypervisor's `IMSIC_START`.
pub const CLOUD_HYPERVISOR_IMSIC_BASE: u64 = 0x0400_0000;
/// kvmtool's `RISCV_IRQCHIP`.
pub const KVMTOOL_IMSIC_BASE: u64 = 0x0800_0000;
/// Widest guest physical address KVM's G-stage can map (Sv57x4).
pub const GUEST_ADDRESS_BITS: u32 = 59;

/// A VM's guest IMSIC layout, as given at placement.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GuestImsicLayout {
    /// QEMU `virt`, with its `-smp sockets=` (NUMA nodes) and the guest's
    /// own guest-index-bits (`aia-guests`; 0 for a guest without nested
    /// virtualization).
    Qemu {
        sockets: u32,
        guest_index_bits: u8,
    },
    CloudHypervisor,
    Kvmtool,
    /// vCPU `i` at `base + i * stride`.
    Strided {
        base: u64,
        stride: u64,
    },
    /// One page per vCPU, in vCPU order.
    PerVcpu(Vec<u64>),
}

/// The guest-side MSI address geometry the RISC-V IOMMU irqbypass RFC v2
/// (`riscv_iommu_ir_vcpu_info`) takes from the VM's KVM AIA device: mask
/// and pattern are in page-number units (address >> 12), as the IOMMU's
/// device context holds them and KVM computes them
/// (`kvm_riscv_aia_msi_addr_mask`: group bits at group_shift - 12, then
/// hart + guest bits).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GuestMsiGeometry {
    pub msi_addr_mask: u64,
    pub msi_addr_pattern: u64,
    pub group_index_bits: u32,
    /// Meaningless (0) when `group_index_bits` is 0: the IOMMU then ignores it.
    pub group_index_shift: u32,
}

/// Bits needed to number `n` things 0..n (0 for one thing): Linux's
/// `fls_long(n - 1)`.
fn index_bits(n: u32) -> u32 {
    u32::BITS - n.saturating_sub(1).leading_zeros()
}

impl GuestImsicLayout {
    /// Checks the layout for a VM of `vcpus` vCPUs; errors name the
    /// ifa.v1 field at fault.
    pub fn validate(&self, vcpus: u32) -> Result<(), CoreError> {
        match self {
            GuestImsicLayout::Qemu {
                sockets,
                guest_index_bits,
            } => {
                let sockets = *sockets;
                if sockets == 0 || sockets > QEMU_MAX_SOCKETS || sockets > vcpus {
                    return Err(CoreError::invalid(
                        "guest_imsic.qemu.sockets",
                        format!(
                            "{sockets} is out of range 1..={} (QEMU virt has at most {QEMU_MAX_SOCKETS} sockets, and no more than the VM's {vcpus} vCPUs)",
                            QEMU_MAX_SOCKETS.min(vcpus)
                        ),
                    ));
                }
                if *guest_index_bits > QEMU_MAX_GUEST_INDEX_BITS {
                    return Err(CoreError::invalid(
                        "guest_imsic.qemu.guest_index_bits",
                        format!(
                            "{guest_index_bits} is out of range 0..={QEMU_MAX_GUEST_INDEX_BITS} (QEMU's aia-guests is at most 7)"
                        ),
                    ));
                }
                let largest = u64::from(qemu_largest_socket(vcpus, sockets));
                let hart_size = IMSIC_PAGE << guest_index_bits;
                if largest * hart_size > 1 << QEMU_GROUP_SHIFT {
                    return Err(CoreError::invalid(
                        "guest_imsic.qemu.sockets",
                        format!(
                            "{largest} vCPUs of {hart_size:#x} bytes each do not fit one socket's 16 MiB IMSIC window: use more sockets"
                        ),
                    ));
                }
                Ok(())
            }
            // Their windows (64 MiB, 128 MiB) hold far more than KVM's
            // 1024 vCPUs: nothing to check.
            GuestImsicLayout::CloudHypervisor | GuestImsicLayout::Kvmtool => Ok(()),
            GuestImsicLayout::Strided { base, stride } => {
                check_page("guest_imsic.strided.base", *base)?;
                if *stride < IMSIC_PAGE || stride % IMSIC_PAGE != 0 {
                    return Err(CoreError::invalid(
                        "guest_imsic.strided.stride",
                        format!("{stride:#x} is not a positive multiple of 4 KiB"),
                    ));
                }
                let last = u64::from(vcpus.saturating_sub(1))
                    .checked_mul(*stride)
                    .and_then(|off| off.checked_add(*base));
                check_in_guest("guest_imsic.strided.stride", last)
            }
            GuestImsicLayout::PerVcpu(gpas) => {
                let field = "guest_imsic.per_vcpu.gpas";
                if gpas.len() != vcpus as usize {
                    return Err(CoreError::invalid(
                        field,
                        format!("{} addresses for {vcpus} vCPUs", gpas.len()),
                    ));
                }
                let mut seen = std::collections::BTreeSet::new();
                for &gpa in gpas {
                    check_page(field, gpa)?;
                    check_in_guest(field, Some(gpa))?;
                    // Aligned single pages overlap only if equal.
                    if !seen.insert(gpa) {
                        return Err(CoreError::invalid(
                            field,
                            format!("{gpa:#x} is given to two vCPUs"),
                        ));
                    }
                }
                Ok(())
            }
        }
    }

    /// Guest physical address of `vcpu`'s IMSIC page; `None` past the
    /// end of a per-vCPU list. The layout must have passed `validate` for
    /// a VM with more than `vcpu` vCPUs (QEMU needs that count: `vcpus`).
    pub fn gpa(&self, vcpu: u32, vcpus: u32) -> Option<u64> {
        let v = u64::from(vcpu);
        match self {
            GuestImsicLayout::Qemu {
                sockets,
                guest_index_bits,
            } => {
                // max(1): a layout that failed validate must not divide by 0.
                let per = (vcpus / sockets).max(1);
                let socket = (vcpu / per).min(sockets.saturating_sub(1));
                let local = vcpu - socket * per;
                Some(
                    QEMU_IMSIC_S_BASE
                        + (u64::from(socket) << QEMU_GROUP_SHIFT)
                        + u64::from(local) * (IMSIC_PAGE << guest_index_bits),
                )
            }
            GuestImsicLayout::CloudHypervisor => Some(CLOUD_HYPERVISOR_IMSIC_BASE + v * IMSIC_PAGE),
            GuestImsicLayout::Kvmtool => Some(KVMTOOL_IMSIC_BASE + v * IMSIC_PAGE),
            GuestImsicLayout::Strided { base, stride } => Some(base + v * stride),
            GuestImsicLayout::PerVcpu(gpas) => gpas.get(vcpu as usize).copied(),
        }
    }

    /// What the VMM tells KVM's AIA device, where ifad knows the VMM's
    /// rule: QEMU (target/riscv/kvm/kvm-cpu.c `kvm_riscv_aia_create`) and
    /// kvmtool (riscv/aia.c). `None` where only the addresses are known
    /// (strided, per-vCPU) or the VMM's settings were not checked
    /// (cloud-hypervisor): an invented mask would misroute MSIs.
    pub fn msi_geometry(&self, vcpus: u32) -> Option<GuestMsiGeometry> {
        let (base, group_bits, group_shift, hart_bits, guest_bits) = match self {
            GuestImsicLayout::Qemu {
                sockets,
                guest_index_bits,
            } => {
                // QEMU sets group bits only with several sockets, and
                // then to find_last_bit(sockets) + 1.
                let group_bits = if *sockets > 1 {
                    u32::BITS - sockets.leading_zeros()
                } else {
                    0
                };
                let shift = if group_bits > 0 { QEMU_GROUP_SHIFT } else { 0 };
                let hart_bits = index_bits(qemu_largest_socket(vcpus, *sockets));
                (
                    QEMU_IMSIC_S_BASE,
                    group_bits,
                    shift,
                    hart_bits,
                    u32::from(*guest_index_bits),
                )
            }
            // kvmtool: hart bits fls_long(nrcpus - 1), no groups, no
            // guest files.
            GuestImsicLayout::Kvmtool => (KVMTOOL_IMSIC_BASE, 0, 0, index_bits(vcpus), 0),
            GuestImsicLayout::CloudHypervisor
            | GuestImsicLayout::Strided { .. }
            | GuestImsicLayout::PerVcpu(_) => return None,
        };
        let page_shift = IMSIC_PAGE.trailing_zeros();
        let group_mask = ((1u64 << group_bits) - 1) << group_shift.saturating_sub(page_shift);
        let mask = group_mask | ((1u64 << (hart_bits + guest_bits)) - 1);
        Some(GuestMsiGeometry {
            msi_addr_mask: mask,
            msi_addr_pattern: (base >> page_shift) & !mask,
            group_index_bits: group_bits,
            group_index_shift: group_shift,
        })
    }
}

/// vCPUs on QEMU's fullest socket: the last one takes the remainder.
fn qemu_largest_socket(vcpus: u32, sockets: u32) -> u32 {
    let sockets = sockets.max(1);
    vcpus - (vcpus / sockets) * (sockets - 1)
}

fn check_page(field: &'static str, addr: u64) -> Result<(), CoreError> {
    if addr % IMSIC_PAGE != 0 {
        return Err(CoreError::invalid(
            field,
            format!("{addr:#x} is not 4 KiB aligned"),
        ));
    }
    Ok(())
}

/// `last_page` is the start of the highest page; `None`: it overflowed.
fn check_in_guest(field: &'static str, last_page: Option<u64>) -> Result<(), CoreError> {
    let limit = 1u64 << GUEST_ADDRESS_BITS;
    match last_page.and_then(|p| p.checked_add(IMSIC_PAGE)) {
        Some(end) if end <= limit => Ok(()),
        _ => Err(CoreError::invalid(
            field,
            format!(
                "the guest IMSIC pages end beyond the guest's {GUEST_ADDRESS_BITS}-bit physical address space"
            ),
        )),
    }
}

#[cfg(test)]
#[path = "imsic_layout_tests.rs"]
mod tests;
