use std::fmt;
use std::str::FromStr;

use crate::core::CoreError;

/// A PCI address as sysfs names devices: `DDDD:BB:DD.F` (the domain may be
/// omitted on input and then is 0).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(try_from = "String", into = "String")]
pub struct Bdf {
    pub domain: u32,
    pub bus: u8,
    pub device: u8,
    pub function: u8,
}

impl FromStr for Bdf {
    type Err = CoreError;

    fn from_str(raw: &str) -> Result<Self, CoreError> {
        let bad = |why: &str| {
            CoreError::invalid(
                "devices",
                format!("{raw:?} is not a PCI address DDDD:BB:DD.F ({why})"),
            )
        };
        let hex = |s: &str, max_digits: usize| -> Option<u32> {
            if s.is_empty() || s.len() > max_digits || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
                return None;
            }
            u32::from_str_radix(s, 16).ok()
        };
        let (slot, function) = raw.rsplit_once('.').ok_or_else(|| bad("no function"))?;
        let parts: Vec<&str> = slot.split(':').collect();
        let (domain, bus, device) = match parts.as_slice() {
            [d, b, s] => (hex(d, 8).ok_or_else(|| bad("domain"))?, *b, *s),
            [b, s] => (0, *b, *s),
            _ => return Err(bad("wrong number of ':'")),
        };
        let bus = hex(bus, 2).ok_or_else(|| bad("bus"))?;
        let device = hex(device, 2)
            .filter(|d| *d < 32)
            .ok_or_else(|| bad("device must be 00-1f"))?;
        let function = hex(function, 1)
            .filter(|f| *f < 8)
            .ok_or_else(|| bad("function must be 0-7"))?;
        Ok(Bdf {
            domain,
            bus: bus as u8,
            device: device as u8,
            function: function as u8,
        })
    }
}

impl TryFrom<String> for Bdf {
    type Error = CoreError;

    fn try_from(raw: String) -> Result<Self, CoreError> {
        raw.parse()
    }
}

impl From<Bdf> for String {
    fn from(b: Bdf) -> String {
        b.to_string()
    }
}

impl fmt::Display for Bdf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:04x}:{:02x}:{:02x}.{:x}",
            self.domain, self.bus, self.device, self.function
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_normalises() {
        let b: Bdf = "0000:01:00.0".parse().unwrap();
        assert_eq!(b.to_string(), "0000:01:00.0");
        let b: Bdf = "3b:1F.7".parse().unwrap();
        assert_eq!(b.to_string(), "0000:3b:1f.7");
        let b: Bdf = "10000:e1:00.1".parse().unwrap();
        assert_eq!(b.to_string(), "10000:e1:00.1");
    }

    #[test]
    fn refuses_malformed() {
        for bad in [
            "",
            "01:00",
            "0000:01:00",
            "0000:01:20.0",
            "0000:01:00.8",
            "0000:100:00.0",
            "zz:00.0",
            "0000:01:00.0.0",
            "a:b:c:d.0",
            "0000:01:00.",
        ] {
            match bad.parse::<Bdf>() {
                Err(CoreError::InvalidArgument {
                    field: "devices", ..
                }) => {}
                other => panic!("{bad:?} gave {other:?}"),
            }
        }
    }
}
