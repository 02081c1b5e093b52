//! What a program sees when ifad says no, over the wire with a gRPC client:
//! the google.rpc details, an undecodable body, and reflection.

use bytes::{Buf, BufMut, Bytes};
use ifa_api::errors::Reason;
use ifa_api::v1;
use ifa_e2e::Daemon;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::{Code, Status};
use tonic_types::StatusExt;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn metadata(s: &Status, key: &str) -> String {
    let info = s.get_details_error_info().expect("an ErrorInfo");
    assert_eq!(info.domain, "ifa.v1");
    info.metadata.get(key).cloned().unwrap_or_default()
}

/// The status a Place answers, through ifad's own tonic client.
fn place_refused(d: &Daemon, request: v1::PlaceRequest) -> Status {
    runtime().block_on(async {
        let mut c = ifa_api::client::connect(&d.socket).await.unwrap();
        c.place(request).await.unwrap_err()
    })
}

#[test]
fn a_refusal_says_why_and_how_many_in_its_details() {
    let d = Daemon::simulate("harts=2,files=2");
    d.json("place --vm b --vcpus 3 --class burstable");
    let place = v1::PlaceRequest {
        vm: "g".into(),
        vcpus: 5,
        class: v1::Class::Guaranteed.into(),
        ..Default::default()
    };
    let err = place_refused(&d, place);
    assert_eq!(err.code(), Code::ResourceExhausted);
    assert_eq!(Reason::of(&err), Some(Reason::NoFreeVsfile));
    let numbers = ["needed", "free", "takeable"].map(|k| metadata(&err, k));
    assert_eq!(numbers, ["5", "1", "3"]);
    assert!(err.get_details_retry_info().is_none());
}

#[test]
fn bad_input_names_the_field() {
    let d = Daemon::simulate("harts=2,files=2");
    let place = v1::PlaceRequest {
        vm: "z".into(),
        vcpus: 0,
        class: v1::Class::Burstable.into(),
        ..Default::default()
    };
    let err = place_refused(&d, place);
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(Reason::of(&err), Some(Reason::InvalidArgument));
    let bad = err.get_details_bad_request().expect("a BadRequest");
    assert_eq!(bad.field_violations[0].field, "vcpus");
}

/// Sends bytes as they are and reads the reply as bytes.
#[derive(Clone, Default)]
struct RawCodec;

struct Raw;

impl Codec for RawCodec {
    type Encode = Bytes;
    type Decode = Bytes;
    type Encoder = Raw;
    type Decoder = Raw;
    fn encoder(&mut self) -> Raw {
        Raw
    }
    fn decoder(&mut self) -> Raw {
        Raw
    }
}

impl Encoder for Raw {
    type Item = Bytes;
    type Error = Status;
    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put(item);
        Ok(())
    }
}

impl Decoder for Raw {
    type Item = Bytes;
    type Error = Status;
    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, Status> {
        Ok(Some(src.copy_to_bytes(src.remaining())))
    }
}

async fn raw_call(d: &Daemon, path: &'static str, body: &[u8]) -> Result<Bytes, Status> {
    let channel = ifa_api::client::connect_channel(&d.socket).await.unwrap();
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.unwrap();
    let path = http::uri::PathAndQuery::from_static(path);
    let request = tonic::Request::new(Bytes::copy_from_slice(body));
    grpc.unary(request, path, RawCodec)
        .await
        .map(tonic::Response::into_inner)
}

#[test]
fn an_undecodable_body_is_the_callers_error_and_changes_nothing() {
    let d = Daemon::simulate("harts=2,files=2");
    let before = d.json("vms");
    // A string field (vm, 1) claiming 5 bytes with only 2 present; then a
    // field with the invalid wire type 7.
    for body in [b"\x0a\x05ab".as_slice(), b"\x0f\xff\xff"] {
        let err = runtime()
            .block_on(raw_call(&d, "/ifa.v1.Allocator/Place", body))
            .unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
        assert_eq!(Reason::of(&err), Some(Reason::UndecodableRequest));
    }
    assert_eq!(d.json("vms"), before);
}
