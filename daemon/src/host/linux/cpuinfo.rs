//! /proc/cpuinfo on RISC-V: which hart each logical CPU is, and its ISA.

/// One `processor` block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cpu {
    /// Linux logical CPU number.
    pub cpu: u32,
    /// RISC-V hart id (the device tree's `/cpus/cpu@<hartid>`).
    pub hart: u32,
    pub isa: String,
}

impl Cpu {
    /// The hypervisor extension: `h` among the single-letter extensions.
    pub fn has_h(&self) -> bool {
        let base = self.isa.split('_').next().unwrap_or("");
        base.strip_prefix("rv64")
            .or_else(|| base.strip_prefix("rv32"))
            .is_some_and(|letters| letters.contains('h'))
    }

    /// The supervisor-level AIA extension (`_ssaia`).
    pub fn has_aia(&self) -> bool {
        self.isa.split('_').any(|e| e == "ssaia")
    }
}

pub fn parse(text: &str) -> Vec<Cpu> {
    let mut out = Vec::new();
    let mut cur: (Option<u32>, Option<u32>, Option<String>) = (None, None, None);
    let mut flush = |cur: &mut (Option<u32>, Option<u32>, Option<String>)| {
        if let (Some(cpu), Some(hart)) = (cur.0, cur.1) {
            out.push(Cpu {
                cpu,
                hart,
                isa: cur.2.clone().unwrap_or_default(),
            });
        }
        *cur = (None, None, None);
    };
    for line in text.lines() {
        let Some((key, value)) = line.split_once(':') else {
            if line.trim().is_empty() {
                flush(&mut cur);
            }
            continue;
        };
        let value = value.trim();
        match key.trim() {
            "processor" => cur.0 = value.parse().ok(),
            "hart" => cur.1 = value.parse().ok(),
            "isa" => cur.2 = Some(value.to_string()),
            _ => {}
        }
    }
    flush(&mut cur);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_processors_to_harts_and_reads_extensions() {
        let text = "processor\t: 0\nhart\t\t: 3\nisa\t\t: rv64imafdch_zicsr_smaia_ssaia_sstc\n\n\
                    processor\t: 1\nhart\t\t: 0\nisa\t\t: rv64imafdc_zicsr\n";
        let cpus = parse(text);
        assert_eq!(cpus.len(), 2);
        assert_eq!((cpus[0].cpu, cpus[0].hart), (0, 3));
        assert!(cpus[0].has_h() && cpus[0].has_aia());
        assert!(!cpus[1].has_h() && !cpus[1].has_aia());
    }
}
