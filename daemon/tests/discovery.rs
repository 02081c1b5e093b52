//! Discovery against hosts captured from a real Linux 7.2 kernel
//! (tests/fixtures/hosts) and hosts derived from them by editing copies.

use std::fs;
use std::path::Path;

use ifad::host::linux::acpi::{self, Rintc};
use ifad::host::linux::discover::{DiscoverError, Source, discover};

use ifa_e2e::{derived_host as derived, host_fixture as fixture};

fn files(root: &Path) -> Vec<u8> {
    let d = discover(root, None).unwrap();
    d.topology.harts().iter().map(|h| h.vsfiles).collect()
}

#[test]
fn qemu_aia5_is_four_harts_with_five_files_from_the_device_tree() {
    let d = discover(&fixture("qemu-virt-aia5"), None).unwrap();
    assert_eq!(d.source, Source::DeviceTree);
    assert!(d.warnings.is_empty(), "{:?}", d.warnings);
    let t = &d.topology;
    assert_eq!(t.len(), 4);
    for h in t.harts() {
        // guest-index-bits 3 would allow 7; KVM found 5 HGEIE lines.
        assert_eq!(h.vsfiles, 5);
        assert!(h.online);
        // Each hart's IMSIC slice is 2^3 pages of the region at 0x28000000.
        assert_eq!(h.imsic_pa, 0x2800_0000 + u64::from(h.id) * 8 * 4096);
    }
}

#[test]
fn two_groups_and_numa_nodes_from_the_aia7_capture() {
    let d = discover(&fixture("qemu-virt-aia7-numa2"), None).unwrap();
    let t = &d.topology;
    assert_eq!(t.len(), 8);
    assert!(t.harts().iter().all(|h| h.vsfiles == 7));
    let nodes: Vec<u32> = t.harts().iter().map(|h| h.numa_node).collect();
    assert_eq!(nodes, [0, 0, 0, 0, 1, 1, 1, 1]);
    // Hart index 4 is the first of the second group's region.
    let cpu_of_hart = |hart: u32| d.hart_ids.iter().position(|&h| h == hart).unwrap();
    let pa = t.harts()[cpu_of_hart(4)].imsic_pa;
    assert_eq!(pa, 0x2900_0000, "{pa:#x}");
}

#[test]
fn aia_without_guest_files_starts_with_a_warning() {
    let d = discover(&fixture("qemu-virt-aia0"), None).unwrap();
    assert!(d.topology.harts().iter().all(|h| h.vsfiles == 0));
    assert!(
        d.warnings.iter().any(|w| w.contains("only best-effort")),
        "{:?}",
        d.warnings
    );
}

#[test]
fn a_host_without_aia_is_refused() {
    let e = discover(&fixture("qemu-virt-noaia"), None).unwrap_err();
    assert!(matches!(e, DiscoverError::NoAia(_)), "{e}");
    assert!(e.to_string().contains("no AIA"), "{e}");
}

#[test]
fn per_hart_counts_differ_when_a_region_backs_fewer_pages() {
    // Derived: the second IMSIC group's region cut from 32 to 28 pages, so
    // the last hart of that group has 4 pages: 3 VS-files.
    let dir = derived("qemu-virt-aia7-numa2");
    let reg = dir
        .path()
        .join("sys/firmware/devicetree/base/soc/interrupt-controller@28000000/reg");
    let mut bytes = fs::read(&reg).unwrap();
    bytes[28..32].copy_from_slice(&(28u32 * 4096).to_be_bytes());
    fs::write(&reg, bytes).unwrap();
    let d = discover(dir.path(), None).unwrap();
    let short: Vec<u32> = d
        .topology
        .harts()
        .iter()
        .filter(|h| h.vsfiles != 7)
        .map(|h| (d.hart_ids[h.id as usize], h.vsfiles))
        .map(|(hart, files)| {
            assert_eq!(files, 3);
            hart
        })
        .collect();
    assert_eq!(short.len(), 1, "{:?}", d.topology);
    assert!(
        d.warnings
            .iter()
            .any(|w| w.contains("fewer than the server-SoC minimum"))
    );
}

#[test]
fn an_offline_hart_is_known_but_offline() {
    let dir = derived("qemu-virt-aia5");
    fs::write(dir.path().join("sys/devices/system/cpu/online"), "0,2-3\n").unwrap();
    let d = discover(dir.path(), None).unwrap();
    let online: Vec<bool> = d.topology.harts().iter().map(|h| h.online).collect();
    assert_eq!(online, [true, false, true, true]);
    assert_eq!(d.topology.vsfiles_online(), 15);
}

#[test]
fn without_a_device_tree_the_kernel_log_gives_the_count() {
    let dir = derived("qemu-virt-aia5");
    fs::remove_dir_all(dir.path().join("sys/firmware/devicetree")).unwrap();
    let d = discover(dir.path(), None).unwrap();
    assert_eq!(d.source, Source::KernelLog);
    assert_eq!(files(dir.path()), [5, 5, 5, 5]);
    fs::write(dir.path().join("dmesg.txt"), "nothing useful\n").unwrap();
    assert!(matches!(
        discover(dir.path(), None),
        Err(DiscoverError::NoFileCount(_))
    ));
}

#[test]
fn configuration_may_only_lower_counts() {
    let root = fixture("qemu-virt-aia5");
    let d = discover(&root, Some(3)).unwrap();
    assert!(d.topology.harts().iter().all(|h| h.vsfiles == 3));
    let d = discover(&root, Some(40)).unwrap();
    assert!(d.topology.harts().iter().all(|h| h.vsfiles == 5));
}

#[test]
fn refuses_without_kvm_or_the_hypervisor_extension() {
    let dir = derived("qemu-virt-aia5");
    fs::remove_file(dir.path().join("dev/kvm")).unwrap();
    let e = discover(dir.path(), None).unwrap_err();
    assert!(matches!(e, DiscoverError::NoKvm(_)), "{e}");

    let dir = derived("qemu-virt-aia5");
    let cpuinfo = dir.path().join("proc/cpuinfo");
    let text = fs::read_to_string(&cpuinfo)
        .unwrap()
        .replace("rv64imafdch_", "rv64imafdc_");
    fs::write(&cpuinfo, text).unwrap();
    let e = discover(dir.path(), None).unwrap_err();
    assert!(matches!(e, DiscoverError::NoHypervisor(_)), "{e}");
}

#[test]
fn logical_cpus_map_to_hart_ids_from_cpuinfo() {
    // The no-AIA capture numbers CPU 0 as hart 3; add AIA to its ISA lines
    // to get past the AIA check and see the mapping.
    let dir = derived("qemu-virt-noaia");
    let cpuinfo = dir.path().join("proc/cpuinfo");
    let text = fs::read_to_string(&cpuinfo)
        .unwrap()
        .replace("_sstc", "_ssaia_sstc");
    fs::write(&cpuinfo, text).unwrap();
    fs::write(
        dir.path().join("dmesg.txt"),
        "kvm [1]: AIA available with 5 guest external interrupts\n",
    )
    .unwrap();
    let d = discover(dir.path(), None).unwrap();
    assert_eq!(d.hart_ids[0], 3);
}

#[test]
fn acpi_only_hosts_are_read_from_the_madt() {
    // Derived: the device tree removed and a MADT written with RINTC entries
    // for harts 0-3 (hart 3's IMSIC region backs only 4 pages) and an IMSIC
    // entry with guest-index-bits 3.
    let dir = derived("qemu-virt-aia5");
    fs::remove_dir_all(dir.path().join("sys/firmware/devicetree")).unwrap();
    let harts: Vec<Rintc> = (0..4)
        .map(|h| Rintc {
            hart_id: h,
            imsic_addr: 0x2800_0000 + h * 0x8000,
            imsic_size: if h == 3 { 4 * 4096 } else { 8 * 4096 },
        })
        .collect();
    let tables = dir.path().join("sys/firmware/acpi/tables");
    fs::create_dir_all(&tables).unwrap();
    fs::write(tables.join("APIC"), acpi::build(&harts, 3)).unwrap();
    let d = discover(dir.path(), None).unwrap();
    assert_eq!(d.source, Source::Acpi);
    // 7 from the regions, capped at KVM's 5; hart 3 backs only 3.
    assert_eq!(files(dir.path()), [5, 5, 5, 3]);
    assert_eq!(d.topology.harts()[2].imsic_pa, 0x2801_0000);
}
