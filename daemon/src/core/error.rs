use crate::core::VmId;

/// Why the core refused a request. Every variant leaves the ledger unchanged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CoreError {
    /// The request itself is malformed; `field` names the offending input.
    #[error("{field}: {reason}")]
    InvalidArgument { field: &'static str, reason: String },
    #[error("vm {0} is already placed")]
    VmExists(VmId),
    #[error("vm {0} is not placed")]
    VmNotFound(VmId),
    #[error("devices: {device} is already assigned to vm {owner}")]
    DeviceInUse { device: String, owner: VmId },
    /// The host cannot hold the VM as its class demands.
    #[error("{0}")]
    Refused(String),
}

impl CoreError {
    pub fn invalid(field: &'static str, reason: impl Into<String>) -> Self {
        CoreError::InvalidArgument {
            field,
            reason: reason.into(),
        }
    }
}
