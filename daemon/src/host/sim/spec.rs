use std::str::FromStr;

use crate::core::topology::MAX_VSFILES;

/// The shape of a simulated host: `harts=N,files=F[,numa=K]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SimSpec {
    pub harts: u32,
    pub files: u8,
    pub numa: u32,
}

/// Largest simulated host; Linux's NR_CPUS on riscv64 defaults to 512, this
/// leaves room for benchmarks at 1024.
pub const MAX_SIM_HARTS: u32 = 4096;

impl Default for SimSpec {
    /// 8 harts with the server-SoC minimum of 5 VS-files each.
    fn default() -> Self {
        SimSpec {
            harts: 8,
            files: 5,
            numa: 1,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("--simulate {key}: {reason}")]
pub struct SimSpecError {
    pub key: String,
    pub reason: String,
}

impl FromStr for SimSpec {
    type Err = SimSpecError;

    fn from_str(raw: &str) -> Result<Self, SimSpecError> {
        let mut spec = SimSpec::default();
        let err = |key: &str, reason: String| SimSpecError {
            key: key.to_string(),
            reason,
        };
        for item in raw.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let (key, value) = item
                .split_once('=')
                .ok_or_else(|| err(item, "expected key=value (harts=N,files=F,numa=K)".into()))?;
            let n: u32 = value
                .parse()
                .map_err(|_| err(key, format!("{value:?} is not a whole number")))?;
            match key {
                "harts" if (1..=MAX_SIM_HARTS).contains(&n) => spec.harts = n,
                "harts" => {
                    return Err(err(key, format!("{n} is out of range 1..={MAX_SIM_HARTS}")));
                }
                "files" if (1..=u32::from(MAX_VSFILES)).contains(&n) => spec.files = n as u8,
                "files" => {
                    return Err(err(
                        key,
                        format!(
                            "{n} is out of range 1..={MAX_VSFILES} (VS-files per hart on RV64)"
                        ),
                    ));
                }
                "numa" if n >= 1 => spec.numa = n,
                "numa" => return Err(err(key, "must be at least 1".into())),
                _ => {
                    return Err(err(
                        key,
                        "unknown key; expected harts, files or numa".into(),
                    ));
                }
            }
        }
        if spec.numa > spec.harts {
            return Err(err(
                "numa",
                format!("{} nodes for {} harts", spec.numa, spec.harts),
            ));
        }
        Ok(spec)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_is_the_default_host() {
        assert_eq!("".parse::<SimSpec>().unwrap(), SimSpec::default());
    }

    #[test]
    fn parses_every_key() {
        let s: SimSpec = "harts=16, files=63,numa=2".parse().unwrap();
        assert_eq!((s.harts, s.files, s.numa), (16, 63, 2));
    }

    #[test]
    fn refuses_out_of_range_and_unknown() {
        for (raw, key) in [
            ("files=0", "files"),
            ("files=64", "files"),
            ("files=x", "files"),
            ("harts=0", "harts"),
            ("numa=0", "numa"),
            ("harts=2,numa=3", "numa"),
            ("cores=4", "cores"),
            ("harts", "harts"),
        ] {
            let e = raw.parse::<SimSpec>().unwrap_err();
            assert_eq!(e.key, key, "{raw}");
        }
    }
}
