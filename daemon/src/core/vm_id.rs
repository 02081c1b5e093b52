use std::fmt;
use std::sync::Arc;

use crate::core::CoreError;

pub const MAX_VM_ID_LEN: usize = 64;

/// A caller-chosen VM name: 1..=64 of `[A-Za-z0-9._-]`, starting
/// alphanumeric, so it is safe in file names, logs and thread lookups.
/// Saved as its string and validated again when read back.
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(try_from = "String", into = "String")]
pub struct VmId(Arc<str>);

impl TryFrom<String> for VmId {
    type Error = CoreError;

    fn try_from(raw: String) -> Result<Self, CoreError> {
        VmId::parse(&raw)
    }
}

impl From<VmId> for String {
    fn from(id: VmId) -> String {
        id.0.to_string()
    }
}

impl VmId {
    pub fn parse(raw: &str) -> Result<Self, CoreError> {
        let bad_char = || {
            raw.chars()
                .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
        };
        let reason = if raw.is_empty() {
            "must not be empty".to_string()
        } else if raw.len() > MAX_VM_ID_LEN {
            format!("longer than {MAX_VM_ID_LEN} characters")
        } else if !raw.starts_with(|c: char| c.is_ascii_alphanumeric()) {
            format!("{raw:?} must start with a letter or digit")
        } else if let Some(c) = bad_char() {
            format!("{raw:?} contains {c:?}; allowed: A-Z a-z 0-9 . _ -")
        } else {
            return Ok(VmId(Arc::from(raw)));
        };
        Err(CoreError::invalid("vm", reason))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for VmId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_usual_names() {
        for ok in ["a", "vm-1", "web.prod_3", "0abc"] {
            assert_eq!(VmId::parse(ok).unwrap().as_str(), ok);
        }
        assert!(VmId::parse(&"x".repeat(MAX_VM_ID_LEN)).is_ok());
    }

    #[test]
    fn refuses_bad_names_naming_the_field() {
        for bad in [
            "",
            "-a",
            ".a",
            "a/b",
            "a b",
            "ä",
            &"x".repeat(MAX_VM_ID_LEN + 1),
        ] {
            match VmId::parse(bad) {
                Err(CoreError::InvalidArgument { field: "vm", .. }) => {}
                other => panic!("{bad:?} gave {other:?}"),
            }
        }
    }
}
