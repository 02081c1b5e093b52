//! The IMSIC as ACPI describes it: the MADT (/sys/firmware/acpi/tables/APIC)
//! with one RINTC entry per hart {hart id, IMSIC address and size} and one
//! IMSIC entry {guest index bits, ...}. Little-endian, per the ACPI spec.

const HEADER: usize = 36 + 8;
const RINTC: u8 = 0x18;
const IMSIC: u8 = 0x19;
use crate::core::topology::{IMSIC_PAGE as PAGE, ImsicGeometry};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rintc {
    pub hart_id: u64,
    pub imsic_addr: u64,
    pub imsic_size: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Madt {
    pub harts: Vec<Rintc>,
    /// The IMSIC entry's guest, hart and group index bits and group shift.
    pub geometry: ImsicGeometry,
}

impl Madt {
    /// (hart id, S-level file address, VS-files its IMSIC region backs).
    pub fn files(&self) -> Vec<(u64, u64, u32)> {
        let max = (1u64 << self.geometry.guest_index_bits) - 1;
        self.harts
            .iter()
            .map(|r| {
                let pages = u64::from(r.imsic_size) / PAGE;
                (
                    r.hart_id,
                    r.imsic_addr,
                    pages.saturating_sub(1).min(max) as u32,
                )
            })
            .collect()
    }
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

/// Parses a MADT; `None` if it is not one or has no IMSIC entry.
pub fn parse(table: &[u8]) -> Option<Madt> {
    if table.get(0..4)? != b"APIC" {
        return None;
    }
    let len = (u32_at(table, 4)? as usize).min(table.len());
    let mut at = HEADER;
    let mut harts = Vec::new();
    // Guest, hart, group index bits and group shift: bytes 12..16.
    let mut bits = None;
    while at + 2 <= len {
        let (kind, size) = (table[at], table[at + 1] as usize);
        if size < 2 || at + size > len {
            break;
        }
        let e = &table[at..at + size];
        match kind {
            RINTC if size >= 36 => harts.push(Rintc {
                hart_id: u64_at(e, 8)?,
                imsic_addr: u64_at(e, 24)?,
                imsic_size: u32_at(e, 32)?,
            }),
            IMSIC if size >= 16 => bits = Some([e[12], e[13], e[14], e[15]]),
            _ => {}
        }
        at += size;
    }
    let [
        guest_index_bits,
        hart_index_bits,
        group_index_bits,
        group_index_shift,
    ] = bits?;
    Some(Madt {
        harts,
        geometry: ImsicGeometry {
            guest_index_bits,
            hart_index_bits,
            group_index_bits,
            group_index_shift,
        },
    })
}

/// Builds a MADT with the given harts (for tests and derived fixtures).
pub fn build(harts: &[Rintc], guest_index_bits: u8) -> Vec<u8> {
    let mut t = vec![0u8; HEADER];
    t[0..4].copy_from_slice(b"APIC");
    for (i, r) in harts.iter().enumerate() {
        let mut e = vec![0u8; 36];
        e[0] = RINTC;
        e[1] = 36;
        e[2] = 1;
        e[4..8].copy_from_slice(&1u32.to_le_bytes());
        e[8..16].copy_from_slice(&r.hart_id.to_le_bytes());
        e[16..20].copy_from_slice(&(i as u32).to_le_bytes());
        e[24..32].copy_from_slice(&r.imsic_addr.to_le_bytes());
        e[32..36].copy_from_slice(&r.imsic_size.to_le_bytes());
        t.extend(e);
    }
    let mut e = vec![0u8; 16];
    e[0] = IMSIC;
    e[1] = 16;
    e[2] = 1;
    e[8..10].copy_from_slice(&255u16.to_le_bytes());
    e[10..12].copy_from_slice(&255u16.to_le_bytes());
    e[12] = guest_index_bits;
    e[13] = 1;
    e[15] = 24;
    t.extend(e);
    let len = t.len() as u32;
    t[4..8].copy_from_slice(&len.to_le_bytes());
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_counts_files_per_hart() {
        let harts = [
            Rintc {
                hart_id: 0,
                imsic_addr: 0x2800_0000,
                imsic_size: 8 * 4096,
            },
            Rintc {
                hart_id: 5,
                imsic_addr: 0x2800_8000,
                imsic_size: 4 * 4096,
            },
        ];
        let madt = parse(&build(&harts, 3)).unwrap();
        assert_eq!(madt.harts, harts);
        assert_eq!(madt.files(), [(0, 0x2800_0000, 7), (5, 0x2800_8000, 3)]);
        let g = madt.geometry;
        assert_eq!(
            (
                g.guest_index_bits,
                g.hart_index_bits,
                g.group_index_bits,
                g.group_index_shift
            ),
            (3, 1, 0, 24)
        );
        assert_eq!(parse(b"FACP"), None);
        assert_eq!(
            parse(&build(&harts, 3)[..60]),
            None,
            "cut short: no IMSIC entry"
        );
    }
}
