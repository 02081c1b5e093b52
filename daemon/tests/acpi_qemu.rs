//! The ACPI MADT parser on a table QEMU built, not one our own encoder
//! wrote: tests/fixtures/acpi/qemu-riscv64-virt-aia5-APIC, captured from
//! QEMU 10.0.2's riscv64 `virt` machine (aia=aplic-imsic, aia-guests=5,
//! acpi=on, 4 harts); tests/fixtures/acpi/README.md says how.
//!
//! What QEMU writes there (hw/riscv/virt-acpi-build.c,
//! `riscv_acpi_madt_add_rintc` and the IMSIC entry): one RINTC per hart
//! with hart id = UID = its index, IMSIC base `VIRT_IMSIC_S` (0x28000000) +
//! hart x `IMSIC_HART_SIZE(guest_index_bits)`, where guest_index_bits =
//! `imsic_num_bits(aia_guests + 1)` = 3 for 5 guests, so 8 pages (32 KiB)
//! per hart; one IMSIC entry with 255 ids, guest index bits 3, hart index
//! bits `imsic_num_bits(4 harts)` = 2, one socket: no group bits, group
//! shift `IMSIC_MMIO_GROUP_MIN_SHIFT` 24. It also carries an APLIC entry,
//! which the parser must step over.

use std::fs;
use std::path::PathBuf;

use ifad::core::topology::ImsicGeometry;
use ifad::host::linux::acpi::{self, Rintc};
use ifad::host::linux::discover::{Source, discover};

fn captured() -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/acpi/qemu-riscv64-virt-aia5-APIC");
    fs::read(path).unwrap()
}

const GEOMETRY: ImsicGeometry = ImsicGeometry {
    guest_index_bits: 3,
    hart_index_bits: 2,
    group_index_bits: 0,
    group_index_shift: 24,
};

#[test]
fn qemu_s_madt_gives_four_harts_and_the_imsic_geometry() {
    let table = captured();
    assert_eq!(&table[0..4], b"APIC");
    assert_eq!(table.iter().fold(0u8, |s, b| s.wrapping_add(*b)), 0);
    let madt = acpi::parse(&table).expect("a MADT with an IMSIC entry");
    let want: Vec<Rintc> = (0..4)
        .map(|h| Rintc {
            hart_id: h,
            imsic_addr: 0x2800_0000 + h * 0x8000,
            imsic_size: 8 * 4096,
        })
        .collect();
    assert_eq!(madt.harts, want);
    assert_eq!(madt.geometry, GEOMETRY);
    // 8 pages: the S-level file and 7 guest files, all 7 addressable
    // with 3 guest index bits (KVM's own count, 5, caps it in discovery).
    assert_eq!(
        madt.files(),
        (0..4)
            .map(|h| (h, 0x2800_0000 + h * 0x8000, 7))
            .collect::<Vec<_>>()
    );
}

#[test]
fn the_madt_and_the_device_tree_of_the_same_machine_agree() {
    // The same QEMU machine booted with a device tree, captured from Linux.
    let host = ifa_e2e::host_fixture("qemu-virt-aia5");
    let dt = discover(&host, None).unwrap();
    assert_eq!(dt.source, Source::DeviceTree);
    let madt = acpi::parse(&captured()).unwrap();
    assert_eq!(dt.topology.imsic(), Some(madt.geometry));
    let dt_pa: Vec<u64> = dt.topology.harts().iter().map(|h| h.imsic_pa).collect();
    let madt_pa: Vec<u64> = madt.harts.iter().map(|r| r.imsic_addr).collect();
    assert_eq!(dt_pa, madt_pa);
}

#[test]
fn an_acpi_only_host_with_qemu_s_madt_is_discovered_from_it() {
    // Derived: the captured aia5 host without its device tree, and the
    // captured MADT where Linux exposes it.
    let dir = ifa_e2e::derived_host("qemu-virt-aia5");
    fs::remove_dir_all(dir.path().join("sys/firmware/devicetree")).unwrap();
    let tables = dir.path().join("sys/firmware/acpi/tables");
    fs::create_dir_all(&tables).unwrap();
    fs::write(tables.join("APIC"), captured()).unwrap();
    let d = discover(dir.path(), None).unwrap();
    assert_eq!(d.source, Source::Acpi);
    assert_eq!(d.topology.imsic(), Some(GEOMETRY));
    let harts = d.topology.harts();
    // 7 by the MADT, capped at the 5 KVM reported in dmesg.
    assert_eq!(harts.iter().map(|h| h.vsfiles).collect::<Vec<_>>(), [5; 4]);
    assert_eq!(harts[3].imsic_pa, 0x2801_8000);
}
