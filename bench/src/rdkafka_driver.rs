//! The librdkafka driver: the client most applications run, through rdkafka's polling `BaseProducer` and
//! `BaseConsumer` on plain threads (no async runtime).
//!
//! librdkafka does its own batching, pipelining and partitioning (keys are hashed to partitions), configured from the
//! workload (`acks`, `compression.type`, `enable.idempotence`, `linger.ms`, `batch.size`,
//! `max.in.flight.requests.per.connection`) and then the workload's `[rdkafka]` table, which wins. Publish latency is
//! taken in the delivery callback from the stamp at the head of the acknowledged record's value; librdkafka's own round
//! trip and queue wait come from its statistics, once a second (`client_windows.rs`).

use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::{ClientContext, Offset, TopicPartitionList};

use crate::client_windows::STATISTICS_INTERVAL_MS;
use crate::driver::{ConsumeJob, Driver, DriverKind, Pacer, ProduceJob};
use crate::error::BenchError;
use crate::payload::{now_micros, stamp_of, RecordFactory};
use crate::stats::{Live, WorkerReport};
use crate::workload::{Acks, StartAt, Workload};

/// How long a poll for delivery reports or messages may block; bounds how long a stop takes to be noticed.
const POLL_MS: u64 = 100;
/// How long the producer may take to deliver what is queued when the run stops.
const FLUSH_TIMEOUT_S: u64 = 30;

/// The librdkafka load driver.
pub struct RdkafkaDriver;

/// Delivery reports land here (on the producing thread, inside `poll`).
struct DeliveryContext {
    live: Arc<Live>,
    report: Mutex<WorkerReport>,
    /// Whether the broker answers (acks != 0): then a delivery without an offset was not stored (`native::producer`).
    acknowledged: bool,
}

impl ClientContext for DeliveryContext {
    /// librdkafka's windows of the interval just ended (on the producing thread, inside `poll`), read straight from
    /// its JSON (`client_windows.rs`).
    fn stats_raw(&self, statistics: &[u8]) {
        let mut report = self.report.lock().unwrap_or_else(|e| e.into_inner());
        report.client_windows.note(&self.live, statistics);
    }
}

impl ProducerContext for DeliveryContext {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        let done = now_micros();
        // Only the polling thread calls this, so the lock is never contended.
        let mut report = self.report.lock().unwrap_or_else(|e| e.into_inner());
        match result {
            Ok(message) if self.acknowledged && message.offset() < 0 => {
                self.live.produce_errors.fetch_add(1, Relaxed);
                report.note_error(|| {
                    format!(
                        "delivered with no offset ({}): not stored",
                        message.offset()
                    )
                });
            }
            Ok(message) => {
                let value = message.payload().unwrap_or_default();
                let key = message.key().map_or(0, <[u8]>::len);
                self.live.add_produced(1, (key + value.len()) as u64);
                if let Some(stamp) = stamp_of(value) {
                    report.publish.record(&self.live, stamp, done);
                }
            }
            Err((error, _)) => {
                self.live.produce_errors.fetch_add(1, Relaxed);
                report.note_error(|| format!("delivery failed: {error}"));
            }
        }
    }
}

fn rd_error(what: &str) -> impl FnOnce(KafkaError) -> BenchError + '_ {
    move |source| BenchError::Rdkafka {
        what: what.to_string(),
        source,
    }
}

/// Producer configuration from the workload; the `[rdkafka]` table is applied last.
pub fn producer_config(bootstrap: &str, workload: &Workload) -> ClientConfig {
    let p = &workload.producer;
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", bootstrap)
        .set(
            "acks",
            match p.acks {
                Acks::None => "0",
                Acks::Leader => "1",
                Acks::All => "all",
            },
        )
        .set("compression.type", p.compression.name())
        .set(
            "enable.idempotence",
            if p.idempotence { "true" } else { "false" },
        )
        .set("linger.ms", p.linger_ms.to_string())
        .set("batch.size", p.batch_bytes.to_string())
        .set(
            "max.in.flight.requests.per.connection",
            p.max_in_flight.to_string(),
        )
        .set("queue.buffering.max.kbytes", "1048576")
        .set("message.timeout.ms", "60000")
        // Its round trip and queue wait per window: the split of a publish (`client_windows.rs`).
        .set("statistics.interval.ms", STATISTICS_INTERVAL_MS.to_string());
    for (k, v) in &workload.rdkafka {
        config.set(k, v);
    }
    config
}

/// Consumer configuration (assign() only: no group membership, no commits). librdkafka refuses assign() without a
/// `group.id`, so each consumer names its own group; it never joins it (no subscribe) nor commits to it.
pub fn consumer_config(bootstrap: &str, workload: &Workload, group: &str) -> ClientConfig {
    let c = &workload.consumer;
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("fetch.max.bytes", c.fetch_max_bytes.to_string())
        .set(
            "max.partition.fetch.bytes",
            c.partition_max_bytes.to_string(),
        )
        .set("fetch.wait.max.ms", "100");
    for (k, v) in &workload.rdkafka {
        config.set(k, v);
    }
    config
}

impl Driver for RdkafkaDriver {
    fn kind(&self) -> DriverKind {
        DriverKind::Rdkafka
    }

    fn produce(&self, job: &ProduceJob<'_>, live: &Arc<Live>) -> Result<WorkerReport, BenchError> {
        let context = DeliveryContext {
            live: live.clone(),
            report: Mutex::new(WorkerReport::default()),
            acknowledged: job.workload.producer.acks != Acks::None,
        };
        let producer: BaseProducer<DeliveryContext> = producer_config(job.bootstrap, job.workload)
            .create_with_context(context)
            .map_err(rd_error("creating producer"))?;
        let topic = job.layout.topic.as_str();
        let mut factory = RecordFactory::new(&job.workload.records, job.seed);
        let mut pacer = Pacer::new(job.rate_records_s);
        let mut bytes_sent = 0u64;
        while !live.stopped() && job.bytes_limit.is_none_or(|limit| bytes_sent < limit) {
            let wait = pacer.wait();
            if !wait.is_zero() {
                producer.poll(wait);
                continue;
            }
            let stamp = pacer.take();
            let (key, value) = factory.next(stamp);
            bytes_sent += (key.map_or(0, <[u8]>::len) + value.len()) as u64;
            let mut record = BaseRecord::to(topic)
                .payload(value)
                .timestamp((stamp / 1000) as i64);
            if let Some(k) = key {
                record = record.key(k);
            }
            loop {
                match producer.send(record) {
                    Ok(()) => break,
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                        // The local queue is the in-flight limit: serve delivery reports until there is room.
                        record = back;
                        producer.poll(Duration::from_millis(POLL_MS));
                        if live.stopped() {
                            break;
                        }
                    }
                    Err((e, _)) => return Err(rd_error("producing")(e)),
                }
            }
            producer.poll(Duration::ZERO);
        }
        producer
            .flush(Duration::from_secs(FLUSH_TIMEOUT_S))
            .map_err(rd_error("flushing producer"))?;
        let report = std::mem::take(
            &mut *producer
                .context()
                .report
                .lock()
                .unwrap_or_else(|e| e.into_inner()),
        );
        Ok(report)
    }

    fn consume(&self, job: &ConsumeJob<'_>, live: &Arc<Live>) -> Result<WorkerReport, BenchError> {
        let group = format!("{}-consumer-{}", job.layout.topic, job.index);
        let consumer: BaseConsumer = consumer_config(job.bootstrap, job.workload, &group)
            .create()
            .map_err(rd_error("creating consumer"))?;
        let topic = job.layout.topic.as_str();
        let partitions = job.layout.partitions() as usize;
        let mut positions = vec![0i64; partitions];
        let mut assignment = TopicPartitionList::new();
        for p in 0..partitions as i32 {
            let (low, high) = consumer
                .fetch_watermarks(topic, p, Duration::from_secs(30))
                .map_err(rd_error("reading watermarks"))?;
            let start = match job.workload.consumer.start {
                StartAt::Latest => high,
                StartAt::Earliest => low,
            };
            positions[p as usize] = start;
            assignment
                .add_partition_offset(topic, p, Offset::Offset(start))
                .map_err(rd_error("building assignment"))?;
        }
        consumer
            .assign(&assignment)
            .map_err(rd_error("assigning partitions"))?;
        live.consumers_ready.fetch_add(1, Relaxed);
        if job.end_offsets.is_some() {
            live.wait_for_window();
        }
        let mut report = WorkerReport::default();
        let caught_up = |positions: &[i64]| {
            job.end_offsets
                .is_some_and(|ends| positions.iter().zip(ends).all(|(pos, end)| pos >= end))
        };
        while !live.stopped() && !caught_up(&positions) {
            let Some(polled) = consumer.poll(Duration::from_millis(POLL_MS)) else {
                continue;
            };
            match polled {
                Ok(message) => {
                    let done = now_micros();
                    let value = message.payload().unwrap_or_default();
                    let key = message.key().map_or(0, <[u8]>::len);
                    live.add_consumed(1, (key + value.len()) as u64);
                    if let Some(stamp) = stamp_of(value) {
                        report.e2e.record(live, stamp, done);
                    }
                    if let Some(pos) = positions.get_mut(message.partition() as usize) {
                        *pos = message.offset() + 1;
                    }
                }
                Err(e) => {
                    live.consume_errors.fetch_add(1, Relaxed);
                    report.note_error(|| format!("consume: {e}"));
                }
            }
        }
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn workload() -> Workload {
        let mut w = crate::workload::minimal_for_tests();
        w.producer.compression = crate::workload::Compression::Lz4;
        w.producer.linger_ms = 5;
        w.rdkafka.insert("linger.ms".into(), "20".into());
        w
    }

    #[test]
    fn producer_config_follows_workload_and_overrides_win() {
        let c = producer_config("127.0.0.1:9092", &workload());
        assert_eq!(c.get("acks"), Some("all"));
        assert_eq!(c.get("compression.type"), Some("lz4"));
        assert_eq!(c.get("enable.idempotence"), Some("false"));
        assert_eq!(c.get("linger.ms"), Some("20"), "[rdkafka] applies last");
        assert_eq!(c.get("bootstrap.servers"), Some("127.0.0.1:9092"));
        assert_eq!(
            c.get("statistics.interval.ms"),
            Some("1000"),
            "the run's librdkafka windows"
        );
    }

    #[test]
    fn consumer_config_never_commits() {
        let c = consumer_config("b:1", &workload(), "g-1");
        assert_eq!(c.get("enable.auto.commit"), Some("false"));
        assert_eq!(c.get("group.id"), Some("g-1"));
    }
}
