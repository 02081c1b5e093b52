//! The server's codec: prost's, except that a request body that does not
//! decode is the caller's fault (INVALID_ARGUMENT, reason
//! `UNDECODABLE_REQUEST`), not INTERNAL, which ifad keeps for "applied but
//! not durable".

use std::collections::HashMap;

use tonic::codec::{BufferSettings, Codec, DecodeBuf, Decoder};
use tonic::{Code, Status};
use tonic_prost::{ProstCodec, ProstDecoder};
use tonic_types::{ErrorDetails, StatusExt};

use crate::errors::{DOMAIN, Reason};

/// Encodes responses as prost does; decodes requests as prost does, with
/// the error above.
#[derive(Debug, Clone, Default)]
pub struct RequestCodec<T, U>(ProstCodec<T, U>);

impl<T, U> Codec for RequestCodec<T, U>
where
    T: prost::Message + Send + 'static,
    U: prost::Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = <ProstCodec<T, U> as Codec>::Encoder;
    type Decoder = RequestDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        self.0.encoder()
    }

    fn decoder(&mut self) -> Self::Decoder {
        RequestDecoder(self.0.decoder())
    }
}

#[derive(Debug, Clone, Default)]
pub struct RequestDecoder<U>(ProstDecoder<U>);

impl<U: prost::Message + Default> Decoder for RequestDecoder<U> {
    type Item = U;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<U>, Status> {
        self.0.decode(buf).map_err(undecodable)
    }

    fn buffer_settings(&self) -> BufferSettings {
        self.0.buffer_settings()
    }
}

/// prost's decode error (always INTERNAL) as the caller's error.
pub fn undecodable(prost_error: Status) -> Status {
    let why = prost_error.message().to_string();
    let mut details = ErrorDetails::new();
    details.set_error_info(Reason::UndecodableRequest.as_str(), DOMAIN, HashMap::new());
    details.add_bad_request_violation("request", why.clone());
    Status::with_error_details(
        Code::InvalidArgument,
        format!("the request body is not a valid protobuf message: {why}"),
        details,
    )
}
