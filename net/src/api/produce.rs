//! Produce: each partition's batches go to the owner shard's log; with acks != 0 the answer waits until they are
//! durable (bounded by the request's timeout). Partitions are started in request order, so two pipelined requests
//! from one producer reach a partition in the order they were sent.

use std::rc::Rc;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::produce_request::ProduceRequest;
use kafka_protocol::messages::produce_response::{
    PartitionProduceResponse, ProduceResponse, TopicProduceResponse,
};
use kafka_protocol::messages::{TopicName, TransactionalId};
use kafka_protocol::protocol::{Decodable, StrBytes};

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

/// A partition of the request, in request order: refused before running (the code), or its op pushed to the ops that
/// run, whose replies come back in the same order.
type Planned = (i32, Result<(), i16>);

/// Starts a decoded Produce request; `frame` is the buffer it was decoded from.
pub fn dispatch(
    ctx: Rc<ShardContext>,
    correlation_id: i32,
    version: i16,
    mut request: ProduceRequest,
    frame: Bytes,
) -> PendingResponse {
    let acks = request.acks;
    let records = take_records(&mut request, frame);
    let results = run(ctx, request, records);
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

/// Where one partition's records are: a span of the request frame, or (outside it) their own copy.
enum Span {
    Frame { at: usize, len: usize },
    Copied(BytesMut),
}

/// Takes every partition's records out of `request` as owned buffers, in request order. They are slices of `frame`,
/// the request's receive buffer: once no other view of it is left, the buffer itself is split among the partitions
/// (no copy), so each owner shard's log patches offsets into its part and keeps it in the tail. A part keeps the
/// whole frame allocated until the last part is evicted. Should a view still be alive, each part is copied instead.
fn take_records(request: &mut ProduceRequest, frame: Bytes) -> Vec<Option<BytesMut>> {
    let (base, end) = (
        frame.as_ptr() as usize,
        frame.as_ptr() as usize + frame.len(),
    );
    let spans: Vec<Option<Span>> = request
        .topic_data
        .iter_mut()
        .flat_map(|t| t.partition_data.iter_mut())
        .map(|p| {
            p.records.take().map(|r| {
                let at = r.as_ptr() as usize;
                if !r.is_empty() && at >= base && at + r.len() <= end {
                    Span::Frame {
                        at: at - base,
                        len: r.len(),
                    }
                } else {
                    Span::Copied(BytesMut::from(&r[..]))
                }
            })
        })
        .collect();
    detach_from_frame(request);
    let mut in_frame = spans.iter().flatten().filter_map(|s| match s {
        Span::Frame { at, len } => Some((*at, *len)),
        Span::Copied(_) => None,
    });
    let mut cursor = 0;
    let ordered = in_frame.all(|(at, len)| {
        let after = at >= cursor;
        cursor = at + len;
        after
    });
    let mut unique = match ordered {
        true => frame.try_into_mut(),
        false => Err(frame),
    };
    let mut cursor = 0;
    spans
        .into_iter()
        .map(|span| {
            span.map(|span| match (span, &mut unique) {
                (Span::Copied(own), _) => own,
                (Span::Frame { at, len }, Ok(buf)) => {
                    buf.advance(at - cursor);
                    cursor = at + len;
                    buf.split_to(len)
                }
                (Span::Frame { at, len }, Err(frame)) => BytesMut::from(&frame[at..at + len]),
            })
        })
        .collect()
}

/// Replaces what the decoder sliced out of the frame, besides the records, with owned copies (a few short strings
/// per request), so the records can own the frame.
fn detach_from_frame(request: &mut ProduceRequest) {
    let own = |s: &StrBytes| StrBytes::from_string(s.as_str().to_owned());
    request.transactional_id = request
        .transactional_id
        .as_ref()
        .map(|id| TransactionalId(own(&id.0)));
    request.unknown_tagged_fields.clear();
    for topic in &mut request.topic_data {
        topic.name = TopicName(own(&topic.name.0));
        topic.unknown_tagged_fields.clear();
        for partition in &mut topic.partition_data {
            partition.unknown_tagged_fields.clear();
        }
    }
}

/// Starts every partition's append and returns the future of all their answers.
fn run(
    ctx: Rc<ShardContext>,
    request: ProduceRequest,
    records: Vec<Option<BytesMut>>,
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
                .filter(|t| snapshot.topic(&t.name).is_none())
                .map(|t| t.name.0.to_string())
                .collect();
            if !missing.is_empty() {
                super::topics::auto_create(&ctx, missing).await;
            }
        }
        let mut records = records.into_iter();
        let mut ops: Vec<PartitionRequest> = Vec::new();
        let layout: Vec<(TopicName, Vec<Planned>)> = request
            .topic_data
            .into_iter()
            .map(|topic| {
                let name: Arc<str> = Arc::from(topic.name.0.as_str());
                let partitions = topic
                    .partition_data
                    .into_iter()
                    .map(|p| {
                        let op = match records.next().expect("one entry per partition") {
                            _ if !matches!(acks, -1..=1) => Err(codes::INVALID_REQUIRED_ACKS),
                            Some(records) => {
                                ctx.metrics
                                    .produce_bytes_total
                                    .fetch_add(records.len() as u64, Relaxed);
                                ops.push(PartitionRequest {
                                    topic: name.clone(),
                                    partition: p.index,
                                    op: PartitionOp::Produce {
                                        records,
                                        acks,
                                        timeout,
                                    },
                                });
                                Ok(())
                            }
                            None => Err(codes::CORRUPT_MESSAGE),
                        };
                        (p.index, op)
                    })
                    .collect();
                (topic.name, partitions)
            })
            .collect();
        let mut replies = route::execute_many(&ctx, ops).await.into_iter();
        layout
            .into_iter()
            .map(|(name, partitions)| {
                let results = partitions.into_iter().map(|(index, op)| match op {
                    Err(code) => PartitionResult::failed(index, code),
                    Ok(()) => produced(&ctx, index, replies.next().expect("a reply per op")),
                });
                (name, results.collect())
            })
            .collect()
    }
}

fn produced(ctx: &ShardContext, index: i32, reply: PartitionReply) -> PartitionResult {
    match reply {
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
    let as_v3 = as_v3.freeze();
    let mut body = as_v3.clone();
    let mut request = ProduceRequest::decode(&mut body, CODEC_VERSION_MIN)
        .map_err(|e| malformed(&e.to_string()))?;
    drop(body);
    let acks = request.acks;
    let records = take_records(&mut request, as_v3);
    let results = run(ctx.clone(), request, records);
    Ok(Box::pin(async move {
        let results = results.await;
        (acks != 0).then(|| legacy_response(start.correlation_id, version, &results).into())
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

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
    use kafka_protocol::protocol::Encodable;

    /// A Produce v9 body with two topics of two partitions each; partition p's records are `[p + 1; 100 + p]`.
    fn frame() -> Bytes {
        let topic = |name: &str, first: i32| {
            TopicProduceData::default()
                .with_name(TopicName(StrBytes::from_string(name.into())))
                .with_partition_data(
                    (first..first + 2)
                        .map(|p| {
                            PartitionProduceData::default()
                                .with_index(p)
                                .with_records(Some(Bytes::from(vec![
                                    p as u8 + 1;
                                    100 + p as usize
                                ])))
                        })
                        .collect(),
                )
        };
        let request = ProduceRequest::default()
            .with_acks(-1)
            .with_timeout_ms(1000)
            .with_topic_data(vec![topic("a", 0), topic("b", 2)]);
        let mut out = BytesMut::new();
        request.encode(&mut out, 9).unwrap();
        out.freeze()
    }

    fn decode(frame: &Bytes) -> ProduceRequest {
        let mut body = frame.clone();
        ProduceRequest::decode(&mut body, 9).unwrap()
    }

    fn check_contents(parts: &[Option<BytesMut>]) {
        assert_eq!(parts.len(), 4);
        for (p, part) in parts.iter().enumerate() {
            assert_eq!(part.as_deref(), Some(&vec![p as u8 + 1; 100 + p][..]));
        }
    }

    #[test]
    fn records_take_over_the_frame_without_a_copy() {
        let frame = frame();
        let (base, len) = (frame.as_ptr() as usize, frame.len());
        let mut request = decode(&frame);
        let parts = take_records(&mut request, frame);
        check_contents(&parts);
        for part in parts.iter().flatten() {
            let at = part.as_ptr() as usize;
            assert!(
                at >= base && at + part.len() <= base + len,
                "part lives in the frame"
            );
        }
    }

    #[test]
    fn records_are_copied_while_another_view_of_the_frame_lives() {
        let frame = frame();
        let view = frame.slice(0..4);
        let mut request = decode(&frame);
        let parts = take_records(&mut request, frame);
        check_contents(&parts);
        assert!(parts
            .iter()
            .flatten()
            .all(|p| !(view.as_ptr()..view.as_ptr().wrapping_add(200)).contains(&p.as_ptr())));
    }
}
