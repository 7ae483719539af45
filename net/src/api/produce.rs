//! Produce: each partition's batches go to the owner shard's log; with acks != 0 the answer waits until they are
//! durable (bounded by the request's timeout). Partitions are started in request order, so two pipelined requests
//! from one producer reach a partition in the order they were sent.

use std::rc::Rc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use futures::future::join_all;
use kafka_protocol::messages::produce_request::ProduceRequest;
use kafka_protocol::messages::produce_response::{
    PartitionProduceResponse, ProduceResponse, TopicProduceResponse,
};
use kafka_protocol::messages::TopicName;
use kafka_protocol::protocol::Decodable;

use super::{HeaderStart, PendingResponse, RequestError};
use crate::codes;
use crate::context::ShardContext;
use crate::frame::{begin_response, finish_response};
use crate::partition_ops::{PartitionOp, PartitionReply, PartitionRequest};
use crate::route;

/// Versions below this use the old message formats and are decoded and answered here, not by the codec.
pub const CODEC_VERSION_MIN: i16 = 3;

/// One partition's answer.
struct PartitionResult {
    index: i32,
    error_code: i16,
    base_offset: i64,
    log_start_offset: i64,
    log_append_time_ms: i64,
}

impl PartitionResult {
    fn failed(index: i32, error_code: i16) -> PartitionResult {
        PartitionResult {
            index,
            error_code,
            base_offset: -1,
            log_start_offset: -1,
            log_append_time_ms: -1,
        }
    }
}
type TopicResults = Vec<(TopicName, Vec<PartitionResult>)>;

pub fn dispatch(
    ctx: Rc<ShardContext>,
    correlation_id: i32,
    version: i16,
    request: ProduceRequest,
) -> PendingResponse {
    let acks = request.acks;
    let results = run(ctx, request);
    if acks == 0 {
        return Box::pin(async move {
            results.await;
            None
        });
    }
    super::serve(
        correlation_id,
        version,
        async move { response(results.await) },
    )
}

fn response(results: TopicResults) -> ProduceResponse {
    let responses = results
        .into_iter()
        .map(|(name, partitions)| {
            let partitions = partitions
                .into_iter()
                .map(|r| {
                    PartitionProduceResponse::default()
                        .with_index(r.index)
                        .with_error_code(r.error_code)
                        .with_base_offset(r.base_offset)
                        .with_log_append_time_ms(r.log_append_time_ms)
                        .with_log_start_offset(r.log_start_offset)
                })
                .collect();
            TopicProduceResponse::default()
                .with_name(name)
                .with_partition_responses(partitions)
        })
        .collect();
    ProduceResponse::default().with_responses(responses)
}

/// Starts every partition's append and returns the future of all their answers.
fn run(
    ctx: Rc<ShardContext>,
    request: ProduceRequest,
) -> impl std::future::Future<Output = TopicResults> {
    let acks = request.acks;
    let timeout = if request.timeout_ms > 0 {
        Duration::from_millis(request.timeout_ms as u64)
    } else {
        ctx.config.request_timeout
    };
    async move {
        if ctx.config.auto_create_topics {
            let snapshot = ctx.snapshot();
            let missing: Vec<String> = request
                .topic_data
                .iter()
                .map(|t| t.name.0.to_string())
                .filter(|name| snapshot.topic(name).is_none())
                .collect();
            if !missing.is_empty() {
                super::topics::auto_create(&ctx, missing).await;
            }
        }
        let topics = request.topic_data.into_iter().map(|topic| {
            let name = topic.name.0.to_string();
            let partitions = join_all(topic.partition_data.into_iter().map(|p| {
                let ctx = ctx.clone();
                let index = p.index;
                let op = match p.records {
                    _ if !matches!(acks, -1..=1) => Err(codes::INVALID_REQUIRED_ACKS),
                    Some(records) => {
                        ctx.metrics
                            .produce_bytes_total
                            .fetch_add(records.len() as u64, Relaxed);
                        Ok(PartitionOp::Produce {
                            records,
                            acks,
                            timeout,
                        })
                    }
                    None => Err(codes::CORRUPT_MESSAGE),
                };
                let request = op.map(|op| PartitionRequest {
                    topic: name.clone(),
                    partition: index,
                    op,
                });
                async move {
                    let request = match request {
                        Ok(request) => request,
                        Err(code) => return PartitionResult::failed(index, code),
                    };
                    match route::execute(&ctx, request).await {
                        PartitionReply::Produced {
                            error_code,
                            base_offset,
                            log_start_offset,
                            log_append_time_ms,
                            duplicate,
                        } => {
                            if duplicate {
                                ctx.metrics
                                    .produce_duplicate_batches_total
                                    .fetch_add(1, Relaxed);
                                tracing::debug!(
                                    partition = index,
                                    base_offset,
                                    "retried batch answered as a duplicate"
                                );
                            }
                            PartitionResult {
                                index,
                                error_code,
                                base_offset,
                                log_start_offset,
                                log_append_time_ms,
                            }
                        }
                        other => unreachable!("Produce answered with {other:?}"),
                    }
                }
            }));
            async move { (topic.name, partitions.await) }
        });
        join_all(topics).await
    }
}

/// Produce v0-2: the same request as v3 without the transactional id, answered in the old response layouts.
pub fn dispatch_legacy(
    ctx: &Rc<ShardContext>,
    start: HeaderStart,
    frame: Bytes,
) -> Result<PendingResponse, RequestError> {
    let version = start.api_version;
    let malformed = |reason: &str| RequestError::Malformed {
        api: kafka_protocol::messages::ApiKey::Produce,
        version,
        reason: reason.to_owned(),
    };
    // Header v1: api key, version, correlation id (8 bytes), then a nullable client id string.
    let client_id_len = i16::from_be_bytes([frame[8], frame[9]]);
    let body_start = 10 + usize::try_from(client_id_len).unwrap_or(0);
    if body_start > frame.len() {
        return Err(malformed("client id runs past the frame"));
    }
    let mut as_v3 = BytesMut::with_capacity(frame.len() - body_start + 2);
    as_v3.put_i16(-1); // null transactional id
    as_v3.put_slice(&frame[body_start..]);
    let mut as_v3 = as_v3.freeze();
    let request = ProduceRequest::decode(&mut as_v3, CODEC_VERSION_MIN)
        .map_err(|e| malformed(&e.to_string()))?;
    let acks = request.acks;
    let results = run(ctx.clone(), request);
    Ok(Box::pin(async move {
        let results = results.await;
        (acks != 0).then(|| legacy_response(start.correlation_id, version, &results))
    }))
}

fn legacy_response(correlation_id: i32, version: i16, results: &TopicResults) -> Bytes {
    let mut out = begin_response(correlation_id, 64);
    out.put_i32(results.len() as i32);
    for (name, partitions) in results {
        out.put_i16(name.0.len() as i16);
        out.put_slice(name.0.as_bytes());
        out.put_i32(partitions.len() as i32);
        for r in partitions {
            out.put_i32(r.index);
            out.put_i16(r.error_code);
            out.put_i64(r.base_offset);
            if version >= 2 {
                out.put_i64(r.log_append_time_ms);
            }
        }
    }
    if version >= 1 {
        out.put_i32(0); // throttle time
    }
    finish_response(out)
}
