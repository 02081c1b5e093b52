//! The kernel's CPU list format (`0-3,8,10-11`), as in
//! /sys/devices/system/cpu/online and /proc/irq/*/smp_affinity_list.

/// Parses a CPU list; `None` if malformed. An empty list is valid.
pub fn parse(raw: &str) -> Option<Vec<u32>> {
    let raw = raw.trim();
    let mut out = Vec::new();
    if raw.is_empty() {
        return Some(out);
    }
    for part in raw.split(',') {
        let (lo, hi) = match part.split_once('-') {
            Some((a, b)) => (a.trim().parse::<u32>().ok()?, b.trim().parse::<u32>().ok()?),
            None => {
                let c: u32 = part.trim().parse().ok()?;
                (c, c)
            }
        };
        if lo > hi {
            return None;
        }
        out.extend(lo..=hi);
    }
    out.sort_unstable();
    out.dedup();
    Some(out)
}

/// Formats CPUs as the kernel does (ranges collapsed).
pub fn format(cpus: &[u32]) -> String {
    let mut sorted = cpus.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let mut parts = Vec::new();
    let mut i = 0;
    while i < sorted.len() {
        let start = sorted[i];
        while i + 1 < sorted.len() && sorted[i + 1] == sorted[i] + 1 {
            i += 1;
        }
        parts.push(if sorted[i] == start {
            start.to_string()
        } else {
            format!("{start}-{}", sorted[i])
        });
        i += 1;
    }
    parts.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_kernel_lists() {
        assert_eq!(parse("0-3,8,10-11\n").unwrap(), [0, 1, 2, 3, 8, 10, 11]);
        assert_eq!(parse("").unwrap(), Vec::<u32>::new());
        assert_eq!(format(&[11, 0, 1, 2, 3, 8, 10]), "0-3,8,10-11");
        assert_eq!(format(&[5]), "5");
        for bad in ["a", "3-1", "1-", ","] {
            assert_eq!(parse(bad), None, "{bad:?}");
        }
    }
}
