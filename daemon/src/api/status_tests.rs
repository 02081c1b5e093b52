use super::*;
use crate::core::VmId;
use tonic_types::StatusExt;

fn reason(s: &Status) -> String {
    let info = s
        .get_details_error_info()
        .expect("every error has an ErrorInfo");
    assert_eq!(info.domain, "ifa.v1");
    info.reason
}

fn metadata(s: &Status, key: &str) -> Option<String> {
    s.get_details_error_info()?.metadata.get(key).cloned()
}

#[test]
fn each_core_error_has_its_code_and_reason() {
    let id = VmId::parse("a").unwrap();
    let device = CoreError::DeviceInUse {
        device: "0000:01:00.0".into(),
        owner: id.clone(),
    };
    let cases = [
        (
            CoreError::invalid("vcpus", "0"),
            Code::InvalidArgument,
            "INVALID_ARGUMENT",
        ),
        (
            CoreError::VmExists(id.clone()),
            Code::AlreadyExists,
            "VM_EXISTS",
        ),
        (CoreError::VmNotFound(id), Code::NotFound, "VM_NOT_FOUND"),
        (device, Code::AlreadyExists, "DEVICE_IN_USE"),
    ];
    for (e, code, why) in cases {
        let s = core_status(e);
        assert_eq!((s.code(), reason(&s).as_str()), (code, why));
    }
}

#[test]
fn each_refusal_has_its_code_reason_and_retry_advice() {
    let cases = [
        (
            Refusal::NoFreeVsFile,
            Code::ResourceExhausted,
            "NO_FREE_VSFILE",
            false,
        ),
        (
            Refusal::NoGuestFiles,
            Code::ResourceExhausted,
            "NO_GUEST_FILES",
            false,
        ),
        (
            Refusal::NoEligibleHart,
            Code::FailedPrecondition,
            "NO_ELIGIBLE_HART",
            false,
        ),
        (
            Refusal::HartUnavailable,
            Code::FailedPrecondition,
            "HART_UNAVAILABLE",
            false,
        ),
        (
            Refusal::WouldStrand,
            Code::FailedPrecondition,
            "WOULD_STRAND",
            false,
        ),
        (Refusal::TryAgain, Code::Unavailable, "TRY_AGAIN", true),
    ];
    assert_eq!(cases.len(), Refusal::ALL.len());
    for (kind, code, why, retry) in cases {
        let s = core_status(CoreError::refused(kind, "no"));
        assert_eq!((s.code(), reason(&s).as_str()), (code, why));
        assert_eq!(s.get_details_retry_info().is_some(), retry, "{why}");
        assert_eq!(s.message(), "no");
        let parsed = Reason::parse(why).expect("a documented reason");
        assert!(parsed.is_refusal(), "{why}");
    }
}

#[test]
fn a_refusal_carries_its_numbers() {
    let facts = Facts {
        needed: Some(5),
        free: Some(1),
        takeable: Some(3),
        hart: None,
    };
    let s = core_status(CoreError::Refused(Refusal::NoFreeVsFile, "x".into(), facts));
    assert_eq!(metadata(&s, "needed").as_deref(), Some("5"));
    assert_eq!(metadata(&s, "free").as_deref(), Some("1"));
    assert_eq!(metadata(&s, "takeable").as_deref(), Some("3"));
    assert_eq!(metadata(&s, "hart"), None);
    let on = core_status(CoreError::refused_on(Refusal::HartUnavailable, 7, "x"));
    assert_eq!(metadata(&on, "hart").as_deref(), Some("7"));
}

#[test]
fn bad_input_names_its_field_in_a_bad_request() {
    let s = core_status(CoreError::invalid("devices", "listed twice"));
    let bad = s.get_details_bad_request().expect("a BadRequest");
    assert_eq!(bad.field_violations.len(), 1);
    assert_eq!(bad.field_violations[0].field, "devices");
    assert_eq!(bad.field_violations[0].description, "listed twice");
    assert_eq!(s.message(), "devices: listed twice");
    assert_eq!(metadata(&s, "field").as_deref(), Some("devices"));
    let direct = invalid_argument("pid", "must be a process id");
    assert_eq!(direct.message(), "pid: must be a process id");
    assert_eq!(
        direct.get_details_bad_request().unwrap().field_violations[0].field,
        "pid"
    );
}

#[test]
fn a_stopped_engine_is_worth_retrying() {
    let s = Status::from(EngineGone);
    assert_eq!(
        (s.code(), reason(&s).as_str()),
        (Code::Unavailable, "ENGINE_STOPPED")
    );
    let retry = s.get_details_retry_info().expect("RetryInfo");
    assert_eq!(retry.retry_delay, Some(RESTART_AFTER));
}
