use crate::core::HartId;

/// Size of one IMSIC interrupt file page.
pub const IMSIC_PAGE: u64 = 4096;

/// Most VS-files one RV64 hart can have (GEILEN <= 63).
pub const MAX_VSFILES: u8 = 63;

/// What ifad knows of one hart. `id` is the Linux logical CPU number, the
/// one `sched_setaffinity` and `/proc/irq/*/smp_affinity_list` speak.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HartInfo {
    pub id: HartId,
    /// Usable guest interrupt files; per hart, since counts may differ.
    pub vsfiles: u8,
    pub numa_node: u32,
    pub online: bool,
    /// Host address of the hart's S-level IMSIC file; VS-file `k` (1-based
    /// guest external interrupt line) is the page `k` pages above it.
    pub imsic_pa: u64,
}

impl HartInfo {
    /// Host address of VS-file `line`, the `hpa` irqbypass maps MSIs to.
    pub fn vsfile_pa(&self, line: u8) -> u64 {
        self.imsic_pa + u64::from(line) * IMSIC_PAGE
    }
}

/// The host's S-level IMSIC address geometry, host-wide as the firmware
/// gives it (device tree `riscv,*-index-bits` / `riscv,group-index-shift`,
/// or the ACPI MADT IMSIC entry). irqbypass needs it on the host side: a
/// VS-file's host address decodes into group, hart and guest index by it,
/// as the IOMMU's MSI page tables must.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImsicGeometry {
    pub guest_index_bits: u8,
    pub hart_index_bits: u8,
    pub group_index_bits: u8,
    /// Bit where the group index starts (the binding's default is 24).
    pub group_index_shift: u8,
}

/// The device tree binding's default `riscv,group-index-shift`.
pub const DEFAULT_GROUP_INDEX_SHIFT: u8 = 24;

impl ImsicGeometry {
    /// The binding's defaults for `harts` harts in one group:
    /// hart-index-bits ceil(log2(harts)), no group bits.
    pub fn single_group(harts: u32, guest_index_bits: u8) -> Self {
        ImsicGeometry {
            guest_index_bits,
            hart_index_bits: (u32::BITS - harts.saturating_sub(1).leading_zeros()) as u8,
            group_index_bits: 0,
            group_index_shift: DEFAULT_GROUP_INDEX_SHIFT,
        }
    }
}

/// QEMU virt's S-level IMSIC base, used for simulated hosts.
pub const VIRT_IMSIC_S_BASE: u64 = 0x2800_0000;

/// The host's harts, indexed by logical CPU number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topology {
    harts: Vec<HartInfo>,
    /// `None` when only the kernel log told the file count.
    imsic: Option<ImsicGeometry>,
}

impl Topology {
    /// `harts` must be numbered 0..n in order.
    pub fn new(harts: Vec<HartInfo>) -> Self {
        debug_assert!(harts.iter().enumerate().all(|(i, h)| h.id as usize == i));
        Topology { harts, imsic: None }
    }

    pub fn with_imsic(mut self, geometry: ImsicGeometry) -> Self {
        self.imsic = Some(geometry);
        self
    }

    pub fn imsic(&self) -> Option<ImsicGeometry> {
        self.imsic
    }

    /// `harts` harts with `vsfiles` files each, split into `numa_nodes`
    /// contiguous nodes, laid out like QEMU virt: each hart's IMSIC region
    /// is 2^guest-index-bits pages.
    pub fn uniform(harts: u32, vsfiles: u8, numa_nodes: u32) -> Self {
        let guest_index_bits = u8::BITS - vsfiles.leading_zeros();
        let stride = IMSIC_PAGE << guest_index_bits;
        let per_node = harts.div_ceil(numa_nodes.max(1)).max(1);
        let geometry = ImsicGeometry::single_group(harts, guest_index_bits as u8);
        Topology::new(
            (0..harts)
                .map(|id| HartInfo {
                    id,
                    vsfiles,
                    numa_node: id / per_node,
                    online: true,
                    imsic_pa: VIRT_IMSIC_S_BASE + u64::from(id) * stride,
                })
                .collect(),
        )
        .with_imsic(geometry)
    }

    /// Marks a hart on- or offline; false if there is no such hart.
    pub fn set_online(&mut self, id: HartId, online: bool) -> bool {
        match self.harts.get_mut(id as usize) {
            Some(h) => {
                h.online = online;
                true
            }
            None => false,
        }
    }

    pub fn harts(&self) -> &[HartInfo] {
        &self.harts
    }

    pub fn hart(&self, id: HartId) -> Option<&HartInfo> {
        self.harts.get(id as usize)
    }

    pub fn len(&self) -> usize {
        self.harts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.harts.is_empty()
    }

    pub fn online(&self) -> impl Iterator<Item = &HartInfo> {
        self.harts.iter().filter(|h| h.online)
    }

    /// VS-files of online harts: what placement can hand out.
    pub fn vsfiles_online(&self) -> u32 {
        self.online().map(|h| u32::from(h.vsfiles)).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uniform_lays_out_like_qemu_virt() {
        // aia-guests=5 gives guest-index-bits 3: 8 pages per hart.
        let t = Topology::uniform(4, 5, 1);
        assert_eq!(t.harts()[1].imsic_pa, VIRT_IMSIC_S_BASE + 8 * IMSIC_PAGE);
        assert_eq!(
            t.harts()[1].vsfile_pa(1),
            VIRT_IMSIC_S_BASE + 9 * IMSIC_PAGE
        );
        assert_eq!(t.vsfiles_online(), 20);
        let g = t.imsic().unwrap();
        assert_eq!((g.guest_index_bits, g.hart_index_bits), (3, 2));
        assert_eq!((g.group_index_bits, g.group_index_shift), (0, 24));
        // 63 files need all 6 bits.
        let t = Topology::uniform(2, 63, 1);
        assert_eq!(
            t.harts()[1].imsic_pa - t.harts()[0].imsic_pa,
            64 * IMSIC_PAGE
        );
    }

    #[test]
    fn uniform_splits_numa_nodes_contiguously() {
        let t = Topology::uniform(8, 7, 2);
        let nodes: Vec<u32> = t.harts().iter().map(|h| h.numa_node).collect();
        assert_eq!(nodes, [0, 0, 0, 0, 1, 1, 1, 1]);
        let mut t = Topology::uniform(3, 5, 1);
        assert!(t.set_online(2, false));
        assert!(!t.set_online(3, false));
        assert_eq!(t.vsfiles_online(), 10);
    }
}
