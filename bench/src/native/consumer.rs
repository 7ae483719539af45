//! The native consumer: an assign()-style reader of every partition, one thread per leader broker, one Fetch in
//! flight per connection (as Kafka consumers do), walking the returned batches in place.
//!
//! Start positions come from ListOffsets (log end for `start = "latest"`, log start for `"earliest"`); the consumer
//! counts itself ready only once it has them, so the runner can start producers knowing nothing is missed.
//!
//! Fetches go through an incremental fetch session (KIP-227) where the broker grants one, as the Java consumer's do:
//! a fetch names only the partitions whose position moved, and the answer has only the partitions with news. A broker
//! that grants none (session id 0) gets full fetches.

use std::collections::HashMap;
use std::sync::atomic::Ordering::Relaxed;
use std::thread;

use kafka_protocol::messages::fetch_request::{FetchPartition, FetchRequest, FetchTopic};
use kafka_protocol::messages::{ApiKey, BrokerId, TopicName};
use kafka_protocol::protocol::StrBytes;

use super::admin::{offsets, OFFSET_EARLIEST, OFFSET_LATEST};
use super::batch::{for_each_record, parse_header};
use super::conn;
use crate::driver::ConsumeJob;
use crate::error::BenchError;
use crate::payload::{now_micros, stamp_of};
use crate::stats::{Live, WorkerReport};
use crate::workload::StartAt;

/// How long the broker may hold a Fetch waiting for data; also bounds how long a stop takes to be noticed.
pub const FETCH_MAX_WAIT_MS: i32 = 250;

pub fn consume(job: &ConsumeJob<'_>, live: &Live) -> Result<WorkerReport, BenchError> {
    let groups = job.layout.by_leader();
    let leaders = groups.len() as u32;
    let ready_target = leaders;
    let ready = std::sync::atomic::AtomicU32::new(0);
    let ready = &ready;
    thread::scope(|scope| {
        let handles: Vec<_> = groups
            .into_iter()
            .map(|(addr, partitions)| {
                scope.spawn(move || {
                    let on_ready = || {
                        if ready.fetch_add(1, Relaxed) + 1 == ready_target {
                            live.consumers_ready.fetch_add(1, Relaxed);
                        }
                    };
                    consume_from(job, live, &addr, &partitions, on_ready)
                })
            })
            .collect();
        let mut report = WorkerReport::default();
        for handle in handles {
            match handle.join() {
                Ok(Ok(r)) => report.e2e.merge(&r.e2e),
                Ok(Err(e)) => return Err(e),
                Err(_) => return Err(BenchError::protocol("Fetch", "a fetch thread panicked")),
            }
        }
        Ok(report)
    })
}

/// Fetches `partitions` from their leader `addr` until stopped or caught up.
fn consume_from(
    job: &ConsumeJob<'_>,
    live: &Live,
    addr: &str,
    partitions: &[i32],
    on_ready: impl FnOnce(),
) -> Result<WorkerReport, BenchError> {
    let topic = &job.layout.topic;
    let spec = &job.workload.consumer;
    let mut conn = conn::connect(addr)?;
    let start = match spec.start {
        StartAt::Latest => OFFSET_LATEST,
        StartAt::Earliest => OFFSET_EARLIEST,
    };
    let mut positions = offsets(&mut conn, topic, partitions, start)?;
    let targets: Option<Vec<i64>> = job
        .end_offsets
        .map(|ends| partitions.iter().map(|&p| ends[p as usize]).collect());
    on_ready();
    if targets.is_some() {
        live.wait_for_window();
    }
    let name = TopicName(StrBytes::from_string(topic.clone()));
    let index: HashMap<i32, usize> = partitions
        .iter()
        .enumerate()
        .map(|(i, &p)| (p, i))
        .collect();
    // Sessions exist from Fetch v7; an older broker gets the full fetches of epoch -1.
    let mut session = if conn.version(ApiKey::Fetch)? >= 7 {
        Session::default()
    } else {
        Session::off()
    };
    let mut report = WorkerReport::default();
    loop {
        if live.stopped() {
            break;
        }
        if let Some(t) = &targets {
            if positions.iter().zip(t).all(|(pos, end)| pos >= end) {
                break;
            }
        }
        let named = session.to_name(&positions);
        let request = FetchRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_max_wait_ms(FETCH_MAX_WAIT_MS)
            .with_min_bytes(1)
            .with_max_bytes(spec.fetch_max_bytes)
            .with_isolation_level(0)
            .with_session_id(session.id)
            .with_session_epoch(session.epoch)
            .with_topics(vec![FetchTopic::default()
                .with_topic(name.clone())
                .with_partitions(
                    named
                        .iter()
                        .map(|&i| {
                            FetchPartition::default()
                                .with_partition(partitions[i])
                                .with_current_leader_epoch(-1)
                                .with_fetch_offset(positions[i])
                                .with_log_start_offset(-1)
                                .with_partition_max_bytes(spec.partition_max_bytes)
                        })
                        .collect(),
                )]);
        let answer = conn.call(ApiKey::Fetch, &request)?;
        if SESSION_LOST.contains(&answer.error_code) {
            // Evicted, or out of step: start a new session with a full fetch, as Kafka clients do.
            session = Session::default();
            continue;
        }
        if answer.error_code != 0 {
            return Err(BenchError::Broker {
                what: "Fetch".into(),
                code: answer.error_code,
            });
        }
        session.answered(answer.session_id, &named, &positions);
        let done = now_micros();
        for part in answer.responses.iter().flat_map(|t| &t.partitions) {
            let Some(&i) = index.get(&part.partition_index) else {
                continue;
            };
            if part.error_code != 0 {
                live.consume_errors.fetch_add(1, Relaxed);
                report.note_error(|| {
                    format!(
                        "Fetch partition {} error code {}",
                        part.partition_index, part.error_code
                    )
                });
                if part.error_code == OFFSET_OUT_OF_RANGE {
                    // Retention passed the position: start again where the workload starts, as a Kafka consumer's
                    // auto.offset.reset does, instead of asking for the gone offset on every fetch.
                    positions[i] = offsets(&mut conn, topic, &[part.partition_index], start)?[0];
                }
                continue;
            }
            let Some(records) = &part.records else {
                continue;
            };
            positions[i] = read_batches(records, positions[i], live, &mut report, done)?;
        }
    }
    Ok(report)
}

/// FETCH_SESSION_ID_NOT_FOUND and INVALID_FETCH_SESSION_EPOCH: the session is gone.
const SESSION_LOST: [i16; 2] = [70, 71];
/// The partition's error when the fetch offset is below its log start (or past its end).
const OFFSET_OUT_OF_RANGE: i16 = 1;

/// This connection's incremental fetch session: its id (0 = none yet), the epoch of the next fetch, and the position
/// the broker holds for each partition (`None` before the session has it).
#[derive(Debug, Default)]
struct Session {
    id: i32,
    epoch: i32,
    known: Vec<Option<i64>>,
    /// A broker before Fetch v7: full fetches outside any session (epoch -1).
    off: bool,
}

impl Session {
    fn off() -> Session {
        Session {
            epoch: -1,
            off: true,
            ..Session::default()
        }
    }

    /// The partitions (indices) the next fetch names: all of them to open a session, else those that moved.
    fn to_name(&self, positions: &[i64]) -> Vec<usize> {
        (0..positions.len())
            .filter(|&i| self.id == 0 || self.known.get(i).copied().flatten() != Some(positions[i]))
            .collect()
    }

    /// After a successful fetch that named `named` at `positions`: the broker's session id (0 = it keeps none, so
    /// the next fetch asks again with a full one) and what it now holds.
    fn answered(&mut self, id: i32, named: &[usize], positions: &[i64]) {
        if self.off {
            return;
        }
        if id == 0 {
            *self = Session::default();
            return;
        }
        if self.id != id {
            self.known = vec![None; positions.len()];
        }
        for &i in named {
            self.known[i] = Some(positions[i]);
        }
        self.id = id;
        self.epoch = if self.epoch == i32::MAX {
            1
        } else {
            self.epoch + 1
        };
    }
}

/// Counts the records of the complete batches in `records` at or after `position`; returns the next position.
fn read_batches(
    records: &[u8],
    mut position: i64,
    live: &Live,
    report: &mut WorkerReport,
    done_us: u64,
) -> Result<i64, BenchError> {
    let mut rest = records;
    let (mut count, mut bytes) = (0u64, 0u64);
    // Consecutive records with one stamp (an unpaced producer's 16 per clock reading) go into the histogram as one
    // entry: (stamp, records).
    let mut run = (0u64, 0u64);
    let bad = |e: super::batch::BatchError| BenchError::protocol("Fetch records", e);
    while let Some(header) = parse_header(rest).map_err(bad)? {
        let batch = &rest[..header.total_bytes];
        if header.next_offset() > position {
            let first_wanted = position;
            let mut offset = header.base_offset;
            for_each_record(&header, batch, |key_len, value| {
                // A batch may start before the position asked for: skip the records already read.
                if offset >= first_wanted {
                    count += 1;
                    bytes += (key_len + value.len()) as u64;
                    if let Some(stamp) = stamp_of(value) {
                        if run.1 > 0 && run.0 != stamp {
                            report
                                .e2e
                                .record_n(live, run.0, done_us.saturating_sub(run.0), run.1);
                            run.1 = 0;
                        }
                        run = (stamp, run.1 + 1);
                    }
                }
                offset += 1;
            })
            .map_err(bad)?;
            position = header.next_offset();
        }
        rest = &rest[header.total_bytes..];
    }
    if run.1 > 0 {
        report
            .e2e
            .record_n(live, run.0, done_us.saturating_sub(run.0), run.1);
    }
    live.add_consumed(count, bytes);
    Ok(position)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::native::batch::BatchBuilder;

    fn batch_at(base: i64, values: &[&[u8]]) -> Vec<u8> {
        let mut b = BatchBuilder::with_capacity(1024);
        for v in values {
            b.push(0, None, v);
        }
        let mut bytes = b.finish().to_vec();
        bytes[0..8].copy_from_slice(&base.to_be_bytes());
        bytes
    }

    #[test]
    fn a_session_names_only_moved_partitions_and_restarts_when_refused() {
        let mut session = Session::default();
        let positions = vec![5, 7, 9];
        assert_eq!(
            session.to_name(&positions),
            vec![0, 1, 2],
            "a full fetch opens it"
        );
        assert_eq!(session.epoch, 0);
        session.answered(42, &[0, 1, 2], &positions);
        assert_eq!((session.id, session.epoch), (42, 1));
        assert!(
            session.to_name(&positions).is_empty(),
            "nothing moved, nothing named"
        );
        let moved = vec![5, 8, 9];
        assert_eq!(session.to_name(&moved), vec![1]);
        session.answered(42, &[1], &moved);
        assert_eq!(session.epoch, 2);
        assert!(session.to_name(&moved).is_empty());
        session.answered(0, &[], &moved);
        assert_eq!(
            (session.id, session.epoch),
            (0, 0),
            "no session granted: full fetches again"
        );
        assert_eq!(session.to_name(&moved), vec![0, 1, 2]);

        let mut old_broker = Session::off();
        old_broker.answered(0, &[0, 1, 2], &moved);
        assert_eq!(
            (old_broker.epoch, old_broker.to_name(&moved).len()),
            (-1, 3)
        );
    }

    #[test]
    fn reads_complete_batches_and_skips_read_records() {
        let live = Live::default();
        live.measure_start_us.store(1, Relaxed);
        let stamp = 1_000u64.to_be_bytes();
        let mut fetched = batch_at(10, &[&stamp, &stamp, &stamp]); // offsets 10..=12
        fetched.extend(batch_at(13, &[b"short"]));
        let partial = batch_at(14, &[&stamp]);
        fetched.extend(&partial[..partial.len() - 3]);
        let mut report = WorkerReport::default();
        let next = read_batches(&fetched, 11, &live, &mut report, 3_000).unwrap();
        assert_eq!(next, 14);
        assert_eq!(live.consumed_records.load(Relaxed), 3, "offsets 11, 12, 13");
        assert_eq!(live.consumed_bytes.load(Relaxed), 8 + 8 + 5);
        assert_eq!(
            report.e2e.count(),
            2,
            "a value too short for a stamp has no latency"
        );
    }

    #[test]
    fn records_that_share_a_stamp_count_each_at_their_latency() {
        let live = Live::default();
        live.measure_start_us.store(1, Relaxed);
        let (a, b) = (1_000u64.to_be_bytes(), 2_000u64.to_be_bytes());
        let fetched = batch_at(0, &[&a, &a, &b, &a, &b, &b]);
        let mut report = WorkerReport::default();
        assert_eq!(
            read_batches(&fetched, 0, &live, &mut report, 3_000).unwrap(),
            6
        );
        let e2e = report.e2e.percentiles();
        assert_eq!(e2e.count, 6);
        // Three records 2 ms after their stamp, three 1 ms after.
        assert!(
            (e2e.p50 - 1.0).abs() < 0.01 && (e2e.max - 2.0).abs() < 0.01,
            "{e2e:?}"
        );
    }
}
