use crate::core::{HartId, VmId};

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
    /// The host cannot do what was asked; the text says why for people, the
    /// facts say it for programs.
    #[error("{1}")]
    Refused(Refusal, String, Facts),
}

/// The numbers behind a refusal, as far as they apply to it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Facts {
    /// VS-files the request needs.
    pub needed: Option<u32>,
    /// VS-files free on the harts the request may use.
    pub free: Option<u32>,
    /// VS-files that could be taken from burstable vCPUs.
    pub takeable: Option<u32>,
    /// The hart the refusal is about.
    pub hart: Option<HartId>,
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
    /// A refusal whose only fact is its text.
    pub fn refused(kind: Refusal, why: impl Into<String>) -> Self {
        CoreError::Refused(kind, why.into(), Facts::default())
    }

    /// A refusal about one hart.
    pub fn refused_on(kind: Refusal, hart: HartId, why: impl Into<String>) -> Self {
        let facts = Facts {
            hart: Some(hart),
            ..Facts::default()
        };
        CoreError::Refused(kind, why.into(), facts)
    }

    pub fn invalid(field: &'static str, reason: impl Into<String>) -> Self {
        CoreError::InvalidArgument {
            field,
            reason: reason.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusal_labels_are_the_documented_metric_labels() {
        // The reason label of ifad_placement_refusals_total: dashboards and
        // alert rules match on these values.
        let labels: Vec<_> = Refusal::ALL.iter().map(|r| r.as_str()).collect();
        assert_eq!(
            labels,
            [
                "no_guest_files",
                "no_eligible_hart",
                "no_free_vsfile",
                "try_again",
                "hart_unavailable",
                "would_strand"
            ]
        );
    }
}
