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
///
/// Clock reads are a producer's largest cost after the copies into the socket (at one million records a second, one
/// read per record took an eighth of the native driver's CPU), so the pacer reads the clock only when the answer can
/// change: a record due before the last reading is due now, and an unpaced producer never waits.
#[derive(Debug, Clone)]
pub struct Pacer {
    start: Instant,
    start_wall_us: u64,
    interval_ns: u64,
    sent: u64,
    /// Nanoseconds after `start` at the last clock reading.
    read_ns: u64,
    /// Unpaced: the wall clock (µs) last read, and how many more records it stamps.
    stamp_us: u64,
    stamps_left: u32,
}

/// Records an unpaced producer stamps with one reading of the wall clock. A stamp is then at most the time it takes
/// to make this many records (microseconds) early, which can only lengthen the latency measured from it.
const RECORDS_PER_STAMP_READ: u32 = 16;

impl Pacer {
    /// `rate_records_s == 0` means unpaced.
    pub fn new(rate_records_s: u64) -> Pacer {
        Pacer {
            start: Instant::now(),
            start_wall_us: crate::payload::now_micros(),
            interval_ns: 1_000_000_000u64.checked_div(rate_records_s).unwrap_or(0),
            sent: 0,
            read_ns: 0,
            stamp_us: 0,
            stamps_left: 0,
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
    pub fn wait(&mut self) -> std::time::Duration {
        let due = self.due_ns();
        if due <= self.read_ns {
            return std::time::Duration::ZERO;
        }
        self.read_ns = self.start.elapsed().as_nanos() as u64;
        std::time::Duration::from_nanos(due.saturating_sub(self.read_ns))
    }

    /// Takes the next record slot; returns its stamp (µs since the epoch): the due time when paced, the clock's time
    /// otherwise (read once per [`RECORDS_PER_STAMP_READ`] records).
    pub fn take(&mut self) -> u64 {
        let stamp = if self.paced() {
            self.start_wall_us + self.due_ns() / 1000
        } else {
            if self.stamps_left == 0 {
                self.stamp_us = crate::payload::now_micros();
                self.stamps_left = RECORDS_PER_STAMP_READ;
            }
            self.stamps_left -= 1;
            self.stamp_us
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
    fn unpaced_never_waits_and_its_stamps_never_run_ahead_of_the_clock() {
        let mut p = Pacer::new(0);
        assert!(!p.paced());
        let mut last = 0;
        for _ in 0..100 {
            assert_eq!(p.wait(), std::time::Duration::ZERO);
            let stamp = p.take();
            assert!(stamp >= last && stamp <= crate::payload::now_micros());
            last = stamp;
        }
    }

    #[test]
    fn a_record_due_before_the_last_reading_is_due_without_another() {
        let mut p = Pacer::new(1_000_000); // one a microsecond
        p.take();
        std::thread::sleep(std::time::Duration::from_millis(2));
        assert_eq!(p.wait(), std::time::Duration::ZERO);
        let read = p.read_ns;
        assert!(read >= 2_000_000);
        // Every record due by that reading goes without a new one.
        for _ in 0..1000 {
            p.take();
            assert_eq!(p.wait(), std::time::Duration::ZERO);
        }
        assert_eq!(p.read_ns, read);
    }
}
