//! The error model of ifa.v1, shared by the daemon and its clients: every
//! non-OK status carries a `google.rpc.ErrorInfo` in this domain with one of
//! these reasons (documented in `ifa.proto`).

/// `ErrorInfo.domain` of every ifad error.
pub const DOMAIN: &str = "ifa.v1";

/// `ErrorInfo.reason`: what a program branches on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    // The host cannot do what was asked (refusals; nothing changed).
    NoFreeVsfile,
    NoGuestFiles,
    NoEligibleHart,
    HartUnavailable,
    WouldStrand,
    TryAgain,
    // The request.
    InvalidArgument,
    UndecodableRequest,
    VmExists,
    VmNotFound,
    DeviceInUse,
    ReadOnlySocket,
    // Watch.
    EventsExpired,
    WatcherLagged,
    // The daemon.
    HostError,
    NotDurable,
    EngineStopped,
}

impl Reason {
    pub const ALL: [Reason; 17] = [
        Reason::NoFreeVsfile,
        Reason::NoGuestFiles,
        Reason::NoEligibleHart,
        Reason::HartUnavailable,
        Reason::WouldStrand,
        Reason::TryAgain,
        Reason::InvalidArgument,
        Reason::UndecodableRequest,
        Reason::VmExists,
        Reason::VmNotFound,
        Reason::DeviceInUse,
        Reason::ReadOnlySocket,
        Reason::EventsExpired,
        Reason::WatcherLagged,
        Reason::HostError,
        Reason::NotDurable,
        Reason::EngineStopped,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Reason::NoFreeVsfile => "NO_FREE_VSFILE",
            Reason::NoGuestFiles => "NO_GUEST_FILES",
            Reason::NoEligibleHart => "NO_ELIGIBLE_HART",
            Reason::HartUnavailable => "HART_UNAVAILABLE",
            Reason::WouldStrand => "WOULD_STRAND",
            Reason::TryAgain => "TRY_AGAIN",
            Reason::InvalidArgument => "INVALID_ARGUMENT",
            Reason::UndecodableRequest => "UNDECODABLE_REQUEST",
            Reason::VmExists => "VM_EXISTS",
            Reason::VmNotFound => "VM_NOT_FOUND",
            Reason::DeviceInUse => "DEVICE_IN_USE",
            Reason::ReadOnlySocket => "READ_ONLY_SOCKET",
            Reason::EventsExpired => "EVENTS_EXPIRED",
            Reason::WatcherLagged => "WATCHER_LAGGED",
            Reason::HostError => "HOST_ERROR",
            Reason::NotDurable => "NOT_DURABLE",
            Reason::EngineStopped => "ENGINE_STOPPED",
        }
    }

    pub fn parse(s: &str) -> Option<Reason> {
        Reason::ALL.into_iter().find(|r| r.as_str() == s)
    }

    /// The host said no to a well-formed request: `ifactl` prints
    /// "refused" and exits 1.
    pub fn is_refusal(self) -> bool {
        matches!(
            self,
            Reason::NoFreeVsfile
                | Reason::NoGuestFiles
                | Reason::NoEligibleHart
                | Reason::HartUnavailable
                | Reason::WouldStrand
                | Reason::TryAgain
        )
    }

    /// The reason an ifad status carries, if it carries one.
    pub fn of(status: &tonic::Status) -> Option<Reason> {
        use tonic_types::StatusExt;
        let info = status.get_details_error_info()?;
        (info.domain == DOMAIN)
            .then(|| Reason::parse(&info.reason))
            .flatten()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reason_parses_back_and_is_upper_snake() {
        for r in Reason::ALL {
            assert_eq!(Reason::parse(r.as_str()), Some(r));
            assert!(
                r.as_str()
                    .bytes()
                    .all(|b| b.is_ascii_uppercase() || b == b'_')
            );
        }
        assert_eq!(Reason::parse("no_free_vsfile"), None);
    }

    #[test]
    fn every_reason_is_documented_in_the_proto() {
        let proto = include_str!("../ifa/v1/ifa.proto");
        for r in Reason::ALL {
            let row = format!("| {:<19} |", r.as_str());
            assert!(
                proto.contains(&row),
                "{} is not in ifa.proto's table",
                r.as_str()
            );
        }
    }

    #[test]
    fn refusals_are_the_host_saying_no() {
        let refusals: Vec<_> = Reason::ALL.into_iter().filter(|r| r.is_refusal()).collect();
        assert_eq!(refusals.len(), 6);
        assert!(!Reason::InvalidArgument.is_refusal());
        assert!(!Reason::EngineStopped.is_refusal());
    }
}
