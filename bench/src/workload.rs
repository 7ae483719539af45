//! A workload: one small TOML file in `bench/workloads/` that says what load to put on a broker.
//!
//! Every knob a performance engineer turns in OMB or rdkafka_performance is here (topic shape, producers and
//! consumers, record size and keys, rate, acks, compression, idempotence, duration and warm-up), so a run is fully
//! described by its file and the file is copied into the result. Validation happens once, at load, so a driver never
//! meets a contradictory workload halfway through a run.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::BenchError;

/// Largest record a workload may ask for (the broker's default `message.max.bytes` is about 1 MiB).
pub const RECORD_BYTES_MAX: usize = 1024 * 1024;
/// Smallest record: the value carries an 8-byte send timestamp for end-to-end latency.
pub const RECORD_BYTES_MIN: usize = 8;
/// Most partitions one workload may create.
pub const PARTITIONS_MAX: u32 = 100_000;

/// A whole workload file.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Workload {
    /// Short name, used in result file names.
    pub name: String,
    /// One sentence: what this workload measures.
    #[serde(default)]
    pub description: String,
    /// Topic shape.
    pub topic: TopicSpec,
    /// Record size and keys.
    pub records: RecordSpec,
    /// Producers.
    pub producer: ProducerSpec,
    /// Consumers (each reads every partition through assign()).
    #[serde(default)]
    pub consumer: ConsumerSpec,
    /// Bytes written before measuring (consumer catch-up reads them back).
    #[serde(default)]
    pub fill: FillSpec,
    /// Length of the measured window.
    pub duration_s: u64,
    /// Load runs this long before the measured window starts.
    #[serde(default)]
    pub warmup_s: u64,
    /// Extra librdkafka properties (`"queue.buffering.max.kbytes" = "1048576"`), applied last.
    #[serde(default)]
    pub rdkafka: std::collections::BTreeMap<String, String>,
    /// How the disk floor writes (paced acks=all runs): into fresh files, as a new log does, or over written ones,
    /// as a log at its retention does once it writes new segments over deleted ones' files.
    #[serde(default)]
    pub disk_floor_files: crate::disk_floor::Files,
}

/// The topic a run creates (a fresh name per run, so nothing old is read back).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TopicSpec {
    /// The topic name is `<prefix>-<unix seconds>`.
    pub prefix: String,
    pub partitions: u32,
    #[serde(default = "one_i16")]
    pub replication_factor: i16,
    /// Kafka topic configs given to CreateTopics (`"retention.bytes" = "134217728"`); the broker's defaults
    /// otherwise.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub configs: std::collections::BTreeMap<String, String>,
}

fn one_i16() -> i16 {
    1
}

/// Record size: fixed, or uniform between two sizes.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum SizeSpec {
    Fixed { bytes: usize },
    Uniform { min_bytes: usize, max_bytes: usize },
}

impl SizeSpec {
    pub fn mean_bytes(&self) -> f64 {
        match *self {
            SizeSpec::Fixed { bytes } => bytes as f64,
            SizeSpec::Uniform {
                min_bytes,
                max_bytes,
            } => (min_bytes + max_bytes) as f64 / 2.0,
        }
    }

    pub fn max_bytes(&self) -> usize {
        match *self {
            SizeSpec::Fixed { bytes } => bytes,
            SizeSpec::Uniform { max_bytes, .. } => max_bytes,
        }
    }

    fn min_bytes(&self) -> usize {
        match *self {
            SizeSpec::Fixed { bytes } => bytes,
            SizeSpec::Uniform { min_bytes, .. } => min_bytes,
        }
    }
}

/// Record contents.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RecordSpec {
    /// Value size (the key is extra).
    pub size: SizeSpec,
    /// Distinct keys; 0 means records carry no key.
    #[serde(default)]
    pub key_space: u64,
}

/// Acknowledgement level of produce requests.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Acks {
    None,
    Leader,
    All,
}

impl Acks {
    /// The `acks` field of a Produce request.
    pub fn wire(self) -> i16 {
        match self {
            Acks::None => 0,
            Acks::Leader => 1,
            Acks::All => -1,
        }
    }
}

/// Batch compression codec.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Compression {
    None,
    Gzip,
    Snappy,
    Lz4,
}

impl Compression {
    pub fn name(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Snappy => "snappy",
            Compression::Lz4 => "lz4",
        }
    }
}

/// The offered load.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ProducerSpec {
    /// Producer threads (each with its own connections).
    pub count: u32,
    /// Records per second over all producers; 0 = as fast as the broker acknowledges.
    #[serde(default)]
    pub rate_records_s: u64,
    /// When set, the rate is this fraction of the produce rate measured in a reference result file given with
    /// `--reference` (for "tail latency at half of max"); `rate_records_s` is the fallback without one.
    #[serde(default)]
    pub rate_fraction_of_reference: Option<f64>,
    pub acks: Acks,
    #[serde(default = "compression_none")]
    pub compression: Compression,
    #[serde(default)]
    pub idempotence: bool,
    /// Records are batched per partition up to this many bytes.
    #[serde(default = "batch_bytes_default")]
    pub batch_bytes: usize,
    /// A batch that is not full is sent after this long.
    #[serde(default = "linger_ms_default")]
    pub linger_ms: u64,
    /// Produce requests in flight per connection.
    #[serde(default = "max_in_flight_default")]
    pub max_in_flight: usize,
}

fn compression_none() -> Compression {
    Compression::None
}
fn batch_bytes_default() -> usize {
    128 * 1024
}
fn linger_ms_default() -> u64 {
    2
}
fn max_in_flight_default() -> usize {
    16
}

/// Where consumers start reading.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum StartAt {
    /// The end of the log when the consumer starts: it reads what producers write during the run.
    #[default]
    Latest,
    /// The beginning of the log: catch-up reads.
    Earliest,
}

/// Consumers; each is an independent assign()-consumer of all partitions (a "group" of one).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub struct ConsumerSpec {
    #[serde(default)]
    pub count: u32,
    #[serde(default)]
    pub start: StartAt,
    /// Fetch response size limit.
    #[serde(default = "fetch_max_bytes_default")]
    pub fetch_max_bytes: i32,
    /// Per-partition fetch size limit.
    #[serde(default = "partition_max_bytes_default")]
    pub partition_max_bytes: i32,
}

fn fetch_max_bytes_default() -> i32 {
    50 * 1024 * 1024
}
fn partition_max_bytes_default() -> i32 {
    1024 * 1024
}

/// A topic filled before the measured window (consumer catch-up).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub struct FillSpec {
    /// Record bytes produced at max rate before consumers start; 0 = no fill.
    #[serde(default)]
    pub bytes: u64,
}

impl Workload {
    /// Reads and validates a workload file.
    pub fn load(path: &Path) -> Result<Workload, BenchError> {
        let text = std::fs::read_to_string(path).map_err(|source| BenchError::Io {
            what: format!("reading workload {}", path.display()),
            source,
        })?;
        let workload: Workload = toml::from_str(&text).map_err(|e| BenchError::Workload {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        workload.validate().map_err(|reason| BenchError::Workload {
            path: path.display().to_string(),
            reason,
        })?;
        Ok(workload)
    }

    /// Checks the workload is self-consistent.
    pub fn validate(&self) -> Result<(), String> {
        if self.name.is_empty() || self.name.contains(['/', ' ']) {
            return Err(format!(
                "name {:?} must be non-empty, without spaces or '/'",
                self.name
            ));
        }
        if self.topic.partitions == 0 || self.topic.partitions > PARTITIONS_MAX {
            return Err(format!("topic.partitions must be 1..={PARTITIONS_MAX}"));
        }
        let size = self.records.size;
        if size.min_bytes() < RECORD_BYTES_MIN || size.max_bytes() > RECORD_BYTES_MAX {
            return Err(format!(
                "records.size must be within {RECORD_BYTES_MIN}..={RECORD_BYTES_MAX} bytes"
            ));
        }
        if size.min_bytes() > size.max_bytes() {
            return Err("records.size min_bytes > max_bytes".into());
        }
        let p = &self.producer;
        if p.count == 0 && self.fill.bytes == 0 {
            return Err(
                "producer.count is 0 and there is no fill: nothing would be written".into(),
            );
        }
        if p.batch_bytes < size.max_bytes() + 128 {
            return Err("producer.batch_bytes must hold at least one record".into());
        }
        if p.max_in_flight == 0 {
            return Err("producer.max_in_flight must be at least 1".into());
        }
        if let Some(f) = p.rate_fraction_of_reference {
            if !(f > 0.0 && f <= 1.0) {
                return Err("producer.rate_fraction_of_reference must be in (0, 1]".into());
            }
        }
        if self.duration_s == 0 {
            return Err("duration_s must be at least 1".into());
        }
        if self.consumer.count > 0 && self.consumer.partition_max_bytes < size.max_bytes() as i32 {
            return Err("consumer.partition_max_bytes is smaller than a record".into());
        }
        if self.fill.bytes > 0 && self.consumer.count == 0 {
            return Err("fill without consumers measures nothing".into());
        }
        Ok(())
    }
}

/// The smallest valid workload, for other modules' tests to adjust.
#[cfg(test)]
pub(crate) fn minimal_for_tests() -> Workload {
    toml::from_str(tests::MINIMAL).expect("the test workload parses")
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(super) const MINIMAL: &str = r#"
name = "t"
duration_s = 5
[topic]
prefix = "bench-t"
partitions = 4
[records]
size = { kind = "fixed", bytes = 1024 }
[producer]
count = 1
acks = "all"
"#;

    #[test]
    fn minimal_workload_gets_defaults() {
        let w: Workload = toml::from_str(MINIMAL).unwrap();
        w.validate().unwrap();
        assert_eq!(w.topic.replication_factor, 1);
        assert_eq!(w.producer.compression, Compression::None);
        assert_eq!(w.producer.max_in_flight, 16);
        assert_eq!(w.consumer.count, 0);
        assert_eq!(w.consumer.start, StartAt::Latest);
        assert_eq!(w.records.size.mean_bytes(), 1024.0);
    }

    #[test]
    fn unknown_field_is_rejected() {
        let text = MINIMAL.replace("count = 1", "count = 1\nakcs = \"all\"");
        assert!(toml::from_str::<Workload>(&text).is_err());
    }

    #[test]
    fn contradictions_are_rejected() {
        let mut w: Workload = toml::from_str(MINIMAL).unwrap();
        w.records.size = SizeSpec::Uniform {
            min_bytes: 200,
            max_bytes: 100,
        };
        assert!(w.validate().unwrap_err().contains("min_bytes"));
        let mut w: Workload = toml::from_str(MINIMAL).unwrap();
        w.records.size = SizeSpec::Fixed { bytes: 4 };
        assert!(w.validate().is_err());
        let mut w: Workload = toml::from_str(MINIMAL).unwrap();
        w.fill.bytes = 10;
        assert!(w.validate().unwrap_err().contains("fill"));
        let mut w: Workload = toml::from_str(MINIMAL).unwrap();
        w.producer.rate_fraction_of_reference = Some(1.5);
        assert!(w.validate().is_err());
    }

    #[test]
    fn shipped_workloads_are_valid() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("workloads");
        let mut names = Vec::new();
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "toml") {
                let w = Workload::load(&path).unwrap_or_else(|e| panic!("{e}"));
                assert_eq!(path.file_stem().unwrap().to_str().unwrap(), w.name);
                names.push(w.name);
            }
        }
        assert!(names.len() >= 6, "the issue names six workloads: {names:?}");
    }
}
