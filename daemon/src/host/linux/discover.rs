//! What RISC-V KVM host this is: harts, their VS-file counts and IMSIC
//! addresses, NUMA nodes, which harts are online. Every path is taken under
//! `root`, laid out like `/`, so the same code reads a live host or a
//! captured one.

use std::fs;
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::core::topology::MAX_VSFILES;
use crate::core::{HartInfo, Topology};
use crate::host::linux::{acpi, cpuinfo, cpulist, devicetree};

/// The server-SoC specification's minimum of guest files per hart.
pub const SERVER_SOC_MIN_FILES: u8 = 5;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    DeviceTree,
    Acpi,
    KernelLog,
}

impl Source {
    pub fn as_str(&self) -> &'static str {
        match self {
            Source::DeviceTree => "device tree",
            Source::Acpi => "ACPI MADT",
            Source::KernelLog => "kernel log",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Discovered {
    pub topology: Topology,
    /// Linux CPU number to RISC-V hart id.
    pub hart_ids: Vec<u32>,
    pub source: Source,
    pub warnings: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum DiscoverError {
    #[error("{path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}: no RISC-V harts listed")]
    NoHarts(PathBuf),
    #[error("hart {0} has no hypervisor (H) extension: KVM cannot run guests here")]
    NoHypervisor(u32),
    #[error("hart {0} has no AIA (Ssaia): there are no guest interrupt files to allocate")]
    NoAia(u32),
    #[error("{0} does not exist: KVM is not loaded (modprobe kvm)")]
    NoKvm(PathBuf),
    #[error(
        "cannot tell how many guest interrupt files the harts have: no S-level IMSIC in \
         the device tree or the ACPI MADT and no 'AIA available with N guest external \
         interrupts' in {0}"
    )]
    NoFileCount(PathBuf),
}

fn read(path: PathBuf) -> Result<String, DiscoverError> {
    fs::read_to_string(&path).map_err(|source| DiscoverError::Read { path, source })
}

/// `kvm [N]: AIA available with 5 guest external interrupts`: the width of
/// HGEIE that KVM found, the one count no file exports.
pub fn kvm_guest_files(log: &str) -> Option<u32> {
    log.lines().rev().find_map(|l| {
        let rest = l.split("AIA available with ").nth(1)?;
        rest.split_whitespace().next()?.parse().ok()
    })
}

/// Reads the host under `root`. `max_files` (configuration) may only lower
/// a hart's count.
pub fn discover(root: &Path, max_files: Option<u8>) -> Result<Discovered, DiscoverError> {
    let cpuinfo_path = root.join("proc/cpuinfo");
    let cpus = cpuinfo::parse(&read(cpuinfo_path.clone())?);
    if cpus.is_empty() {
        return Err(DiscoverError::NoHarts(cpuinfo_path));
    }
    if let Some(c) = cpus.iter().find(|c| !c.has_h()) {
        return Err(DiscoverError::NoHypervisor(c.hart));
    }
    if let Some(c) = cpus.iter().find(|c| !c.has_aia()) {
        return Err(DiscoverError::NoAia(c.hart));
    }
    let kvm = root.join("dev/kvm");
    if !kvm.exists() {
        return Err(DiscoverError::NoKvm(kvm));
    }

    let sys_cpu = root.join("sys/devices/system/cpu");
    let online = cpulist::parse(&read(sys_cpu.join("online"))?).unwrap_or_default();
    let possible = fs::read_to_string(sys_cpu.join("possible"))
        .ok()
        .and_then(|s| cpulist::parse(&s))
        .unwrap_or_default();
    let n = possible
        .iter()
        .chain(cpus.iter().map(|c| &c.cpu))
        .max()
        .map_or(0, |m| m + 1);
    let mut hart_ids: Vec<u32> = (0..n).collect();
    for c in &cpus {
        hart_ids[c.cpu as usize] = c.hart;
    }

    let (log_path, log) = kernel_log(root);
    let kvm_files = kvm_guest_files(&log);
    let imsic = devicetree::s_level_imsic(&root.join("sys/firmware/devicetree/base")).map_err(
        |source| DiscoverError::Read {
            path: root.join("sys/firmware/devicetree/base"),
            source,
        },
    )?;
    let mut warnings = Vec::new();
    if kvm_files.is_none() {
        warnings.push(format!(
            "no 'AIA available with N guest external interrupts' line in {} (unreadable, or kvm not loaded yet): \
             KVM's own count of guest files cannot lower the firmware's; set --max-vsfiles if they differ",
            log_path.display()
        ));
    }
    let mut acpi_geometry = None;
    let (source, per_hart): (Source, Vec<(u64, u32)>) = match &imsic {
        Some(im) => {
            let files = im.files();
            let per = hart_ids
                .iter()
                .map(|h| match im.harts.iter().position(|x| x == h) {
                    Some(i) => files[i],
                    None => {
                        warnings.push(format!("hart {h} is not served by {}", im.node.display()));
                        (0, 0)
                    }
                })
                .collect();
            (Source::DeviceTree, per)
        }
        None => match fs::read(root.join("sys/firmware/acpi/tables/APIC"))
            .ok()
            .and_then(|t| acpi::parse(&t))
        {
            Some(madt) => {
                acpi_geometry = Some(madt.geometry);
                let files = madt.files();
                let per = hart_ids
                    .iter()
                    .map(|&h| match files.iter().find(|f| f.0 == u64::from(h)) {
                        Some(&(_, pa, n)) => (pa, n),
                        None => {
                            warnings.push(format!("hart {h} has no RINTC entry in the MADT"));
                            (0, 0)
                        }
                    })
                    .collect();
                (Source::Acpi, per)
            }
            None => match kvm_files {
                Some(f) => (Source::KernelLog, vec![(0, f); n as usize]),
                None => return Err(DiscoverError::NoFileCount(log_path)),
            },
        },
    };

    let nodes = numa_nodes(root, n);
    let harts = (0..n)
        .map(|cpu| {
            let (imsic_pa, dt_files) = per_hart[cpu as usize];
            let files = [
                Some(dt_files),
                kvm_files,
                max_files.map(u32::from),
                Some(u32::from(MAX_VSFILES)),
            ]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(0) as u8;
            HartInfo {
                id: cpu,
                vsfiles: files,
                numa_node: nodes[cpu as usize],
                online: online.contains(&cpu),
                imsic_pa,
            }
        })
        .collect::<Vec<_>>();
    for h in &harts {
        if h.vsfiles < SERVER_SOC_MIN_FILES {
            warnings.push(format!(
                "hart {} (cpu {}) has {} VS-files, fewer than the server-SoC minimum of {SERVER_SOC_MIN_FILES}{}",
                hart_ids[h.id as usize],
                h.id,
                h.vsfiles,
                if h.vsfiles == 0 { ": only best-effort (EMUL) VMs can run there" } else { "" }
            ));
        }
    }
    let geometry = match &imsic {
        Some(im) => Some(im.geometry()),
        None => acpi_geometry,
    };
    let topology = Topology::new(harts);
    Ok(Discovered {
        topology: match geometry {
            Some(g) => topology.with_imsic(g),
            None => topology,
        },
        hart_ids,
        source,
        warnings,
    })
}

/// The kernel log: a captured host's `dmesg.txt`, else the live ring
/// buffer in /dev/kmsg (read without blocking: one record per read).
fn kernel_log(root: &Path) -> (PathBuf, String) {
    let captured = root.join("dmesg.txt");
    if let Ok(text) = fs::read_to_string(&captured) {
        return (captured, text);
    }
    let kmsg = root.join("dev/kmsg");
    let mut text = String::new();
    if let Ok(mut f) = fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NONBLOCK)
        .open(&kmsg)
    {
        let mut buf = vec![0u8; 8192];
        // EAGAIN ends the buffer; EPIPE (a record overwritten) is skipped.
        loop {
            match f.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    let record = String::from_utf8_lossy(&buf[..n]);
                    if let Some((_, msg)) = record.split_once(';') {
                        text.push_str(msg.lines().next().unwrap_or(""));
                        text.push('\n');
                    }
                }
                Err(e) if e.raw_os_error() == Some(nix::libc::EPIPE) => continue,
                Err(_) => break,
            }
        }
    }
    (kmsg, text)
}

/// NUMA node per CPU from /sys/devices/system/node/node*/cpulist (0 if none).
fn numa_nodes(root: &Path, n: u32) -> Vec<u32> {
    let mut nodes = vec![0; n as usize];
    let Ok(entries) = fs::read_dir(root.join("sys/devices/system/node")) else {
        return nodes;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(node) = name
            .strip_prefix("node")
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let list = fs::read_to_string(entry.path().join("cpulist")).unwrap_or_default();
        for cpu in cpulist::parse(&list).unwrap_or_default() {
            if let Some(slot) = nodes.get_mut(cpu as usize) {
                *slot = node;
            }
        }
    }
    nodes
}
