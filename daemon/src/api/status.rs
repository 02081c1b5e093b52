//! Errors as gRPC statuses a program can act on: a code, and in the
//! `google.rpc.Status` details an `ErrorInfo` (domain `ifa.v1`, a reason and
//! the numbers behind it), a `RetryInfo` where retrying later can succeed,
//! and a `BadRequest` naming the field of bad input.

use std::collections::HashMap;
use std::time::Duration;

use ifa_api::errors::{DOMAIN, Reason};
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

use crate::core::{CoreError, Facts, Refusal};
use crate::engine::EngineError;
use crate::engine::actor::EngineGone;

/// A file is being handed to a vCPU that has not entered yet: running vCPUs
/// enter within microseconds, and the control loop looks again every 500 ms.
const TRY_AGAIN_AFTER: Duration = Duration::from_secs(1);
/// The engine stops only when the daemon does; systemd restarts it.
const RESTART_AFTER: Duration = Duration::from_secs(5);

/// One error on its way to the wire.
pub struct Failure {
    code: Code,
    reason: Reason,
    message: String,
    metadata: HashMap<String, String>,
    retry_after: Option<Duration>,
    /// The offending field and what is wrong with it.
    bad_field: Option<(String, String)>,
}

impl Failure {
    pub fn new(code: Code, reason: Reason, message: impl Into<String>) -> Self {
        Failure {
            code,
            reason,
            message: message.into(),
            metadata: HashMap::new(),
            retry_after: None,
            bad_field: None,
        }
    }

    /// A number or name behind the error, as `ErrorInfo.metadata[key]`.
    pub fn with(mut self, key: &str, value: impl ToString) -> Self {
        self.metadata.insert(key.to_string(), value.to_string());
        self
    }

    fn with_some(self, key: &str, value: Option<u32>) -> Self {
        match value {
            Some(v) => self.with(key, v),
            None => self,
        }
    }

    pub fn retry_after(mut self, delay: Duration) -> Self {
        self.retry_after = Some(delay);
        self
    }

    /// Bad input in `field`: a `BadRequest` violation naming it and saying
    /// what is wrong (the message says both, for people).
    pub fn bad_field(mut self, field: &str, wrong: impl Into<String>) -> Self {
        self.bad_field = Some((field.to_string(), wrong.into()));
        self.with("field", field)
    }

    pub fn into_status(self) -> Status {
        let mut details = ErrorDetails::new();
        details.set_error_info(self.reason.as_str(), DOMAIN, self.metadata);
        if let Some(delay) = self.retry_after {
            details.set_retry_info(Some(delay));
        }
        if let Some((field, wrong)) = self.bad_field {
            details.add_bad_request_violation(field, wrong);
        }
        Status::with_error_details(self.code, self.message, details)
    }
}

/// Bad input in `field`, before anything reached the engine.
pub fn invalid_argument(field: &str, wrong: &str) -> Status {
    Failure::new(
        Code::InvalidArgument,
        Reason::InvalidArgument,
        format!("{field}: {wrong}"),
    )
    .bad_field(field, wrong)
    .into_status()
}

/// The code and reason of each kind of refusal. Capacity is
/// RESOURCE_EXHAUSTED; a state of the host an operator must change first is
/// FAILED_PRECONDITION; a race that resolves by itself is UNAVAILABLE, the
/// code gRPC clients retry.
fn refusal(kind: Refusal) -> (Code, Reason) {
    match kind {
        Refusal::NoFreeVsFile => (Code::ResourceExhausted, Reason::NoFreeVsfile),
        Refusal::NoGuestFiles => (Code::ResourceExhausted, Reason::NoGuestFiles),
        Refusal::NoEligibleHart => (Code::FailedPrecondition, Reason::NoEligibleHart),
        Refusal::HartUnavailable => (Code::FailedPrecondition, Reason::HartUnavailable),
        Refusal::WouldStrand => (Code::FailedPrecondition, Reason::WouldStrand),
        Refusal::TryAgain => (Code::Unavailable, Reason::TryAgain),
    }
}

fn refused(kind: Refusal, message: String, facts: Facts) -> Failure {
    let (code, reason) = refusal(kind);
    let failure = Failure::new(code, reason, message)
        .with_some("needed", facts.needed)
        .with_some("free", facts.free)
        .with_some("takeable", facts.takeable)
        .with_some("hart", facts.hart);
    match kind {
        Refusal::TryAgain => failure.retry_after(TRY_AGAIN_AFTER),
        _ => failure,
    }
}

pub fn core_status(e: CoreError) -> Status {
    let message = e.to_string();
    let failure = match e {
        CoreError::InvalidArgument { field, reason } => {
            Failure::new(Code::InvalidArgument, Reason::InvalidArgument, message)
                .bad_field(field, reason)
        }
        CoreError::VmExists(vm) => {
            Failure::new(Code::AlreadyExists, Reason::VmExists, message).with("vm", vm)
        }
        CoreError::VmNotFound(vm) => {
            Failure::new(Code::NotFound, Reason::VmNotFound, message).with("vm", vm)
        }
        CoreError::DeviceInUse { device, owner } => {
            Failure::new(Code::AlreadyExists, Reason::DeviceInUse, message)
                .with("device", device)
                .with("owner", owner)
        }
        CoreError::Refused(kind, why, facts) => refused(kind, why, facts),
    };
    failure.into_status()
}

impl From<EngineError> for Status {
    fn from(e: EngineError) -> Status {
        match e {
            EngineError::Core(e) => core_status(e),
            EngineError::Host(e) => {
                Failure::new(Code::FailedPrecondition, Reason::HostError, e.to_string())
                    .into_status()
            }
            // Not UNAVAILABLE: the change was applied (and will be written
            // with the next one), so a blind retry would not be idempotent.
            EngineError::State(e) => Failure::new(
                Code::Internal,
                Reason::NotDurable,
                format!(
                    "{e}; the change was applied in memory but may not survive a crash: check before retrying"
                ),
            )
            .into_status(),
        }
    }
}

impl From<EngineGone> for Status {
    fn from(e: EngineGone) -> Status {
        Failure::new(Code::Unavailable, Reason::EngineStopped, e.to_string())
            .retry_after(RESTART_AFTER)
            .into_status()
    }
}

#[cfg(test)]
#[path = "status_tests.rs"]
mod tests;
