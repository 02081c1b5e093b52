//! Tables in the kubectl style: upper-case headers, columns aligned with
//! spaces, `-` for nothing.

use std::io::Write;

use tabwriter::TabWriter;

use crate::model::{Drained, Event, Hart, Migrated, Move, Status, Vcpu, Vm};

fn aligned(lines: impl IntoIterator<Item = String>) -> String {
    let mut tw = TabWriter::new(Vec::new()).padding(2);
    for line in lines {
        writeln!(tw, "{line}").expect("writing into a Vec cannot fail");
    }
    let bytes = tw.into_inner().unwrap_or_default();
    String::from_utf8_lossy(&bytes).into_owned()
}

fn table<const N: usize>(header: [&str; N], rows: impl IntoIterator<Item = [String; N]>) -> String {
    aligned(std::iter::once(header.join("\t")).chain(rows.into_iter().map(|r| r.join("\t"))))
}

fn yes_no(b: bool) -> String {
    if b { "yes" } else { "no" }.to_string()
}

fn or_dash(items: &[String]) -> String {
    if items.is_empty() {
        "-".into()
    } else {
        items.join(",")
    }
}

pub fn status(s: &Status) -> String {
    aligned([
        format!("HOST\t{}", s.host),
        format!("VERSION\t{}", s.version),
        format!("HARTS\t{} ({} online)", s.harts, s.harts_online),
        format!(
            "VS-FILES\t{} total, {} used, {} free",
            s.vsfiles.total, s.vsfiles.used, s.vsfiles.free
        ),
        format!("VMS\t{}", s.vms),
        format!(
            "VCPUS\t{} on VS-file, {} on MRIF",
            s.vcpus.vsfile, s.vcpus.mrif
        ),
        format!(
            "HOST IMSIC\t{}",
            s.host_imsic.as_ref().map_or_else(
                || "unknown".to_string(),
                |g| format!(
                    "guest-index-bits {}, hart-index-bits {}, group-index-bits {}, group-index-shift {}",
                    g.guest_index_bits, g.hart_index_bits, g.group_index_bits, g.group_index_shift
                )
            )
        ),
    ])
}

pub fn harts(harts: &[Hart]) -> String {
    let header = [
        "HART",
        "NODE",
        "ONLINE",
        "DRAINED",
        "VS-FILES",
        "USED",
        "FREE",
        "RELEASING",
        "VCPUS",
    ];
    table(
        header,
        harts.iter().map(|h| {
            [
                h.hart.to_string(),
                h.numa_node.to_string(),
                yes_no(h.online),
                yes_no(h.drained),
                h.vsfiles.to_string(),
                h.used.to_string(),
                h.free.to_string(),
                h.releasing.to_string(),
                h.vcpus.to_string(),
            ]
        }),
    )
}

fn count(vm: &Vm, backing: &str) -> String {
    vm.vcpus
        .iter()
        .filter(|v| v.backing == backing)
        .count()
        .to_string()
}

pub fn vms(vms: &[Vm]) -> String {
    let header = [
        "VM", "CLASS", "AIA MODE", "STATE", "VCPUS", "VSFILE", "MRIF", "DEVICES",
    ];
    table(
        header,
        vms.iter().map(|vm| {
            [
                vm.vm.clone(),
                vm.class.to_string(),
                vm.aia_mode.to_string(),
                vm.state.to_string(),
                vm.vcpus.len().to_string(),
                count(vm, "vsfile"),
                count(vm, "mrif"),
                or_dash(&vm.devices),
            ]
        }),
    )
}

pub fn vm(vm: &Vm) -> String {
    let harts: Vec<String> = vm.allowed_harts.iter().map(ToString::to_string).collect();
    let harts = if harts.is_empty() {
        "all".to_string()
    } else {
        harts.join(",")
    };
    let head = aligned([
        format!("VM\t{}", vm.vm),
        format!("CLASS\t{}", vm.class),
        format!("AIA MODE\t{}", vm.aia_mode),
        format!("STATE\t{}", vm.state),
        format!("PRIORITY\t{}", vm.priority),
        format!("HARTS\t{harts}"),
        format!("DEVICES\t{}", or_dash(&vm.devices)),
        format!(
            "GUEST IMSIC\t{}",
            vm.guest_imsic
                .as_ref()
                .map_or_else(|| "unknown".to_string(), |l| l.describe())
        ),
    ]);
    let mut out = format!("{head}\n{}", vcpus(&vm.vcpus));
    if let Some(demoted) = vm.demoted.as_ref().filter(|d| !d.is_empty()) {
        out.push_str(&format!("\nDEMOTED to make room:\n{}", moves(demoted)));
    }
    out
}

fn hpa(v: &Vcpu) -> String {
    v.vsfile_hpa.clone().unwrap_or_else(|| "-".into())
}

fn line(v: &Vcpu) -> String {
    v.vsfile_line.map_or("-".into(), |l| l.to_string())
}

fn vcpus(vcpus: &[Vcpu]) -> String {
    let header = [
        "VCPU",
        "HART",
        "BACKING",
        "LINE",
        "GUEST IMSIC GPA",
        "VS-FILE HPA",
        "TID",
        "IRQ/S",
        "IRQ/S HINT",
    ];
    table(
        header,
        vcpus.iter().map(|v| {
            [
                v.vcpu.to_string(),
                v.hart.to_string(),
                v.backing.to_string(),
                line(v),
                v.guest_imsic_gpa
                    .clone()
                    .unwrap_or_else(|| "unknown".into()),
                hpa(v),
                v.tid.map_or("-".into(), |t| t.to_string()),
                format!("{:.0}", v.irq_rate),
                v.expected_irq_rate.map_or("-".into(), |r| r.to_string()),
            ]
        }),
    )
}

pub fn moves(moves: &[Move]) -> String {
    table(
        ["VM", "VCPU", "FROM", "TO", "BACKING"],
        moves.iter().map(|m| {
            [
                m.vm.clone(),
                m.vcpu.to_string(),
                m.from_hart.to_string(),
                m.to_hart.to_string(),
                m.backing.to_string(),
            ]
        }),
    )
}

pub fn migrated(m: &Migrated) -> String {
    let rows = [("before", &m.before), ("after", &m.after)];
    table(
        ["", "HART", "BACKING", "LINE", "VS-FILE HPA"],
        rows.iter().map(|(when, v)| {
            [
                when.to_string(),
                v.hart.to_string(),
                v.backing.to_string(),
                line(v),
                hpa(v),
            ]
        }),
    )
}

pub fn drained(d: &Drained) -> String {
    if d.moved.is_empty() {
        return format!("hart {} drained (nothing to move)\n", d.hart);
    }
    format!("hart {} drained; moved:\n{}", d.hart, moves(&d.moved))
}

/// Column headers of `watch`, printed once.
pub const EVENT_HEADER: &str = "SEQ               TIME (UTC)    KIND      VM                VCPU  HART  FROM  TO    BACKING  MESSAGE";

/// One `watch` line: fixed widths, as rows arrive one at a time.
pub fn event(e: &Event) -> String {
    let num = |n: Option<u32>| n.map_or("-".to_string(), |n| n.to_string());
    let ms = e.time_unix_ms.rem_euclid(86_400_000);
    let time = format!(
        "{:02}:{:02}:{:02}.{:03}",
        ms / 3_600_000,
        ms / 60_000 % 60,
        ms / 1000 % 60,
        ms % 1000
    );
    format!(
        "{:<17} {:<13} {:<9} {:<17} {:<5} {:<5} {:<5} {:<5} {:<8} {}\n",
        e.seq,
        time,
        e.kind,
        if e.vm.is_empty() { "-" } else { &e.vm },
        num(e.vcpu),
        num(e.hart),
        num(e.from_hart),
        num(e.to_hart),
        e.backing.unwrap_or("-"),
        e.message
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Vcpu;

    #[test]
    fn columns_line_up_and_empty_is_a_dash() {
        let vm = Vm {
            vm: "web-1".into(),
            class: "burstable",
            aia_mode: "auto",
            state: "ready",
            priority: 0,
            allowed_harts: vec![],
            demoted: None,
            devices: vec![],
            guest_imsic: None,
            guest_msi: None,
            vcpus: vec![
                Vcpu {
                    vcpu: 0,
                    hart: 3,
                    backing: "vsfile",
                    is_mrif: false,
                    vsfile_line: Some(1),
                    guest_imsic_gpa: Some("0x28000000".into()),
                    vsfile_hpa: Some("0x28019000".into()),
                    tid: Some(4242),
                    expected_irq_rate: Some(2500.0),
                    irq_rate: 31_000.4,
                },
                Vcpu {
                    vcpu: 1,
                    hart: 12,
                    backing: "mrif",
                    is_mrif: true,
                    vsfile_line: None,
                    guest_imsic_gpa: None,
                    vsfile_hpa: None,
                    tid: None,
                    expected_irq_rate: None,
                    irq_rate: 0.0,
                },
            ],
        };
        let out = vms(std::slice::from_ref(&vm));
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(
            lines[0],
            "VM     CLASS      AIA MODE  STATE  VCPUS  VSFILE  MRIF  DEVICES"
        );
        assert_eq!(
            lines[1],
            "web-1  burstable  auto      ready  2      1       1     -"
        );
        let out = super::vm(&vm);
        assert!(
            out.contains("VS-FILE HPA  TID   IRQ/S  IRQ/S HINT"),
            "{out}"
        );
        assert!(out.contains("0x28019000   4242  31000  2500"), "{out}");
        assert!(out.contains("DEVICES      -"), "{out}");
        assert!(out.contains("GUEST IMSIC  unknown"), "{out}");
        assert!(
            out.contains("1     12    mrif     -     unknown          -            -     0      -"),
            "{out}"
        );
    }
}
