//! The native producer: batches records per partition into one reused buffer and pipelines Produce requests; a
//! batch goes from that buffer to the socket without a copy of its own.
//!
//! Per leader broker there is one connection: this thread sends requests on its writing half, and a reader thread
//! takes the responses on the other. A bounded channel between them holds one entry per request in flight, so a full
//! channel is the in-flight limit (`producer.max_in_flight`) and blocks the sender: backpressure, not buffering.
//!
//! Partitions are filled one batch at a time in round-robin order (records with keys are not hashed to partitions:
//! the keys are on the wire, the placement is the bench's). A batch is sent when full, or once `linger_ms` has
//! passed since its first record and no further record is due: a paced producer behind its schedule keeps filling
//! the batch (with `linger_ms = 0` a batch per record would cap the rate at one record per round trip).

use std::collections::BTreeMap;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::thread::{self, ScopedJoinHandle};
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::messages::produce_request::{
    PartitionProduceData, ProduceRequest, TopicProduceData,
};
use kafka_protocol::messages::{ApiKey, ProduceResponse, TopicName};
use kafka_protocol::protocol::StrBytes;

use super::batch::BatchBuilder;
use super::conn::{self, ConnReader, ConnSender};
use crate::driver::{Pacer, ProduceJob};
use crate::error::BenchError;
use crate::payload::{now_micros, RecordFactory};
use crate::stats::{Live, WorkerReport};
use crate::workload::Acks;

/// How long the broker may take to acknowledge (the request's `timeout_ms`).
const PRODUCE_TIMEOUT_MS: i32 = 30_000;

/// A request in flight: what its acknowledgement completes.
struct InFlight {
    correlation_id: i32,
    records: u64,
    bytes: u64,
    /// Send stamps of its records, for publish latency.
    stamps: Vec<u64>,
    /// When the request was written to the connection (µs since the epoch), for its round trip.
    written_us: u64,
}

/// A connection to one leader: the writing half and the reader thread.
struct Pipe<'scope> {
    sender: ConnSender,
    in_flight: SyncSender<InFlight>,
    reader: ScopedJoinHandle<'scope, Result<WorkerReport, BenchError>>,
}

pub fn produce(job: &ProduceJob<'_>, live: &Live) -> Result<WorkerReport, BenchError> {
    let spec = &job.workload.producer;
    if spec.compression != crate::workload::Compression::None {
        return Err(BenchError::Unsupported {
            driver: "native".into(),
            what: format!("compression {}", spec.compression.name()),
        });
    }
    if spec.idempotence {
        return Err(BenchError::Unsupported {
            driver: "native".into(),
            what: "idempotence".into(),
        });
    }
    let acks = spec.acks;
    thread::scope(|scope| -> Result<WorkerReport, BenchError> {
        let mut pipes: BTreeMap<String, Pipe> = BTreeMap::new();
        for addr in job.layout.brokers.values() {
            if !job
                .layout
                .leaders
                .iter()
                .any(|l| job.layout.brokers[l] == *addr)
            {
                continue;
            }
            let (sender, reader) = conn::connect(addr)?.split();
            let version = sender.version(ApiKey::Produce)?;
            // The reader holds one entry while it waits for that response, hence one less slot in the channel.
            let (tx, rx) = sync_channel(spec.max_in_flight - 1);
            let reader = scope.spawn(move || read_acks(reader, rx, acks, version, live));
            pipes.insert(
                addr.clone(),
                Pipe {
                    sender,
                    in_flight: tx,
                    reader,
                },
            );
        }
        let sent = send_loop(job, live, &mut pipes);
        let mut report = WorkerReport::default();
        for (addr, pipe) in pipes {
            drop(pipe.in_flight);
            match pipe.reader.join() {
                Ok(Ok(acked)) => {
                    report.publish.merge(&acked.publish);
                    report.request_rtt.merge(&acked.request_rtt);
                    if let Some(e) = acked.first_error {
                        report.note_error(|| e);
                    }
                }
                Ok(Err(e)) => report.note_error(|| format!("acks from {addr}: {e}")),
                Err(_) => report.note_error(|| format!("ack reader for {addr} panicked")),
            }
        }
        sent?;
        Ok(report)
    })
}

/// Builds and sends batches until stopped.
fn send_loop(
    job: &ProduceJob<'_>,
    live: &Live,
    pipes: &mut BTreeMap<String, Pipe<'_>>,
) -> Result<(), BenchError> {
    let spec = &job.workload.producer;
    let topic = TopicName(StrBytes::from_string(job.layout.topic.clone()));
    let mut factory = RecordFactory::new(&job.workload.records, job.seed);
    let mut pacer = Pacer::new(job.rate_records_s);
    let mut batch = BatchBuilder::with_capacity(spec.batch_bytes);
    let mut stamps = Vec::new();
    let linger = Duration::from_millis(spec.linger_ms);
    let mut batch_opened = Instant::now();
    let mut partition = (job.seed % u64::from(job.layout.partitions())) as usize;
    let mut bytes_sent = 0u64;
    loop {
        if live.stopped() || job.bytes_limit.is_some_and(|limit| bytes_sent >= limit) {
            break;
        }
        let wait = pacer.wait();
        if !wait.is_zero() {
            let linger_left = linger.saturating_sub(batch_opened.elapsed());
            if !batch.is_empty() && linger_left.is_zero() {
                bytes_sent +=
                    send_batch(job, live, pipes, &topic, partition, &mut batch, &mut stamps)?;
                partition = (partition + 1) % job.layout.leaders.len();
                continue;
            }
            let nap = if batch.is_empty() {
                wait
            } else {
                wait.min(linger_left)
            };
            thread::sleep(nap);
            continue;
        }
        let stamp = pacer.take();
        let (key, value) = factory.next(stamp);
        if !batch.is_empty() && batch.size_with(key, value) > spec.batch_bytes {
            bytes_sent += send_batch(job, live, pipes, &topic, partition, &mut batch, &mut stamps)?;
            partition = (partition + 1) % job.layout.leaders.len();
        }
        if batch.is_empty() {
            batch_opened = Instant::now();
        }
        batch.push((stamp / 1000) as i64, key, value);
        stamps.push(stamp);
    }
    if !batch.is_empty() {
        send_batch(job, live, pipes, &topic, partition, &mut batch, &mut stamps)?;
    }
    Ok(())
}

/// Sends the open batch to its partition's leader; returns its payload bytes.
fn send_batch(
    job: &ProduceJob<'_>,
    live: &Live,
    pipes: &mut BTreeMap<String, Pipe<'_>>,
    topic: &TopicName,
    partition: usize,
    batch: &mut BatchBuilder,
    stamps: &mut Vec<u64>,
) -> Result<u64, BenchError> {
    let records = batch.records();
    let bytes = batch.payload_bytes();
    // The batch goes to the socket from the builder's buffer: the request carries empty records in its place.
    let request = ProduceRequest::default()
        .with_acks(job.workload.producer.acks.wire())
        .with_timeout_ms(PRODUCE_TIMEOUT_MS)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(topic.clone())
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(partition as i32)
                .with_records(Some(Bytes::new()))])]);
    let addr = &job.layout.brokers[&job.layout.leaders[partition]];
    let pipe = pipes.get_mut(addr).expect("a pipe per leader");
    let correlation_id = pipe.sender.send_produce(&request, batch.finish())?;
    let written_us = now_micros();
    if job.workload.producer.acks == Acks::None {
        // No response will come: the send is all there is to count.
        live.add_produced(records, bytes);
        stamps.clear();
        return Ok(bytes);
    }
    let entry = InFlight {
        correlation_id,
        records,
        bytes,
        stamps: std::mem::take(stamps),
        written_us,
    };
    if pipe.in_flight.send(entry).is_err() {
        // The reader ended; its error is reported when it is joined.
        return Err(BenchError::protocol(
            "Produce",
            format!("ack reader for {addr} stopped"),
        ));
    }
    Ok(bytes)
}

/// Takes acknowledgements in order and records publish latency; a batch the broker refused is counted as an error
/// and the run goes on (the report names the first error), a broken connection ends the reader.
fn read_acks(
    mut reader: ConnReader,
    in_flight: Receiver<InFlight>,
    acks: Acks,
    version: i16,
    live: &Live,
) -> Result<WorkerReport, BenchError> {
    let mut report = WorkerReport::default();
    if acks == Acks::None {
        return Ok(report);
    }
    while let Ok(entry) = in_flight.recv() {
        let answer: ProduceResponse =
            reader.recv(ApiKey::Produce, version, entry.correlation_id)?;
        let done = now_micros();
        match refusal(&answer) {
            None => {
                live.add_produced(entry.records, entry.bytes);
                let (mut measured, mut first_measured) = (0, None);
                // An unpaced producer stamps 16 records with one clock reading: one histogram entry per run of them.
                for run in entry.stamps.chunk_by(|a, b| a == b) {
                    let (stamp, n) = (run[0], run.len() as u64);
                    if report
                        .publish
                        .record_n(live, stamp, done.saturating_sub(stamp), n)
                    {
                        measured += n;
                        first_measured.get_or_insert(stamp);
                    }
                }
                // Weighted by the records measured, so its percentiles sit beside the publish latency's.
                if let Some(stamp) = first_measured {
                    let rtt = done.saturating_sub(entry.written_us);
                    report.request_rtt.record_n(live, stamp, rtt, measured);
                }
            }
            Some(why) => {
                live.produce_errors
                    .fetch_add(entry.records, std::sync::atomic::Ordering::Relaxed);
                report.note_error(|| why);
            }
        }
    }
    Ok(report)
}

/// Why the answer to a one-partition Produce request does not acknowledge its batch, if it does not. Kafka answers a
/// stored batch with error code 0 and the offset it was given; a broker that answers 0 with no offset (-1), or leaves
/// the partition out, has not stored it, and counting it as produced would credit that broker with data it dropped.
fn refusal(answer: &ProduceResponse) -> Option<String> {
    let mut partitions = answer.responses.iter().flat_map(|t| &t.partition_responses);
    let Some(p) = partitions.next() else {
        return Some("Produce answered without the partition".to_string());
    };
    if p.error_code != 0 {
        return Some(format!("Produce answered with error code {}", p.error_code));
    }
    if p.base_offset < 0 {
        return Some(format!(
            "Produce answered error code 0 with no offset (base_offset {}): not stored",
            p.base_offset
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::refusal;
    use kafka_protocol::messages::produce_response::{
        PartitionProduceResponse, TopicProduceResponse,
    };
    use kafka_protocol::messages::ProduceResponse;

    fn answer(partitions: Vec<PartitionProduceResponse>) -> ProduceResponse {
        ProduceResponse::default().with_responses(vec![
            TopicProduceResponse::default().with_partition_responses(partitions)
        ])
    }

    #[test]
    fn only_an_answer_with_an_offset_acknowledges_a_batch() {
        let stored = PartitionProduceResponse::default().with_base_offset(42);
        assert_eq!(refusal(&answer(vec![stored])), None);

        let refused = PartitionProduceResponse::default()
            .with_error_code(6)
            .with_base_offset(-1);
        assert!(refusal(&answer(vec![refused]))
            .unwrap()
            .contains("error code 6"));

        // Error code 0 with no offset: the broker did not store the batch (Chronik under memory pressure).
        let dropped = PartitionProduceResponse::default().with_base_offset(-1);
        assert!(refusal(&answer(vec![dropped]))
            .unwrap()
            .contains("not stored"));

        assert!(refusal(&answer(vec![]))
            .unwrap()
            .contains("without the partition"));
    }
}
