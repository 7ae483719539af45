//! The result file: one JSON document per run, schema documented in bench/README.md. Everything needed to judge the
//! run is in it (workload, driver, broker, machine, limits), so a file can be compared with another months later.
//! MB means 10^6 bytes of record payload (key + value); latencies are milliseconds.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::client_windows::LibrdkafkaWindows;
use crate::disk_floor::DiskFloor;
use crate::error::BenchError;
use crate::limits::Limits;
use crate::machine::Machine;
use crate::protocol_floor::ProtocolFloor;
use crate::stats::{CurvePoint, Percentiles};
use crate::workload::Workload;

/// Bumped on any incompatible change of the schema below.
pub const SCHEMA_VERSION: u32 = 1;
/// Goal: acks=all max produce MB/s over fio sequential write MB/s, for records of [`GOAL_PRODUCE_RECORD_BYTES`].
pub const GOAL_PRODUCE_TO_DISK_MIN: f64 = 0.7;
/// The record size the produce goal is set for (1 KiB); other sizes report the ratio without the goal.
pub const GOAL_PRODUCE_RECORD_BYTES: usize = 1024;
/// Goal: p99 publish latency at half of max rate over fio fdatasync p99.
pub const GOAL_P99_TO_FDATASYNC_MAX: f64 = 3.0;
/// Goal: consumer catch-up MB/s over produce MB/s.
pub const GOAL_CATCHUP_TO_PRODUCE_MIN: f64 = 2.0;
/// Name of the catch-up goal; its `disk_alone` is fio's sequential read over the produce figure, its
/// `network_alone` one loopback stream's MB/s over it.
pub const GOAL_CATCHUP: &str = "catchup_to_produce_ratio";

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct BenchResult {
    pub schema_version: u32,
    pub tool_version: String,
    pub started_at_unix: u64,
    pub workload: Workload,
    pub topic: String,
    /// "native" or "rdkafka".
    pub driver: String,
    pub broker: Broker,
    pub machine: Machine,
    pub limits: Limits,
    /// Records/s offered per second over all producers (0 = max rate).
    pub offered_rate_records_s: u64,
    /// Seconds actually measured.
    pub measured_s: f64,
    pub produce: Throughput,
    pub consume: Throughput,
    /// The fill phase (catch-up workloads), produced at max rate before consumers start.
    pub fill: Option<Throughput>,
    pub publish_latency_ms: Percentiles,
    /// Produce request written -> its answer read, once per record it carried: the broker's share of a publish (the
    /// rest is the record's wait in the client). The native driver only; librdkafka's requests are not the bench's.
    #[serde(default)]
    pub produce_request_rtt_ms: Option<Percentiles>,
    /// The rdkafka driver's split of a publish from librdkafka's statistics: the median and the worst over seconds of
    /// each second's p99 of its round trip and of its producer queue wait. `None` for the native driver.
    #[serde(default)]
    pub librdkafka: Option<LibrdkafkaWindows>,
    pub e2e_latency_ms: Percentiles,
    pub publish_latency_curve: Vec<CurvePoint>,
    pub e2e_latency_curve: Vec<CurvePoint>,
    pub cpu: Cpu,
    /// `None` without `--server-pid` and in files written before the field.
    #[serde(default)]
    pub server_memory: Option<ServerMemory>,
    pub series: Vec<Second>,
    /// produce.mb_s / limits.fio_seq_write_mb_s.
    pub produce_to_disk_ratio: Option<f64>,
    /// The disk's own latency floor at the offered rate (paced acks=all workloads; see `disk_floor.rs`).
    #[serde(default)]
    pub disk_floor: Option<DiskFloor>,
    /// The protocol's latency floor at the offered rate: the producers against a broker that stores nothing (paced
    /// acks=all workloads; see `protocol_floor.rs`). Absent in files written before 2026-12-07.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol_floor: Option<ProtocolFloor>,
    pub goals: Vec<Goal>,
    /// First error of each thread that saw one.
    pub errors: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Broker {
    /// A label: "pinlog", "kafka", "redpanda"...
    pub name: String,
    pub bootstrap: String,
    pub server_pid: Option<u32>,
}

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq)]
pub struct Throughput {
    pub records: u64,
    pub bytes: u64,
    pub records_s: f64,
    pub mb_s: f64,
    pub errors: u64,
}

impl Throughput {
    pub fn over(records: u64, bytes: u64, errors: u64, seconds: f64) -> Throughput {
        let s = seconds.max(1e-9);
        Throughput {
            records,
            bytes,
            records_s: records as f64 / s,
            mb_s: bytes as f64 / 1e6 / s,
            errors,
        }
    }
}

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq)]
pub struct Cpu {
    /// Cores the bench process used on average during the measured window.
    pub client_cores: f64,
    /// Cores the broker process used (`None` without `--server-pid`).
    pub server_cores: Option<f64>,
    /// Cores the whole machine the bench ran on was busy (every process and the kernel's work, which includes
    /// interrupts, loopback networking and I/O completion workers); `None` in files written before it.
    #[serde(default)]
    pub machine_cores: Option<f64>,
    /// User-space cores of processes other than the bench and the broker (the machine's user time less theirs):
    /// another program sharing the machine. Kernel work done for the two is system time and never counts here.
    #[serde(default)]
    pub other_process_cores: Option<f64>,
    /// Cores the hypervisor gave to others while this machine wanted to run (`/proc/stat` steal).
    #[serde(default)]
    pub steal_cores: Option<f64>,
}

/// The broker's memory at the end of the measured window (`memory.rs`; needs `--server-pid` and a broker on this
/// machine). The scripts start a fresh broker per workload, so the peak is the workload's.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq)]
pub struct ServerMemory {
    /// The broker's largest resident set since it started (`VmHWM`).
    pub peak_rss_bytes: u64,
    /// Its resident set at the end of the measured window (`VmRSS`).
    pub rss_bytes: u64,
}

/// Other processes' user time above which a report says the run shared the machine (one busy neighbour thread is
/// a whole core; a quiet machine's daemons stay far below).
pub const OTHER_PROCESS_CORES_NOTABLE: f64 = 0.1;

/// One second of the measured window.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq)]
pub struct Second {
    pub t_s: u32,
    pub produce_records_s: f64,
    pub produce_mb_s: f64,
    pub consume_records_s: f64,
    pub consume_mb_s: f64,
    pub publish_p50_ms: Option<f64>,
    pub publish_p99_ms: Option<f64>,
    pub e2e_p50_ms: Option<f64>,
    pub e2e_p99_ms: Option<f64>,
    pub client_cores: f64,
    pub server_cores: Option<f64>,
    /// The broker's own commit latency that second (write and sync on the disk), p99 and max, as the upper bounds
    /// of its histogram buckets (`--server-metrics`; pinlog's `pinlog_storage_commit_latency_seconds`, summed over
    /// shards).
    #[serde(default)]
    pub server_commit_p99_ms: Option<f64>,
    #[serde(default)]
    pub server_commit_max_ms: Option<f64>,
    /// librdkafka's own windows ending about then (rdkafka driver; `client_windows.rs`): the worst p99 over
    /// producers and brokers of its request round trip (`rtt`) and of its producer queue wait (`int_latency`).
    #[serde(default)]
    pub client_rtt_p99_ms: Option<f64>,
    #[serde(default)]
    pub client_queue_p99_ms: Option<f64>,
}

/// A goal from the issue, evaluated where this workload measures it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Goal {
    pub name: String,
    pub value: f64,
    /// "<=" or ">=".
    pub op: String,
    pub target: f64,
    pub met: bool,
    /// The same figure for the disk alone, where measured: for the latency goal the floor's p99 (`disk_floor`), for
    /// the catch-up goal fio's sequential read of the data dir over the fill. A goal the disk misses is above this
    /// machine for a broker that writes and reads the disk the way pinlog does.
    #[serde(default)]
    pub disk_alone: Option<f64>,
    /// The same figure for the network path alone, where it bounds the goal. For the catch-up goal, one loopback TCP
    /// stream at iperf3's speed (`limits.iperf3_loopback_gbit_s`): a catch-up served from memory still crosses one
    /// connection. For the latency goal, the protocol floor's publish p99 (`protocol_floor`): this client and the
    /// loopback with a broker that stores nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_alone: Option<f64>,
    /// What the value is measured against, where a goal has a choice (the catch-up goal: this run's fill or the
    /// reference's max produce, whichever is higher).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub basis: Option<String>,
}

impl Goal {
    pub fn at_least(name: &str, value: f64, target: f64) -> Goal {
        Goal {
            name: name.into(),
            value,
            op: ">=".into(),
            target,
            met: value >= target,
            disk_alone: None,
            network_alone: None,
            basis: None,
        }
    }

    /// Whether the disk alone meets the goal (`None` where the floor was not measured).
    pub fn disk_alone_met(&self) -> Option<bool> {
        self.disk_alone.map(|d| self.reached_by(d))
    }

    /// Whether one loopback stream alone meets the goal (`None` where it does not bound the goal).
    pub fn network_alone_met(&self) -> Option<bool> {
        self.network_alone.map(|n| self.reached_by(n))
    }

    fn reached_by(&self, value: f64) -> bool {
        if self.op == "<=" {
            value <= self.target
        } else {
            value >= self.target
        }
    }

    pub fn at_most(name: &str, value: f64, target: f64) -> Goal {
        Goal {
            name: name.into(),
            value,
            op: "<=".into(),
            target,
            met: value <= target,
            disk_alone: None,
            network_alone: None,
            basis: None,
        }
    }
}

impl BenchResult {
    pub fn load(path: &Path) -> Result<BenchResult, BenchError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| BenchError::io(format!("reading {}", path.display()), e))?;
        serde_json::from_str(&text).map_err(|e| BenchError::Result {
            path: path.display().to_string(),
            reason: e.to_string(),
        })
    }

    pub fn save(&self, path: &Path) -> Result<(), BenchError> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| BenchError::io(format!("creating {}", parent.display()), e))?;
        }
        let text = serde_json::to_string_pretty(self).expect("results serialize");
        std::fs::write(path, text)
            .map_err(|e| BenchError::io(format!("writing {}", path.display()), e))
    }

    /// Consumers read records in the window, yet none of those stamped inside it: they are behind by more than
    /// the window, so the end-to-end percentiles are empty.
    pub fn consumers_behind_window(&self) -> bool {
        self.workload.consumer.count > 0
            && self.workload.fill.bytes == 0
            && self.consume.records > 0
            && self.e2e_latency_ms.count == 0
    }

    /// Checks the result is complete: what the smoke test asserts (shape, not speed).
    pub fn completeness_problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        let w = &self.workload;
        if self.schema_version != SCHEMA_VERSION {
            problems.push(format!(
                "schema_version {} != {SCHEMA_VERSION}",
                self.schema_version
            ));
        }
        if self.limits.fio_seq_write_mb_s.is_none() {
            problems.push("limits.fio_seq_write_mb_s missing".into());
        }
        if self.limits.fdatasync_p99_ms.is_none() {
            problems.push("limits.fdatasync_p99_ms missing".into());
        }
        if self.measured_s <= 0.0 || self.series.is_empty() {
            problems.push("no measured seconds".into());
        }
        let produces = w.producer.count > 0 && w.fill.bytes == 0;
        if produces && self.produce.records == 0 {
            problems.push("no records produced in the measured window".into());
        }
        if produces
            && w.producer.acks != crate::workload::Acks::None
            && self.publish_latency_ms.count == 0
        {
            problems.push("no publish latency samples".into());
        }
        problems.extend(self.request_rtt_problems());
        problems.extend(self.machine_cpu_problems());
        problems.extend(self.server_memory_problems());
        if produces && self.produce_to_disk_ratio.is_none() {
            problems.push("produce_to_disk_ratio missing".into());
        }
        if w.consumer.count > 0 && self.consume.records == 0 {
            problems.push("no records consumed in the measured window".into());
        }
        // Records consumed but no end-to-end sample is a measurement, not a gap: the consumers stayed behind by more
        // than the whole window (seen with librdkafka's consumer beside its max-rate producer on 2 cores). Speed is
        // not what this check judges; the report says so in words instead.
        if self
            .disk_floor
            .as_ref()
            .is_some_and(|f| f.latency_ms.count == 0 || f.commits == 0)
        {
            problems.push("disk_floor measured no commit".into());
        }
        if self
            .protocol_floor
            .as_ref()
            .is_some_and(|f| f.publish_latency_ms.count == 0)
        {
            problems.push("protocol_floor measured no publish".into());
        }
        if w.fill.bytes > 0 && self.fill.is_none_or(|f| f.records == 0) {
            problems.push("fill phase wrote nothing".into());
        }
        if self.produce.errors + self.consume.errors > 0 {
            problems.push(format!(
                "{} produce and {} consume errors: {:?}",
                self.produce.errors, self.consume.errors, self.errors
            ));
        }
        problems
    }

    /// The machine's busy CPU holds the client's. Files written before the field have none; the smoke run checks
    /// that new runs write it.
    ///
    /// A process's time is kept exactly, the machine's is sampled at each clock tick, so the machine's figure may
    /// miss up to a couple of ticks per CPU over the window: on a window of a fraction of a second (a smoke
    /// catch-up reads its 20 MB in about 0.1 s) that is tenths of a core, on the suite's minute nothing.
    fn machine_cpu_problems(&self) -> Vec<String> {
        const ROUNDING_CORES: f64 = 0.05;
        /// The coarsest tick `/proc/stat` counts in (USER_HZ; the kernel's own tick is this or finer).
        const TICKS_PER_S: f64 = 100.0;
        const MISSED_TICKS_PER_CPU: f64 = 2.0;
        let cpu = &self.cpu;
        let mut problems = Vec::new();
        if let Some(machine) = cpu.machine_cores {
            let sampling = MISSED_TICKS_PER_CPU * self.machine.cores as f64
                / (TICKS_PER_S * self.measured_s.max(f64::EPSILON));
            if machine + ROUNDING_CORES + sampling < cpu.client_cores {
                problems.push(format!(
                    "cpu.machine_cores {machine:.2} below the client's {:.2}",
                    cpu.client_cores
                ));
            }
        }
        for (name, v) in [
            ("other_process_cores", cpu.other_process_cores),
            ("steal_cores", cpu.steal_cores),
        ] {
            if v.is_some_and(|v| v < 0.0) {
                problems.push(format!("cpu.{name} negative"));
            }
        }
        problems
    }

    /// The broker's peak resident set holds its resident set at the end.
    fn server_memory_problems(&self) -> Option<String> {
        let m = self.server_memory?;
        (m.peak_rss_bytes < m.rss_bytes).then(|| {
            format!(
                "server_memory.peak_rss_bytes {} below rss_bytes {}",
                m.peak_rss_bytes, m.rss_bytes
            )
        })
    }

    /// A request's round trip is measured for the same records as the publish latency, and a record's round trip is
    /// part of its publish: every percentile is at most the publish's. (Files written before the field have none;
    /// the smoke run checks that native runs write it.)
    fn request_rtt_problems(&self) -> Vec<String> {
        let publish = &self.publish_latency_ms;
        let Some(rtt) = &self.produce_request_rtt_ms else {
            return Vec::new();
        };
        let mut problems = Vec::new();
        if rtt.count != publish.count {
            problems.push(format!(
                "produce_request_rtt_ms counts {} records, publish_latency_ms {}",
                rtt.count, publish.count
            ));
        }
        for (name, r, p) in [
            ("p50", rtt.p50, publish.p50),
            ("p99", rtt.p99, publish.p99),
            ("max", rtt.max, publish.max),
        ] {
            if r > p {
                problems.push(format!(
                    "produce request round trip {name} {r} ms above the publish latency's {p} ms"
                ));
            }
        }
        problems
    }
}

/// A small, complete result for tests of the code that reads results.
#[cfg(test)]
pub(crate) fn sample_result() -> BenchResult {
    let workload: Workload = toml::from_str(
        r#"
name = "sample"
duration_s = 3
[topic]
prefix = "bench-sample"
partitions = 2
[records]
size = { kind = "fixed", bytes = 1024 }
[producer]
count = 1
acks = "all"
[consumer]
count = 1
"#,
    )
    .expect("sample workload parses");
    let latency = Percentiles {
        count: 100,
        p50: 1.0,
        p90: 2.0,
        p99: 3.0,
        p999: 4.0,
        max: 5.0,
        mean: 1.2,
    };
    let curve = vec![
        CurvePoint {
            percentile: 0.0,
            ms: 0.5,
        },
        CurvePoint {
            percentile: 90.0,
            ms: 2.0,
        },
        CurvePoint {
            percentile: 99.0,
            ms: 3.0,
        },
        CurvePoint {
            percentile: 100.0,
            ms: 5.0,
        },
    ];
    BenchResult {
        schema_version: SCHEMA_VERSION,
        tool_version: "0.1.0".into(),
        started_at_unix: 1_700_000_000,
        workload,
        topic: "bench-sample-1".into(),
        driver: "native".into(),
        broker: Broker {
            name: "pinlog".into(),
            bootstrap: "127.0.0.1:9092".into(),
            server_pid: Some(42),
        },
        machine: Machine {
            hostname: "h".into(),
            kernel: "6.1".into(),
            cpu_model: "cpu".into(),
            cores: 2,
            memory_bytes: 1 << 30,
        },
        limits: Limits {
            measured_at_unix: 1_700_000_000,
            data_dir: "/d".into(),
            fio_seq_write_mb_s: Some(1000.0),
            fio_seq_write_qd1_mb_s: Some(600.0),
            fio_seq_read_mb_s: Some(1100.0),
            fdatasync_p50_ms: Some(0.2),
            fdatasync_p99_ms: Some(2.0),
            iperf3_loopback_gbit_s: Some(20.0),
            notes: Vec::new(),
        },
        offered_rate_records_s: 0,
        measured_s: 3.0,
        produce: Throughput::over(300_000, 307_200_000, 0, 3.0),
        consume: Throughput::over(300_000, 307_200_000, 0, 3.0),
        fill: None,
        publish_latency_ms: latency,
        produce_request_rtt_ms: Some(Percentiles {
            p50: latency.p50 / 2.0,
            ..latency
        }),
        librdkafka: None,
        e2e_latency_ms: latency,
        publish_latency_curve: curve.clone(),
        e2e_latency_curve: curve,
        cpu: Cpu {
            client_cores: 0.5,
            server_cores: Some(1.0),
            machine_cores: Some(1.6),
            other_process_cores: Some(0.01),
            steal_cores: Some(0.0),
        },
        server_memory: Some(ServerMemory {
            peak_rss_bytes: 300 << 20,
            rss_bytes: 200 << 20,
        }),
        series: (0..3)
            .map(|t| Second {
                t_s: t,
                produce_records_s: 100_000.0,
                produce_mb_s: 102.4,
                consume_records_s: 100_000.0,
                consume_mb_s: 102.4,
                publish_p50_ms: Some(1.0),
                publish_p99_ms: Some(3.0),
                e2e_p50_ms: Some(1.0),
                e2e_p99_ms: None,
                client_cores: 0.5,
                server_cores: Some(1.0),
                server_commit_p99_ms: Some(0.5),
                server_commit_max_ms: None,
                client_rtt_p99_ms: None,
                client_queue_p99_ms: None,
            })
            .collect(),
        produce_to_disk_ratio: Some(0.1024),
        disk_floor: None,
        protocol_floor: None,
        goals: vec![Goal::at_least(
            "produce_to_disk_ratio",
            0.1024,
            GOAL_PRODUCE_TO_DISK_MIN,
        )],
        errors: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sample_is_complete_and_round_trips() {
        let r = sample_result();
        assert_eq!(r.completeness_problems(), Vec::<String>::new());
        let tmp = tempfile::tempdir_in(env!("CARGO_MANIFEST_DIR")).unwrap();
        let path = tmp.path().join("r.json");
        r.save(&path).unwrap();
        let back = BenchResult::load(&path).unwrap();
        assert_eq!(back.workload, r.workload);
        assert_eq!(back.series.len(), r.series.len());
        assert!((back.produce.mb_s - r.produce.mb_s).abs() < 1e-9);
        assert_eq!(back.completeness_problems(), Vec::<String>::new());
    }

    #[test]
    fn incomplete_results_are_named() {
        let mut r = sample_result();
        r.limits.fdatasync_p99_ms = None;
        r.consume.records = 0;
        r.produce.errors = 3;
        let problems = r.completeness_problems().join("; ");
        assert!(problems.contains("fdatasync_p99_ms"), "{problems}");
        assert!(problems.contains("consumed"), "{problems}");
        assert!(problems.contains("3 produce"), "{problems}");
    }

    #[test]
    fn consumers_behind_the_whole_window_are_a_figure_not_a_gap() {
        let mut r = sample_result();
        assert!(r.workload.consumer.count > 0 && r.consume.records > 0);
        r.e2e_latency_ms.count = 0;
        assert!(r.consumers_behind_window());
        assert!(r.completeness_problems().is_empty());
        r.consume.records = 0;
        assert!(!r.consumers_behind_window());
        assert!(
            !r.completeness_problems().is_empty(),
            "nothing consumed stays a gap"
        );
    }

    #[test]
    fn a_request_round_trip_is_checked_against_its_publish_latency() {
        let mut r = sample_result();
        let rtt = r.produce_request_rtt_ms.unwrap();
        r.produce_request_rtt_ms = Some(Percentiles {
            count: rtt.count - 1,
            p99: r.publish_latency_ms.p99 + 0.5,
            ..rtt
        });
        let problems = r.completeness_problems().join("; ");
        assert!(problems.contains("counts 99 records"), "{problems}");
        assert!(problems.contains("round trip p99"), "{problems}");
        assert!(!problems.contains("round trip p50"), "{problems}");

        // librdkafka's requests are not the bench's to time, and older files have no round trip: not a gap.
        r.produce_request_rtt_ms = None;
        assert!(r.completeness_problems().is_empty());
    }

    #[test]
    fn the_machine_cpu_holds_the_client_and_the_peak_memory_the_last() {
        let mut r = sample_result();
        r.cpu.machine_cores = Some(0.3);
        r.cpu.other_process_cores = Some(-0.1);
        let problems = r.completeness_problems().join("; ");
        assert!(problems.contains("machine_cores 0.30 below"), "{problems}");
        assert!(
            problems.contains("other_process_cores negative"),
            "{problems}"
        );
        // A window of a tenth of a second is a few ticks: the machine's sampled figure cannot be held to the
        // client's exact one (CI's smoke catch-up: machine 0.16 cores, client 0.24, over about 0.1 s).
        let measured_s = r.measured_s;
        (r.measured_s, r.machine.cores) = (0.1, 2);
        (r.cpu.machine_cores, r.cpu.client_cores) = (Some(0.16), 0.24);
        let problems = r.completeness_problems().join("; ");
        assert!(!problems.contains("machine_cores"), "{problems}");
        // Over seconds the same shortfall is one.
        r.measured_s = measured_s;
        let problems = r.completeness_problems().join("; ");
        assert!(problems.contains("machine_cores 0.16 below"), "{problems}");
        r.cpu.client_cores = 0.5;

        r.server_memory = Some(ServerMemory {
            peak_rss_bytes: 1 << 20,
            rss_bytes: 2 << 20,
        });
        let problems = r.completeness_problems().join("; ");
        assert!(
            problems.contains("peak_rss_bytes 1048576 below"),
            "{problems}"
        );

        // Files written before the fields: not a gap.
        r.server_memory = None;
        r.cpu.machine_cores = None;
        r.cpu.other_process_cores = None;
        r.cpu.steal_cores = None;
        assert!(r.completeness_problems().is_empty());
    }

    #[test]
    fn goals_compare_the_right_way() {
        assert!(Goal::at_least("x", 0.8, 0.7).met);
        assert!(!Goal::at_least("x", 0.6, 0.7).met);
        assert!(Goal::at_most("x", 2.0, 3.0).met);
        assert!(!Goal::at_most("x", 3.5, 3.0).met);
    }
}
