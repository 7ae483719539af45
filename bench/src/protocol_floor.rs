//! The protocol's latency floor at a workload's rate: the workload's producers alone, with the run's driver, against
//! a null broker in this process (`null_broker.rs`: it answers every Produce at once and stores nothing), for a few
//! seconds before the run. That is what a publish costs this client, the loopback and a server that only reads and
//! answers, on the same cores. A broker's publish latency above it is the broker's own work, the disk's wait
//! included (the disk alone is `disk_floor.rs`).

use serde::{Deserialize, Serialize};

use crate::driver::DriverKind;
use crate::error::BenchError;
use crate::limits::Limits;
use crate::null_broker;
use crate::result::BenchResult;
use crate::runner::{self, RunOptions};
use crate::stats::Percentiles;
use crate::workload::Workload;

/// Longest measured window of the floor, and its warm-up.
pub const SECONDS_MAX: u64 = 8;
pub const WARMUP_S: u64 = 2;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ProtocolFloor {
    /// Payload MB/s offered and acknowledged.
    pub rate_mb_s: f64,
    pub produced_mb_s: f64,
    pub measured_s: f64,
    /// Send to acknowledgement, as the run's `publish_latency_ms`.
    pub publish_latency_ms: Percentiles,
    /// The Produce request's round trip (native driver only), as the run's `produce_request_rtt_ms`.
    pub request_rtt_ms: Option<Percentiles>,
    /// The bench process's CPU, the null broker's threads included.
    pub client_cores: f64,
}

/// Runs `workload`'s producers (no consumers) at `rate_records_s` against an in-process null broker.
pub fn measure(
    workload: &Workload,
    rate_records_s: u64,
    driver: DriverKind,
    limits: &Limits,
) -> Result<ProtocolFloor, BenchError> {
    let mut w = workload.clone();
    w.consumer.count = 0;
    w.producer.rate_records_s = rate_records_s;
    w.producer.rate_fraction_of_reference = None;
    w.duration_s = w.duration_s.clamp(1, SECONDS_MAX);
    w.warmup_s = WARMUP_S;
    let broker = null_broker::InProcess::start(None)
        .map_err(|source| BenchError::io("starting the null broker", source))?;
    let run = runner::run(&RunOptions {
        workload: w,
        bootstrap: broker.bootstrap(),
        driver,
        broker_name: "null-broker".into(),
        server_pid: None,
        server_metrics: None,
        limits: limits.clone(),
        reference: None,
        disk_floor: None,
        protocol_floor: None,
        progress: false,
    })?;
    floor_of(&run)
}

/// The floor's figures out of its run; a run with errors or no publish measured is no floor.
fn floor_of(run: &BenchResult) -> Result<ProtocolFloor, BenchError> {
    if let Some(e) = run.errors.first() {
        return Err(BenchError::protocol("null broker run", e));
    }
    if run.publish_latency_ms.count == 0 {
        return Err(BenchError::protocol(
            "null broker run",
            "no publish was measured",
        ));
    }
    Ok(ProtocolFloor {
        rate_mb_s: run.offered_rate_records_s as f64 * run.workload.records.size.mean_bytes() / 1e6,
        produced_mb_s: run.produce.mb_s,
        measured_s: run.measured_s,
        publish_latency_ms: run.publish_latency_ms,
        request_rtt_ms: run.produce_request_rtt_ms,
        client_cores: run.cpu.client_cores,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The native driver's producers against the null broker: every record acknowledged, the latency measured.
    #[test]
    fn the_floor_of_a_paced_producer_is_measured() {
        let mut w = crate::workload::minimal_for_tests();
        w.topic.partitions = 4;
        w.producer.count = 1;
        w.duration_s = 1;
        let floor = measure(&w, 2000, DriverKind::Native, &Limits::default()).expect("floor");
        assert!(floor.publish_latency_ms.count > 0, "{floor:?}");
        assert!(floor.produced_mb_s > 0.0, "{floor:?}");
        let rtt = floor
            .request_rtt_ms
            .expect("native runs time the round trip");
        assert!(rtt.p99 <= floor.publish_latency_ms.p99, "{floor:?}");
        assert!(
            (floor.rate_mb_s - 2000.0 * 1024.0 / 1e6).abs() < 1e-9,
            "{floor:?}"
        );
    }
}
