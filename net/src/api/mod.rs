//! Request dispatch: which APIs and versions pinlog speaks, decoding a request, encoding its response.
//!
//! Decoding happens on the connection's reader, in arrival order, so a malformed body closes the connection before
//! anything runs; the handler itself runs as its own task and its encoded response goes back in order.

pub mod alter_configs;
pub mod api_versions;
pub mod cluster;
pub mod configs;
pub mod delete_records;
pub mod fetch;
pub mod groups;
pub mod list_offsets;
pub mod log_dirs;
pub mod metadata;
pub mod partitions;
pub mod produce;
pub mod producer_ids;
pub mod topics;

use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;

use bytes::{BufMut, Bytes};
use kafka_protocol::messages::{
    AlterConfigsRequest, ApiKey, CreatePartitionsRequest, CreateTopicsRequest, DeleteGroupsRequest,
    DeleteRecordsRequest, DeleteTopicsRequest, DescribeClusterRequest, DescribeConfigsRequest,
    DescribeGroupsRequest, DescribeLogDirsRequest, DescribeTopicPartitionsRequest, FetchRequest,
    FindCoordinatorRequest, HeartbeatRequest, IncrementalAlterConfigsRequest,
    InitProducerIdRequest, JoinGroupRequest, LeaveGroupRequest, ListGroupsRequest,
    ListOffsetsRequest, MetadataRequest, OffsetCommitRequest, OffsetDeleteRequest,
    OffsetFetchRequest, RequestHeader, SyncGroupRequest,
};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion};

use crate::context::ShardContext;
use crate::response::{ByReference, PieceBuf, ResponseFrame};

/// Every API pinlog answers, with the version range it advertises in ApiVersions. The ranges are what current
/// clients use; each is within what the `kafka-protocol` codecs implement.
/// Produce starts at 0 although versions 0-2 carry only the old message formats (answered with
/// UNSUPPORTED_FOR_MESSAGE_FORMAT): librdkafka < 2.11.1 turns compression off when Produce v0 is not advertised.
pub const SUPPORTED_APIS: &[(ApiKey, i16, i16)] = &[
    (ApiKey::Produce, 0, 9),
    (ApiKey::Fetch, 4, 12),
    (ApiKey::ListOffsets, 1, 6),
    (ApiKey::Metadata, 0, 12),
    (ApiKey::ApiVersions, 0, 3),
    (ApiKey::CreateTopics, 2, 7),
    (ApiKey::DeleteTopics, 1, 6),
    (ApiKey::DescribeConfigs, 1, 4),
    (ApiKey::FindCoordinator, 0, 4),
    (ApiKey::JoinGroup, 0, 9),
    (ApiKey::SyncGroup, 0, 5),
    (ApiKey::Heartbeat, 0, 4),
    (ApiKey::LeaveGroup, 0, 5),
    (ApiKey::OffsetCommit, 2, 8),
    (ApiKey::OffsetFetch, 1, 8),
    (ApiKey::ListGroups, 0, 5),
    (ApiKey::DescribeGroups, 0, 5),
    (ApiKey::DeleteGroups, 0, 2),
    (ApiKey::OffsetDelete, 0, 0),
    (ApiKey::InitProducerId, 0, 4),
    (ApiKey::DeleteRecords, 0, 2),
    (ApiKey::CreatePartitions, 0, 3),
    (ApiKey::AlterConfigs, 0, 2),
    (ApiKey::IncrementalAlterConfigs, 0, 1),
    (ApiKey::DescribeCluster, 0, 1),
    (ApiKey::DescribeLogDirs, 0, 4),
    (ApiKey::DescribeTopicPartitions, 0, 0),
];

pub fn supported_range(key: ApiKey) -> Option<(i16, i16)> {
    SUPPORTED_APIS
        .iter()
        .find(|(k, _, _)| *k == key)
        .map(|(_, min, max)| (*min, *max))
}

/// A response still being computed: resolves to the encoded frame, or `None` when the request wants no answer
/// (Produce with acks=0).
pub type PendingResponse = Pin<Box<dyn Future<Output = Option<ResponseFrame>>>>;

#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    #[error("unknown api key {0}")]
    UnknownApi(i16),
    #[error("{api:?} v{version} is not supported (supported {min}..={max})")]
    UnsupportedVersion {
        api: ApiKey,
        version: i16,
        min: i16,
        max: i16,
    },
    #[error("malformed {api:?} v{version} request: {reason}")]
    Malformed {
        api: ApiKey,
        version: i16,
        reason: String,
    },
}

/// The fixed start of every request header, read before anything else is decoded.
#[derive(Clone, Copy, Debug)]
pub struct HeaderStart {
    pub api_key: i16,
    pub api_version: i16,
    pub correlation_id: i32,
}

impl HeaderStart {
    pub fn parse(frame: &[u8]) -> HeaderStart {
        // FrameReader::next_frame guarantees at least REQUEST_HEADER_BYTES_MIN bytes.
        HeaderStart {
            api_key: i16::from_be_bytes([frame[0], frame[1]]),
            api_version: i16::from_be_bytes([frame[2], frame[3]]),
            correlation_id: i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]),
        }
    }
}

/// Decodes one request frame and starts its handler. Errors mean the connection must be closed.
/// Returns the request's API with its pending response.
pub fn dispatch(
    ctx: &Rc<ShardContext>,
    frame: Bytes,
) -> Result<(ApiKey, PendingResponse), RequestError> {
    let start = HeaderStart::parse(&frame);
    let api =
        ApiKey::try_from(start.api_key).map_err(|_| RequestError::UnknownApi(start.api_key))?;
    let (min, max) = supported_range(api).ok_or(RequestError::UnknownApi(start.api_key))?;
    let version = start.api_version;
    if api == ApiKey::ApiVersions && version > max {
        // KIP-511: a client newer than us gets a v0 answer listing what we support.
        return Ok((
            api,
            ready(api_versions::unsupported_version_answer(
                start.correlation_id,
            )),
        ));
    }
    if version < min || version > max {
        return Err(RequestError::UnsupportedVersion {
            api,
            version,
            min,
            max,
        });
    }
    if api == ApiKey::Produce && version < produce::CODEC_VERSION_MIN {
        return Ok((api, produce::dispatch_legacy(ctx, start, frame)?));
    }
    let malformed = |reason: String| RequestError::Malformed {
        api,
        version,
        reason,
    };
    // Produce keeps the frame: its records become the partitions' owned buffers (see `produce::take_records`).
    let produce_frame = (api == ApiKey::Produce).then(|| frame.clone());
    let mut body = frame;
    let header = RequestHeader::decode(&mut body, api.request_header_version(version))
        .map_err(|e| malformed(e.to_string()))?;
    let ctx = ctx.clone();
    let id = header.correlation_id;
    if let Some(frame) = produce_frame {
        // Every other view of the frame must be gone before the records can own it.
        drop(header);
        let request = decode(&mut body, version, malformed)?;
        drop(body);
        return Ok((api, produce::dispatch(ctx, id, version, request, frame)));
    }
    let pending = match api {
        ApiKey::Fetch => {
            let handler = fetch::handle(
                ctx,
                decode::<FetchRequest>(&mut body, version, malformed)?,
                version,
            );
            Box::pin(async move {
                let (response, records) = handler.await;
                encode_referring(id, version, &response, records)
            })
        }
        ApiKey::ListOffsets => serve(
            id,
            version,
            list_offsets::handle(
                ctx,
                version,
                decode::<ListOffsetsRequest>(&mut body, version, malformed)?,
            ),
        ),
        ApiKey::Metadata => serve(
            id,
            version,
            metadata::handle(
                ctx,
                version,
                decode::<MetadataRequest>(&mut body, version, malformed)?,
            ),
        ),
        ApiKey::ApiVersions => ready(encode(id, version, &api_versions::answer())),
        ApiKey::CreateTopics => serve(
            id,
            version,
            topics::create(
                ctx,
                decode::<CreateTopicsRequest>(&mut body, version, malformed)?,
            ),
        ),
        ApiKey::DeleteTopics => serve(
            id,
            version,
            topics::delete(
                ctx,
                decode::<DeleteTopicsRequest>(&mut body, version, malformed)?,
            ),
        ),
        ApiKey::DeleteRecords => serve(
            id,
            version,
            delete_records::handle(
                ctx,
                decode::<DeleteRecordsRequest>(&mut body, version, malformed)?,
            ),
        ),
        ApiKey::InitProducerId => serve(
            id,
            version,
            producer_ids::init(
                ctx,
                decode::<InitProducerIdRequest>(&mut body, version, malformed)?,
            ),
        ),
        ApiKey::DescribeConfigs => serve(
            id,
            version,
            configs::describe(
                ctx,
                version,
                decode::<DescribeConfigsRequest>(&mut body, version, malformed)?,
            ),
        ),
        ApiKey::FindCoordinator => serve(
            id,
            version,
            groups::find_coordinator(
                ctx,
                version,
                decode::<FindCoordinatorRequest>(&mut body, version, malformed)?,
            ),
        ),
        ApiKey::JoinGroup => {
            let client_id = header.client_id.as_deref().unwrap_or_default().to_owned();
            serve(
                id,
                version,
                groups::join(
                    ctx,
                    version,
                    client_id,
                    decode::<JoinGroupRequest>(&mut body, version, malformed)?,
                ),
            )
        }
        ApiKey::SyncGroup => serve(
            id,
            version,
            groups::sync(
                ctx,
                decode::<SyncGroupRequest>(&mut body, version, malformed)?,
            ),
        ),
        ApiKey::Heartbeat => serve(
            id,
            version,
            groups::heartbeat(
                ctx,
                decode::<HeartbeatRequest>(&mut body, version, malformed)?,
            ),
        ),
        ApiKey::LeaveGroup => serve(
            id,
            version,
            groups::leave(
                ctx,
                version,
                decode::<LeaveGroupRequest>(&mut body, version, malformed)?,
            ),
        ),
        ApiKey::OffsetCommit => serve(
            id,
            version,
            groups::offset_commit(
                ctx,
                decode::<OffsetCommitRequest>(&mut body, version, malformed)?,
            ),
        ),
        ApiKey::OffsetFetch => serve(
            id,
            version,
            groups::offset_fetch(
                ctx,
                version,
                decode::<OffsetFetchRequest>(&mut body, version, malformed)?,
            ),
        ),
        ApiKey::ListGroups => serve(
            id,
            version,
            groups::list_groups(
                ctx,
                decode::<ListGroupsRequest>(&mut body, version, malformed)?,
            ),
        ),
        ApiKey::DescribeGroups => serve(
            id,
            version,
            groups::describe_groups(
                ctx,
                decode::<DescribeGroupsRequest>(&mut body, version, malformed)?,
            ),
        ),
        ApiKey::DeleteGroups => serve(
            id,
            version,
            groups::delete_groups(
                ctx,
                decode::<DeleteGroupsRequest>(&mut body, version, malformed)?,
            ),
        ),
        ApiKey::OffsetDelete => serve(
            id,
            version,
            groups::offset_delete(
                ctx,
                decode::<OffsetDeleteRequest>(&mut body, version, malformed)?,
            ),
        ),
        ApiKey::CreatePartitions => serve(
            id,
            version,
            partitions::create(
                ctx,
                decode::<CreatePartitionsRequest>(&mut body, version, malformed)?,
            ),
        ),
        ApiKey::AlterConfigs => serve(
            id,
            version,
            alter_configs::alter(
                ctx,
                decode::<AlterConfigsRequest>(&mut body, version, malformed)?,
            ),
        ),
        ApiKey::IncrementalAlterConfigs => serve(
            id,
            version,
            alter_configs::incremental_alter(
                ctx,
                decode::<IncrementalAlterConfigsRequest>(&mut body, version, malformed)?,
            ),
        ),
        ApiKey::DescribeCluster => serve(
            id,
            version,
            cluster::describe_cluster(
                ctx,
                decode::<DescribeClusterRequest>(&mut body, version, malformed)?,
            ),
        ),
        ApiKey::DescribeTopicPartitions => serve(
            id,
            version,
            cluster::describe_topic_partitions(
                ctx,
                decode::<DescribeTopicPartitionsRequest>(&mut body, version, malformed)?,
            ),
        ),
        ApiKey::DescribeLogDirs => serve(
            id,
            version,
            log_dirs::describe(
                ctx,
                decode::<DescribeLogDirsRequest>(&mut body, version, malformed)?,
            ),
        ),
        other => return Err(RequestError::UnknownApi(other as i16)),
    };
    Ok((api, pending))
}

fn decode<T: Decodable>(
    body: &mut Bytes,
    version: i16,
    malformed: impl Fn(String) -> RequestError,
) -> Result<T, RequestError> {
    T::decode(body, version).map_err(|e| malformed(e.to_string()))
}

fn ready(frame: Option<ResponseFrame>) -> PendingResponse {
    Box::pin(async move { frame })
}

/// Runs a handler and encodes its response at the request's version.
pub fn serve<R, F>(correlation_id: i32, version: i16, handler: F) -> PendingResponse
where
    R: Encodable + HeaderVersion,
    F: Future<Output = R> + 'static,
{
    Box::pin(async move { encode(correlation_id, version, &handler.await) })
}

/// Encodes a response frame (size, header, body) into one buffer.
pub fn encode<R: Encodable + HeaderVersion>(
    correlation_id: i32,
    version: i16,
    response: &R,
) -> Option<ResponseFrame> {
    encode_referring(correlation_id, version, response, Vec::new())
}

/// Encodes a response frame (size, header, body) that refers to `records` instead of copying them: the response's
/// record sets as planned by [`ByReference::plan`], in the order the codec writes them (see `response.rs`). `None`
/// only if the codec refuses our own response or never writes a planned record set, which is a bug: it is logged and
/// the client sees its request time out rather than a corrupt frame.
pub fn encode_referring<R: Encodable + HeaderVersion>(
    correlation_id: i32,
    version: i16,
    response: &R,
    records: Vec<ByReference>,
) -> Option<ResponseFrame> {
    let body = match response.compute_size(version) {
        Ok(size) => size,
        Err(err) => {
            tracing::error!(%err, version, "cannot size response");
            return None;
        }
    };
    // The response header: the correlation id, then (header v1) an empty tagged-field list.
    let flexible_header = R::header_version(version) >= 1;
    let header = if flexible_header { 5 } else { 4 };
    let Ok(size) = i32::try_from(header + body) else {
        tracing::error!(
            bytes = header + body,
            version,
            "response larger than a frame can say"
        );
        return None;
    };
    let referred: usize = records.iter().map(ByReference::len).sum();
    let mut out = PieceBuf::new((4 + header + body).saturating_sub(referred), records);
    out.put_i32(size);
    out.put_i32(correlation_id);
    if flexible_header {
        out.put_u8(0); // no tagged fields in the response header
    }
    if let Err(err) = response.encode(&mut out, version) {
        tracing::error!(%err, version, "cannot encode response");
        return None;
    }
    let Some(frame) = out.finish() else {
        tracing::error!(
            version,
            "a record set to send by reference was not met in the response"
        );
        return None;
    };
    if frame.len() != 4 + size as usize {
        tracing::error!(
            computed = 4 + size as usize,
            encoded = frame.len(),
            version,
            "response size differs from its computed size"
        );
        return None;
    }
    Some(frame)
}
