//! The S-level IMSIC as the device tree describes it
//! (Documentation/devicetree/bindings/interrupt-controller/riscv,imsics.yaml),
//! read from sysfs: property files hold raw big-endian cells.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// Interrupt number of the S-level external interrupt in a hart's
/// interrupts-extended entry (11 is M-level).
const IRQ_S_EXT: u32 = 9;

/// Nodes deeper than this are not searched (the IMSIC sits under /soc).
const MAX_DEPTH: usize = 4;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Imsic {
    pub node: PathBuf,
    pub guest_index_bits: u32,
    /// `riscv,hart-index-bits`; absent: the binding's ceil(log2(harts)).
    pub hart_index_bits: Option<u32>,
    /// `riscv,group-index-bits` (default 0), `riscv,group-index-shift`
    /// (default 24).
    pub group_index_bits: u32,
    pub group_index_shift: u32,
    /// MMIO regions (address, size), one per group, in order.
    pub regions: Vec<(u64, u64)>,
    /// Hart ids in interrupts-extended order: entry i owns the i-th slice
    /// of 2^guest_index_bits pages of the concatenated regions.
    pub harts: Vec<u32>,
}

use crate::core::topology::{DEFAULT_GROUP_INDEX_SHIFT, IMSIC_PAGE as PAGE, ImsicGeometry};

impl Imsic {
    pub fn geometry(&self) -> ImsicGeometry {
        let defaults =
            ImsicGeometry::single_group(self.harts.len() as u32, self.guest_index_bits as u8);
        ImsicGeometry {
            hart_index_bits: self
                .hart_index_bits
                .map_or(defaults.hart_index_bits, |b| b as u8),
            group_index_bits: self.group_index_bits as u8,
            group_index_shift: self.group_index_shift as u8,
            ..defaults
        }
    }

    /// Per hart in `harts` order: (address of its S-level file, VS-files the
    /// MMIO regions really back, at most 2^guest-index-bits - 1).
    pub fn files(&self) -> Vec<(u64, u32)> {
        let per_hart = 1u64 << self.guest_index_bits;
        let stride = per_hart * PAGE;
        (0..self.harts.len() as u64)
            .map(|i| {
                let mut off = i * stride;
                for &(addr, size) in &self.regions {
                    if off < size {
                        let backed = ((size - off) / PAGE).min(per_hart);
                        return (addr + off, backed.saturating_sub(1) as u32);
                    }
                    off -= size;
                }
                (0, 0)
            })
            .collect()
    }
}

fn cells(path: &Path) -> io::Result<Vec<u32>> {
    let bytes = fs::read(path)?;
    Ok(bytes
        .chunks_exact(4)
        .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
        .collect())
}

fn cell(path: &Path) -> Option<u32> {
    cells(path).ok()?.first().copied()
}

fn strings(path: &Path) -> Vec<String> {
    fs::read(path)
        .map(|b| {
            b.split(|&c| c == 0)
                .filter(|s| !s.is_empty())
                .map(|s| String::from_utf8_lossy(s).into_owned())
                .collect()
        })
        .unwrap_or_default()
}

fn join(cells: &[u32]) -> u64 {
    cells.iter().fold(0, |acc, &c| (acc << 32) | u64::from(c))
}

/// The S-level IMSIC under `base` (/sys/firmware/devicetree/base), if any.
pub fn s_level_imsic(base: &Path) -> io::Result<Option<Imsic>> {
    if !base.is_dir() {
        return Ok(None);
    }
    let cpus = cpu_phandles(&base.join("cpus"))?;
    let mut found = None;
    walk(base, 0, &mut |node, parent| {
        if found.is_some()
            || !strings(&node.join("compatible"))
                .iter()
                .any(|c| c == "riscv,imsics")
        {
            return;
        }
        let Ok(ext) = cells(&node.join("interrupts-extended")) else {
            return;
        };
        let pairs: Vec<(u32, u32)> = ext.chunks_exact(2).map(|p| (p[0], p[1])).collect();
        if pairs.is_empty() || pairs.iter().any(|&(_, irq)| irq != IRQ_S_EXT) {
            return;
        }
        let harts: Option<Vec<u32>> = pairs
            .iter()
            .map(|(ph, _)| cpus.iter().find(|(p, _)| p == ph).map(|&(_, h)| h))
            .collect();
        let ac = cell(&parent.join("#address-cells")).unwrap_or(2) as usize;
        let sc = cell(&parent.join("#size-cells")).unwrap_or(2) as usize;
        let reg = cells(&node.join("reg")).unwrap_or_default();
        let regions = reg
            .chunks_exact(ac + sc)
            .map(|r| (join(&r[..ac]), join(&r[ac..])))
            .collect();
        if let Some(harts) = harts {
            found = Some(Imsic {
                node: node.to_path_buf(),
                guest_index_bits: cell(&node.join("riscv,guest-index-bits")).unwrap_or(0),
                hart_index_bits: cell(&node.join("riscv,hart-index-bits")),
                group_index_bits: cell(&node.join("riscv,group-index-bits")).unwrap_or(0),
                group_index_shift: cell(&node.join("riscv,group-index-shift"))
                    .unwrap_or(u32::from(DEFAULT_GROUP_INDEX_SHIFT)),
                regions,
                harts,
            });
        }
    })?;
    Ok(found)
}

/// (phandle of the hart's interrupt controller, hart id) per /cpus/cpu@*.
fn cpu_phandles(cpus: &Path) -> io::Result<Vec<(u32, u32)>> {
    let mut out = Vec::new();
    let Ok(entries) = fs::read_dir(cpus) else {
        return Ok(out);
    };
    let ac = cell(&cpus.join("#address-cells")).unwrap_or(1) as usize;
    for entry in entries {
        let cpu = entry?.path();
        if !cpu
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with("cpu@"))
        {
            continue;
        }
        let hart = cells(&cpu.join("reg"))
            .ok()
            .map(|r| join(&r[..ac.min(r.len())]));
        let phandle = cell(&cpu.join("interrupt-controller/phandle"));
        if let (Some(hart), Some(phandle)) = (hart, phandle) {
            out.push((phandle, hart as u32));
        }
    }
    Ok(out)
}

fn walk(node: &Path, depth: usize, f: &mut dyn FnMut(&Path, &Path)) -> io::Result<()> {
    if depth > MAX_DEPTH {
        return Ok(());
    }
    for entry in fs::read_dir(node)? {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            let child = entry.path();
            f(&child, node);
            walk(&child, depth + 1, f)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_follow_what_the_regions_back() {
        let imsic = Imsic {
            node: PathBuf::new(),
            guest_index_bits: 3,
            hart_index_bits: None,
            group_index_bits: 1,
            group_index_shift: 24,
            // Two groups of two harts; the second region is cut short.
            regions: vec![(0x2800_0000, 16 * PAGE), (0x2900_0000, 12 * PAGE)],
            harts: vec![0, 1, 2, 3],
        };
        assert_eq!(
            imsic.files(),
            [
                (0x2800_0000, 7),
                (0x2800_8000, 7),
                (0x2900_0000, 7),
                (0x2900_8000, 3)
            ]
        );
        let g = imsic.geometry();
        // 4 harts: 2 hart-index bits by the binding's default.
        assert_eq!(
            (
                g.guest_index_bits,
                g.hart_index_bits,
                g.group_index_bits,
                g.group_index_shift
            ),
            (3, 2, 1, 24)
        );
    }
}
