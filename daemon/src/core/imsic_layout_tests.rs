//! Expected addresses are written out from each VMM's rule by hand, not
//! computed with the code under test.

use super::*;

const KIB4: u64 = 0x1000;
const MIB16: u64 = 0x100_0000;

fn gpas(layout: &GuestImsicLayout, vcpus: u32) -> Vec<u64> {
    layout.validate(vcpus).expect("valid layout");
    (0..vcpus).map(|v| layout.gpa(v, vcpus).unwrap()).collect()
}

fn field_of(layout: GuestImsicLayout, vcpus: u32) -> &'static str {
    match layout.validate(vcpus) {
        Err(CoreError::InvalidArgument { field, .. }) => field,
        other => panic!("expected InvalidArgument, got {other:?}"),
    }
}

#[test]
fn qemu_one_socket_without_guest_files_is_one_page_per_vcpu() {
    let l = GuestImsicLayout::Qemu {
        sockets: 1,
        guest_index_bits: 0,
    };
    assert_eq!(
        gpas(&l, 4),
        [0x2800_0000, 0x2800_1000, 0x2800_2000, 0x2800_3000]
    );
}

#[test]
fn qemu_two_sockets_with_guest_index_bits_one() {
    // -smp 4,sockets=2 with aia-guests=1: harts 0-1 on socket 0, 2-3 on
    // socket 1 (16 MiB up); two pages (8 KiB) per hart.
    let l = GuestImsicLayout::Qemu {
        sockets: 2,
        guest_index_bits: 1,
    };
    assert_eq!(
        gpas(&l, 4),
        [0x2800_0000, 0x2800_2000, 0x2900_0000, 0x2900_2000]
    );
}

#[test]
fn qemu_uneven_split_puts_the_rest_on_the_last_socket() {
    // 7 vCPUs over 3 sockets: 2, 2, 3 (hw/riscv/numa.c), gib 2 = 16 KiB.
    let l = GuestImsicLayout::Qemu {
        sockets: 3,
        guest_index_bits: 2,
    };
    let b = 0x2800_0000;
    assert_eq!(
        gpas(&l, 7),
        [
            b,
            b + 0x4000,
            b + MIB16,
            b + MIB16 + 0x4000,
            b + 2 * MIB16,
            b + 2 * MIB16 + 0x4000,
            b + 2 * MIB16 + 0x8000,
        ]
    );
}

#[test]
fn cloud_hypervisor_and_kvmtool_defaults() {
    assert_eq!(
        gpas(&GuestImsicLayout::CloudHypervisor, 3),
        [0x0400_0000, 0x0400_1000, 0x0400_2000]
    );
    assert_eq!(
        gpas(&GuestImsicLayout::Kvmtool, 3),
        [0x0800_0000, 0x0800_1000, 0x0800_2000]
    );
}

#[test]
fn strided_and_per_vcpu() {
    let l = GuestImsicLayout::Strided {
        base: 0x1_0000_0000,
        stride: 0x10000,
    };
    assert_eq!(gpas(&l, 3), [0x1_0000_0000, 0x1_0001_0000, 0x1_0002_0000]);
    let l = GuestImsicLayout::PerVcpu(vec![0x9000_0000, 0x8000_0000]);
    assert_eq!(gpas(&l, 2), [0x9000_0000, 0x8000_0000]);
    assert_eq!(l.gpa(2, 2), None);
}

#[test]
fn qemu_refusals_name_their_field() {
    let q = |sockets, guest_index_bits| GuestImsicLayout::Qemu {
        sockets,
        guest_index_bits,
    };
    assert_eq!(field_of(q(0, 0), 4), "guest_imsic.qemu.sockets");
    assert_eq!(field_of(q(5, 0), 8), "guest_imsic.qemu.sockets");
    assert_eq!(field_of(q(3, 0), 2), "guest_imsic.qemu.sockets");
    assert_eq!(field_of(q(1, 4), 2), "guest_imsic.qemu.guest_index_bits");
    // 1024 vCPUs x 32 KiB = 32 MiB: two sockets' worth.
    assert_eq!(field_of(q(1, 3), 1024), "guest_imsic.qemu.sockets");
    assert!(q(2, 3).validate(1024).is_ok());
    // 513 x 32 KiB is one page more than 16 MiB.
    assert_eq!(field_of(q(1, 3), 513), "guest_imsic.qemu.sockets");
    assert!(q(1, 3).validate(512).is_ok());
}

#[test]
fn strided_refusals_name_their_field() {
    let s = |base, stride| GuestImsicLayout::Strided { base, stride };
    assert_eq!(field_of(s(0x1234, KIB4), 2), "guest_imsic.strided.base");
    assert_eq!(field_of(s(0x1000, 0), 2), "guest_imsic.strided.stride");
    assert_eq!(field_of(s(0x1000, 0x800), 2), "guest_imsic.strided.stride");
    assert_eq!(field_of(s(0x1000, 0x1800), 2), "guest_imsic.strided.stride");
    // The last page must end at or below 2^59.
    let top = (1u64 << 59) - KIB4;
    assert!(s(top, KIB4).validate(1).is_ok());
    assert_eq!(field_of(s(top, KIB4), 2), "guest_imsic.strided.stride");
    assert_eq!(
        field_of(s(top, u64::MAX - 0xfff), 3),
        "guest_imsic.strided.stride"
    );
}

#[test]
fn per_vcpu_refusals_name_their_field() {
    let f = "guest_imsic.per_vcpu.gpas";
    let p = GuestImsicLayout::PerVcpu;
    assert_eq!(field_of(p(vec![0x1000]), 2), f);
    assert_eq!(field_of(p(vec![0x1000, 0x2001]), 2), f);
    assert_eq!(field_of(p(vec![0x1000, 0x1000]), 2), f);
    assert_eq!(field_of(p(vec![0x1000, 1 << 59]), 2), f);
}

#[test]
fn qemu_msi_geometry_matches_what_qemu_tells_kvm() {
    // 2 sockets x 2 harts, gib 1: QEMU sets group bits 2 (find_last_bit(2)
    // + 1), shift 24, hart bits 1, guest bits 1. Mask in page numbers:
    // group 0b11 at bit 12, then 2 low bits.
    let l = GuestImsicLayout::Qemu {
        sockets: 2,
        guest_index_bits: 1,
    };
    let g = l.msi_geometry(4).unwrap();
    assert_eq!(g.group_index_bits, 2);
    assert_eq!(g.group_index_shift, 24);
    assert_eq!(g.msi_addr_mask, 0x3003);
    assert_eq!(g.msi_addr_pattern, 0x28000);
    // Every vCPU's page matches the pattern under the mask.
    for v in 0..4 {
        assert_eq!((l.gpa(v, 4).unwrap() >> 12) & !g.msi_addr_mask, 0x28000);
    }
    // One socket of 4: no group bits, hart bits 2.
    let one = GuestImsicLayout::Qemu {
        sockets: 1,
        guest_index_bits: 0,
    };
    let g = one.msi_geometry(4).unwrap();
    assert_eq!((g.group_index_bits, g.msi_addr_mask), (0, 0b11));
    // Without groups QEMU sets no shift, and neither does ifad.
    assert_eq!(g.group_index_shift, 0);
}

#[test]
fn qemu_may_have_as_many_sockets_as_vcpus() {
    let l = GuestImsicLayout::Qemu {
        sockets: 2,
        guest_index_bits: 0,
    };
    assert_eq!(gpas(&l, 2), [0x2800_0000, 0x2800_0000 + MIB16]);
    // QEMU virt's maximum of 4 sockets is allowed.
    let four = GuestImsicLayout::Qemu {
        sockets: 4,
        guest_index_bits: 0,
    };
    assert_eq!(gpas(&four, 4)[3], 0x2800_0000 + 3 * MIB16);
}

#[test]
fn msi_geometry_only_where_the_vmm_rule_is_known() {
    let g = GuestImsicLayout::Kvmtool.msi_geometry(3).unwrap();
    assert_eq!((g.msi_addr_mask, g.msi_addr_pattern), (0b11, 0x8000));
    assert_eq!(
        GuestImsicLayout::Kvmtool
            .msi_geometry(1)
            .unwrap()
            .msi_addr_mask,
        0
    );
    assert_eq!(GuestImsicLayout::CloudHypervisor.msi_geometry(3), None);
    let s = GuestImsicLayout::Strided {
        base: 0x1000,
        stride: 0x1000,
    };
    assert_eq!(s.msi_geometry(3), None);
}
