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
    #[error("{1}")]
    Refused(Refusal, String),
}

/// Why a request was refused, in few enough kinds for a metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Refusal {
    /// The host has no guest interrupt files: only EMUL runs.
    NoGuestFiles,
    /// No online, undrained hart the VM may use.
    NoEligibleHart,
    /// Not enough free VS-files for the class.
    NoFreeVsFile,
    /// A file is being handed to a vCPU that has not entered yet.
    TryAgain,
    /// The hart asked for is offline, drained or not allowed.
    HartUnavailable,
    /// Draining would leave a vCPU with nowhere to go.
    WouldStrand,
}

impl Refusal {
    pub const ALL: [Refusal; 6] = [
        Refusal::NoGuestFiles,
        Refusal::NoEligibleHart,
        Refusal::NoFreeVsFile,
        Refusal::TryAgain,
        Refusal::HartUnavailable,
        Refusal::WouldStrand,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::NoGuestFiles => "no_guest_files",
            Refusal::NoEligibleHart => "no_eligible_hart",
            Refusal::NoFreeVsFile => "no_free_vsfile",
            Refusal::TryAgain => "try_again",
            Refusal::HartUnavailable => "hart_unavailable",
            Refusal::WouldStrand => "would_strand",
        }
    }
}

impl CoreError {
    pub fn invalid(field: &'static str, reason: impl Into<String>) -> Self {
        CoreError::InvalidArgument {
            field,
            reason: reason.into(),
        }
    }
}
