//! The one interface both load drivers implement, and the jobs the runner hands them.
//!
//! A driver turns a job into load on one thread and returns what that thread measured. Everything else (topic
//! creation, phases, counters, the progress line, the report) is the runner's, so the two drivers differ only in
//! the client they use and every report can say which one produced it.

use std::sync::Arc;
use std::time::Instant;

use crate::error::BenchError;
use crate::native::admin::TopicLayout;
use crate::stats::{Live, WorkerReport};
use crate::workload::Workload;

/// Which client library drives the load.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum DriverKind {
    /// pinlog's own codecs (kafka-protocol) on blocking std sockets with pipelining: most load per client CPU.
    Native,
    /// librdkafka through the rdkafka crate: what most applications run.
    Rdkafka,
}

impl DriverKind {
    pub fn name(self) -> &'static str {
        match self {
            DriverKind::Native => "native",
            DriverKind::Rdkafka => "rdkafka",
        }
    }

    pub fn driver(self) -> Box<dyn Driver> {
        match self {
            DriverKind::Native => Box::new(crate::native::NativeDriver),
            DriverKind::Rdkafka => Box::new(crate::rdkafka_driver::RdkafkaDriver),
        }
    }
}

/// One producer thread's job.
#[derive(Debug, Clone)]
pub struct ProduceJob<'a> {
    pub bootstrap: &'a str,
    pub workload: &'a Workload,
    pub layout: &'a TopicLayout,
    /// Records per second for this producer; 0 = as fast as acknowledged.
    pub rate_records_s: u64,
    /// Stop after this many record bytes have been sent (fill phase); `None` = until `Live::stop`.
    pub bytes_limit: Option<u64>,
    /// Distinguishes producers' record streams.
    pub seed: u64,
}

/// One consumer thread's job.
#[derive(Debug, Clone)]
pub struct ConsumeJob<'a> {
    pub bootstrap: &'a str,
    pub workload: &'a Workload,
    pub layout: &'a TopicLayout,
    /// Stop once every partition reached these offsets (catch-up); `None` = until `Live::stop`.
    pub end_offsets: Option<&'a [i64]>,
    pub index: u32,
}

/// A load driver.
pub trait Driver: Sync {
    fn kind(&self) -> DriverKind;

    /// Produces until `live.stop` (or the job's byte limit); returns the publish latencies.
    fn produce(&self, job: &ProduceJob<'_>, live: &Arc<Live>) -> Result<WorkerReport, BenchError>;

    /// Consumes every partition until `live.stop` (or the job's end offsets); bumps `live.consumers_ready` once it
    /// has its start positions; returns the end-to-end latencies.
    fn consume(&self, job: &ConsumeJob<'_>, live: &Arc<Live>) -> Result<WorkerReport, BenchError>;
}

/// Paces a producer at a fixed rate without coordinated omission: record `i` is due at `start + i / rate`, and its
/// latency is measured from that due time, so a stalled broker shows up as latency rather than as a lower rate.
#[derive(Debug, Clone)]
pub struct Pacer {
    start: Instant,
    start_wall_us: u64,
    interval_ns: u64,
    sent: u64,
}

impl Pacer {
    /// `rate_records_s == 0` means unpaced.
    pub fn new(rate_records_s: u64) -> Pacer {
        Pacer {
            start: Instant::now(),
            start_wall_us: crate::payload::now_micros(),
            interval_ns: 1_000_000_000u64.checked_div(rate_records_s).unwrap_or(0),
            sent: 0,
        }
    }

    pub fn paced(&self) -> bool {
        self.interval_ns > 0
    }

    /// Nanoseconds after start at which the next record is due (0 when unpaced).
    fn due_ns(&self) -> u64 {
        self.sent * self.interval_ns
    }

    /// How long until the next record is due (zero if due now or unpaced).
    pub fn wait(&self) -> std::time::Duration {
        let elapsed = self.start.elapsed().as_nanos() as u64;
        std::time::Duration::from_nanos(self.due_ns().saturating_sub(elapsed))
    }

    /// Takes the next record slot; returns its stamp (µs since the epoch): the due time when paced, now otherwise.
    pub fn take(&mut self) -> u64 {
        let stamp = if self.paced() {
            self.start_wall_us + self.due_ns() / 1000
        } else {
            crate::payload::now_micros()
        };
        self.sent += 1;
        stamp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paced_stamps_follow_the_schedule() {
        let mut p = Pacer::new(1000);
        let first = p.take();
        let second = p.take();
        assert_eq!(second - first, 1000);
        let later = p.take();
        assert_eq!(later - first, 2000);
        assert!(p.wait() <= std::time::Duration::from_millis(3));
    }

    #[test]
    fn unpaced_never_waits() {
        let mut p = Pacer::new(0);
        assert!(!p.paced());
        for _ in 0..100 {
            p.take();
        }
        assert_eq!(p.wait(), std::time::Duration::ZERO);
    }
}
