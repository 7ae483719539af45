//! Fetch: reads every requested partition on its owner shard in parallel, applies the response size limits the way
//! Kafka does, and long-polls — woken by an append on any of the partitions, never by polling — until `min_bytes`
//! are there or `max_wait_ms` has passed.
//!
//! Limits (KIP-74): each partition gives whole batches up to `partition_max_bytes`; the response stops at
//! `max_bytes`, except that the first non-empty partition always yields at least its first whole batch, so a
//! consumer can never be stuck behind a batch larger than its limits.

use std::rc::Rc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use kafka_protocol::messages::fetch_request::FetchRequest;
use kafka_protocol::messages::fetch_response::{
    FetchResponse, FetchableTopicResponse, PartitionData,
};
use kafka_protocol::messages::BrokerId;

use pinlog_engine::RecordSet;

use crate::codes;
use crate::context::ShardContext;
use crate::fetch_session::{self, FetchPosition, SessionAsk};
use crate::partition_ops::{PartitionOp, PartitionReply, PartitionRequest};
use crate::response::ByReference;
use crate::route;
use crate::shard_call::WaitWant;

/// Longest long-poll pinlog honours, whatever the client asks.
const FETCH_WAIT_MAX: Duration = Duration::from_secs(30);

struct Got {
    error_code: i16,
    high_watermark: i64,
    log_start_offset: i64,
    records: RecordSet,
}

/// The response, and the record sets its frame refers to instead of copying (see `response.rs`).
pub type FetchAnswer = (FetchResponse, Vec<ByReference>);

pub async fn handle(ctx: Rc<ShardContext>, request: FetchRequest, version: i16) -> FetchAnswer {
    let max_wait = Duration::from_millis(request.max_wait_ms.max(0) as u64).min(FETCH_WAIT_MAX);
    let deadline = Instant::now() + max_wait;
    let min_bytes = request.min_bytes.max(0) as usize;
    let max_bytes = if request.max_bytes > 0 {
        request.max_bytes as usize
    } else {
        usize::MAX
    };
    let (session, wanted) = match session_partitions(&ctx, &request, version) {
        Ok(planned) => planned,
        Err(code) => return (FetchResponse::default().with_error_code(code), Vec::new()),
    };
    let partition_limits: Vec<usize> = wanted
        .iter()
        .map(|w| w.partition_max_bytes.min(max_bytes))
        .collect();
    loop {
        let mut got = read_all(&ctx, &wanted, &partition_limits).await;
        apply_response_limit(&mut got, &partition_limits, max_bytes);
        let bytes: usize = got.iter().map(|g| g.records.len()).sum();
        let failed = got.iter().any(|g| g.error_code != codes::NONE);
        let now = Instant::now();
        if bytes >= min_bytes || failed || now >= deadline || wanted.is_empty() {
            ctx.metrics
                .fetch_bytes_total
                .fetch_add(bytes as u64, Relaxed);
            return answer(&ctx, session, wanted, got);
        }
        wait_for_any(&ctx, &wanted, &got, deadline - now).await;
    }
}

/// A fetch's session, if it has one: `(id, incremental)`.
type SessionUse = Option<(i32, bool)>;

/// The partitions to read: the request's, or for an incremental fetch its whole session's. Opens, advances or
/// closes the session as the request asks (KIP-227); the error is the code of a session that is gone or out of step.
fn session_partitions(
    ctx: &ShardContext,
    request: &FetchRequest,
    version: i16,
) -> Result<(SessionUse, Vec<FetchPosition>), i16> {
    let now = Instant::now();
    let mut sessions = ctx.fetch_sessions.borrow_mut();
    let ask = SessionAsk::of(version, request.session_id, request.session_epoch);
    if let SessionAsk::Sessionless { close: Some(id) } | SessionAsk::Open { close: Some(id) } = ask
    {
        sessions.close(id);
    }
    let planned = match ask {
        SessionAsk::Sessionless { .. } => Ok((None, fetch_session::positions(request))),
        SessionAsk::Open { .. } => {
            let wanted = fetch_session::positions(request);
            let id = sessions.open(wanted.clone(), now);
            Ok((Some((id, false)), wanted))
        }
        SessionAsk::Incremental { id, epoch } => sessions
            .advance(id, epoch, request, now)
            .map(|wanted| (Some((id, true)), wanted)),
    };
    ctx.metrics
        .fetch_sessions
        .store(sessions.count() as u64, Relaxed);
    ctx.metrics
        .fetch_session_evictions_total
        .store(sessions.evictions_total, Relaxed);
    planned
}

/// The response: every partition, or for an incremental fetch only those with news (records, an error, a moved
/// high watermark or log start). A session remembers what each partition's answer told.
fn answer(
    ctx: &ShardContext,
    session: SessionUse,
    wanted: Vec<FetchPosition>,
    got: Vec<Got>,
) -> FetchAnswer {
    let incremental = session.is_some_and(|(_, incremental)| incremental);
    let mut carried = Vec::with_capacity(if incremental { 0 } else { wanted.len() });
    let mut answered = Vec::with_capacity(got.len());
    for (mut w, g) in wanted.into_iter().zip(got) {
        let news = !g.records.is_empty()
            || g.error_code != codes::NONE
            || g.high_watermark != w.sent_high_watermark
            || g.log_start_offset != w.sent_log_start;
        if incremental && !news {
            continue;
        }
        w.sent_high_watermark = g.high_watermark;
        w.sent_log_start = g.log_start_offset;
        if session.is_some() {
            carried.push(w.clone());
        }
        answered.push((w, g));
    }
    let (mut response, by_reference) = response(answered);
    if let Some((id, _)) = session {
        ctx.fetch_sessions.borrow_mut().sent(id, &carried);
        response.session_id = id;
    }
    (response, by_reference)
}

async fn read_all(ctx: &Rc<ShardContext>, wanted: &[FetchPosition], limits: &[usize]) -> Vec<Got> {
    let reads = wanted
        .iter()
        .zip(limits)
        .map(|(w, &max_bytes)| PartitionRequest {
            topic: w.topic_key.clone(),
            partition: w.partition,
            op: PartitionOp::Read {
                offset: w.offset,
                max_bytes,
            },
        })
        .collect();
    route::execute_many(ctx, reads)
        .await
        .into_iter()
        .map(|reply| match reply {
            PartitionReply::Read {
                error_code,
                high_watermark,
                log_start_offset,
                records,
            } => Got {
                error_code,
                high_watermark,
                log_start_offset,
                records,
            },
            other => unreachable!("Read answered with {other:?}"),
        })
        .collect()
}

/// Resolves when any partition gets data past what was just read, or when `wait` has passed.
async fn wait_for_any(
    ctx: &Rc<ShardContext>,
    wanted: &[FetchPosition],
    got: &[Got],
    wait: Duration,
) {
    let wants = wanted
        .iter()
        .zip(got)
        .map(|(w, g)| WaitWant {
            topic: w.topic_key.clone(),
            partition: w.partition,
            offset: g.high_watermark.max(w.offset),
        })
        .collect();
    route::wait_for_any(ctx, wants, wait).await;
}

/// Trims the partitions' records, in request order, so each stays within its `partition_max_bytes` and the
/// response within `max_bytes` (whole batches only). Only the first non-empty partition may exceed either, by
/// its first whole batch (KIP-74); later partitions whose next batch does not fit return nothing this time.
fn apply_response_limit(got: &mut [Got], partition_limits: &[usize], max_bytes: usize) {
    let mut budget = max_bytes;
    let mut first = true;
    for (g, &partition_limit) in got.iter_mut().zip(partition_limits) {
        if g.records.is_empty() {
            continue;
        }
        let limit = budget.min(partition_limit);
        // The log answers whole batches, so a record set within the limit is kept without walking its batch headers
        // (cold memory in a catch-up: one cache miss per batch).
        let len = g.records.len();
        let keep = if len <= limit {
            len
        } else {
            whole_batches_within_pieces(&g.records, limit, first)
        };
        g.records.truncate(keep);
        budget = budget.saturating_sub(keep);
        first &= keep == 0;
    }
}

/// [`whole_batches_within`] over a record set's pieces (each holds whole batches).
fn whole_batches_within_pieces(records: &RecordSet, limit: usize, at_least_one: bool) -> usize {
    let mut kept = 0;
    for piece in records.pieces() {
        let room = limit.saturating_sub(kept);
        let taken = whole_batches_within(piece, room, at_least_one && kept == 0);
        kept += taken;
        if taken < piece.len() {
            break;
        }
    }
    kept
}

/// Length of the longest prefix of whole batches that fits in `limit` (at least one batch if `at_least_one`).
fn whole_batches_within(records: &[u8], limit: usize, at_least_one: bool) -> usize {
    let mut end = 0;
    while records.len() >= end + 12 {
        let length = i32::from_be_bytes([
            records[end + 8],
            records[end + 9],
            records[end + 10],
            records[end + 11],
        ]);
        let next = end + 12 + length.max(0) as usize;
        if next > records.len() || (next > limit && !(at_least_one && end == 0)) {
            break;
        }
        end = next;
    }
    end
}

fn response(answered: Vec<(FetchPosition, Got)>) -> FetchAnswer {
    let mut topics: Vec<FetchableTopicResponse> = Vec::new();
    let mut by_reference = Vec::new();
    for (w, g) in answered {
        let (records, referred) = ByReference::plan(g.records);
        by_reference.extend(referred);
        let partition = PartitionData::default()
            .with_partition_index(w.partition)
            .with_error_code(g.error_code)
            .with_high_watermark(g.high_watermark)
            .with_last_stable_offset(g.high_watermark)
            .with_log_start_offset(g.log_start_offset)
            .with_aborted_transactions(Some(Vec::new()))
            .with_preferred_read_replica(BrokerId(-1))
            .with_records(Some(records));
        match topics.last_mut() {
            Some(t) if t.topic == w.topic => t.partitions.push(partition),
            _ => topics.push(
                FetchableTopicResponse::default()
                    .with_topic(w.topic)
                    .with_partitions(vec![partition]),
            ),
        }
    }
    (
        FetchResponse::default().with_responses(topics),
        by_reference,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn batches(lengths: &[usize]) -> Vec<u8> {
        let mut out = Vec::new();
        for &len in lengths {
            out.extend_from_slice(&0i64.to_be_bytes());
            out.extend_from_slice(&(len as i32 - 12).to_be_bytes());
            out.resize(out.len() + len - 12, 0);
        }
        out
    }

    /// A response frame that refers to its record sets has exactly the bytes the codec writes into one buffer for
    /// the same record sets in one piece each, at every version pinlog speaks, and refers to (does not copy) the
    /// large one-piece sets and every piece of the sets of several pieces.
    #[test]
    fn referring_frame_is_byte_for_byte_the_codec_frame() {
        let sets: [&[usize]; 8] = [
            &[],
            &[100],
            &[4096],
            &[70_000],
            &[4095],
            &[300_000],
            &[100, 9000, 50],
            &[2000, 2000],
        ];
        let gots = |one_piece: bool| -> Vec<(FetchPosition, Got)> {
            sets.iter()
                .enumerate()
                .map(|(i, lengths)| {
                    let position = FetchPosition {
                        topic: kafka_protocol::messages::TopicName(
                            kafka_protocol::protocol::StrBytes::from_static_str(if i < 3 {
                                "a"
                            } else {
                                "topic-b"
                            }),
                        ),
                        topic_key: std::sync::Arc::from("unused"),
                        partition: i as i32,
                        offset: 0,
                        partition_max_bytes: 0,
                        sent_high_watermark: -1,
                        sent_log_start: -1,
                    };
                    let mut records = RecordSet::default();
                    for &len in lengths.iter() {
                        records.push(Bytes::from(
                            (0..len)
                                .map(|b| (b as u8).wrapping_add(i as u8))
                                .collect::<Vec<u8>>(),
                        ));
                    }
                    if one_piece {
                        records = records.into_contiguous().into();
                    }
                    let got = Got {
                        error_code: 0,
                        high_watermark: 42,
                        log_start_offset: 7,
                        records,
                    };
                    (position, got)
                })
                .collect()
        };
        for version in 4..=12 {
            let (contiguous, contiguous_referred) = response(gots(true));
            let plain = super::super::encode(9, version, &contiguous).expect("encodes");
            let crate::response::ResponseFrame::Whole(plain) = plain else {
                panic!("no references, one buffer");
            };
            let answered = gots(false);
            let referred: Vec<*const u8> = answered
                .iter()
                .filter(|(_, g)| g.records.as_one_piece().is_none() || g.records.len() >= 4096)
                .flat_map(|(_, g)| g.records.pieces().map(|p| p.as_ptr()))
                .collect();
            let (referring, by_reference) = response(answered);
            assert_eq!(
                by_reference
                    .iter()
                    .map(ByReference::len)
                    .collect::<Vec<_>>(),
                vec![4096, 70_000, 300_000, 9150, 4000],
                "v{version}: the large sets and the sets of several pieces"
            );
            let frame = super::super::encode_referring(9, version, &referring, by_reference)
                .expect("encodes");
            let pieces = frame.pieces();
            let joined: Vec<u8> = pieces.iter().flat_map(|p| p.iter().copied()).collect();
            assert_eq!(joined, plain.to_vec(), "v{version}");
            let sent_by_reference = pieces
                .iter()
                .filter(|p| referred.contains(&p.as_ptr()))
                .count();
            assert_eq!(
                sent_by_reference,
                referred.len(),
                "v{version}: those pieces are not copied"
            );
            assert_eq!(
                contiguous_referred
                    .iter()
                    .map(ByReference::len)
                    .collect::<Vec<_>>(),
                vec![4096, 70_000, 300_000, 9150],
                "one piece each: only the large ones are referred to"
            );
        }
    }

    #[test]
    fn whole_batches_only_and_first_batch_always() {
        let records = batches(&[100, 200, 300]);
        assert_eq!(whole_batches_within(&records, 1000, false), 600);
        assert_eq!(whole_batches_within(&records, 350, false), 300);
        assert_eq!(whole_batches_within(&records, 299, false), 100);
        assert_eq!(whole_batches_within(&records, 50, false), 0);
        assert_eq!(whole_batches_within(&records, 50, true), 100);
        assert_eq!(
            whole_batches_within(&records[..150], 1000, false),
            100,
            "a torn batch is never returned"
        );
    }

    #[test]
    fn response_limit_walks_the_batches_of_every_piece() {
        let mut records = RecordSet::from(Bytes::from(batches(&[100, 100])));
        records.push(Bytes::from(batches(&[300])));
        records.push(Bytes::from(batches(&[50, 50])));
        let cut = |limit: usize| {
            let mut got = vec![Got {
                error_code: 0,
                high_watermark: 0,
                log_start_offset: 0,
                records: records.clone(),
            }];
            apply_response_limit(&mut got, &[limit], usize::MAX);
            let g = got.pop().expect("one partition");
            (g.records.len(), g.records.pieces().count())
        };
        assert_eq!(cut(10_000), (600, 3), "within the limit: kept whole");
        assert_eq!(cut(599), (550, 3));
        assert_eq!(
            cut(499),
            (200, 1),
            "a batch never torn, the next piece left out"
        );
        assert_eq!(cut(150), (100, 1));
        assert_eq!(cut(10), (100, 1), "the first batch always");
    }

    #[test]
    fn response_limit_spans_partitions() {
        let mk = |lengths: &[usize]| Got {
            error_code: 0,
            high_watermark: 0,
            log_start_offset: 0,
            records: Bytes::from(batches(lengths)).into(),
        };
        let mut got = vec![mk(&[]), mk(&[500]), mk(&[100, 100]), mk(&[50])];
        apply_response_limit(&mut got, &[usize::MAX; 4], 300);
        let sizes: Vec<usize> = got.iter().map(|g| g.records.len()).collect();
        assert_eq!(
            sizes,
            vec![0, 500, 0, 0],
            "first non-empty partition gives its whole first batch, then the budget is spent"
        );
        let mut got = vec![mk(&[500]), mk(&[200]), mk(&[50, 50])];
        apply_response_limit(&mut got, &[100, 100, 100], 10_000);
        let sizes: Vec<usize> = got.iter().map(|g| g.records.len()).collect();
        assert_eq!(
            sizes,
            vec![500, 0, 100],
            "only the first non-empty partition may exceed its own limit"
        );
        let mut got = vec![mk(&[100]), mk(&[100, 100]), mk(&[50])];
        apply_response_limit(&mut got, &[usize::MAX; 3], 260);
        let sizes: Vec<usize> = got.iter().map(|g| g.records.len()).collect();
        assert_eq!(sizes, vec![100, 100, 50]);
    }
}
