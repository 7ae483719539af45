//! ApiVersions: advertises exactly [`SUPPORTED_APIS`](super::SUPPORTED_APIS). The encoders take the list, so any
//! endpoint that speaks the protocol (pinlog-bench's null broker) answers the same way for its own.

use bytes::{BufMut, BytesMut};
use kafka_protocol::messages::api_versions_response::{ApiVersion, ApiVersionsResponse};
use kafka_protocol::messages::ApiKey;

use crate::codes;
use crate::frame::{begin_response, finish_response};
use crate::response::ResponseFrame;

pub fn answer() -> ApiVersionsResponse {
    answer_for(super::SUPPORTED_APIS)
}

/// The answer listing `apis` as (key, lowest version, highest version).
pub fn answer_for(apis: &[(ApiKey, i16, i16)]) -> ApiVersionsResponse {
    let api_keys = apis
        .iter()
        .map(|(key, min, max)| {
            ApiVersion::default()
                .with_api_key(*key as i16)
                .with_min_version(*min)
                .with_max_version(*max)
        })
        .collect();
    ApiVersionsResponse::default()
        .with_error_code(codes::NONE)
        .with_api_keys(api_keys)
}

/// KIP-511: a request above our highest ApiVersions version is answered in the v0 format with
/// UNSUPPORTED_VERSION and our ranges, so the client can retry at a version we speak.
pub fn unsupported_version_answer(correlation_id: i32) -> Option<ResponseFrame> {
    let apis = super::SUPPORTED_APIS;
    let mut out = begin_response(correlation_id, 6 + apis.len() * 6);
    put_unsupported_version_body(&mut out, apis);
    Some(finish_response(out).into())
}

/// The v0 body of that answer for `apis`: the error code, then each API's range.
pub fn put_unsupported_version_body(out: &mut BytesMut, apis: &[(ApiKey, i16, i16)]) {
    out.put_i16(codes::UNSUPPORTED_VERSION);
    out.put_i32(apis.len() as i32);
    for (key, min, max) in apis {
        out.put_i16(*key as i16);
        out.put_i16(*min);
        out.put_i16(*max);
    }
}
