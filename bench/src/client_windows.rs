//! librdkafka's own view of an rdkafka run, from its statistics (`statistics.interval.ms`). Per broker it keeps the
//! request round trip (`rtt`: written to the socket -> answer read, the broker's share of a publish) and the wait in
//! the producer's queue before a record goes into a request (`int_latency`: linger, full batches, the in-flight
//! window, a client short of CPU), as percentiles of a window that it starts afresh at each emission.
//!
//! They split an rdkafka publish the way the native driver's `produce_request_rtt_ms` does, but only window by
//! window: percentiles of different windows do not merge. So each measured second keeps its worst p99 over producers
//! and brokers, and the run keeps the median and the worst of those seconds.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::payload::now_micros;
use crate::stats::{Live, SERIES_SECONDS_MAX};

/// How often librdkafka emits its statistics, so each window is about one measured second.
pub const STATISTICS_INTERVAL_MS: u64 = 1000;

/// One figure's worst p99 (ms) in each measured second.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct WorstPerSecond(Vec<Option<f64>>);

impl WorstPerSecond {
    pub fn note(&mut self, second: usize, ms: f64) {
        if second >= SERIES_SECONDS_MAX {
            return;
        }
        if self.0.len() <= second {
            self.0.resize(second + 1, None);
        }
        let slot = &mut self.0[second];
        *slot = Some(slot.map_or(ms, |worst| worst.max(ms)));
    }

    pub fn merge(&mut self, other: &WorstPerSecond) {
        for (second, ms) in other.0.iter().enumerate() {
            if let Some(ms) = ms {
                self.note(second, *ms);
            }
        }
    }

    /// The second's worst p99, or `None` if no window fell in it.
    pub fn at(&self, second: usize) -> Option<f64> {
        self.0.get(second).copied().flatten()
    }

    /// Median and worst over the seconds that had a window; `None` if none had.
    pub fn summary(&self) -> Option<WindowSummary> {
        let mut values: Vec<f64> = self.0.iter().flatten().copied().collect();
        if values.is_empty() {
            return None;
        }
        values.sort_by(f64::total_cmp);
        let mid = values.len() / 2;
        let median_ms = if values.len() % 2 == 1 {
            values[mid]
        } else {
            (values[mid - 1] + values[mid]) / 2.0
        };
        Some(WindowSummary {
            seconds: values.len() as u32,
            median_ms,
            max_ms: values[values.len() - 1],
        })
    }
}

/// One producer's (or, merged, all producers') librdkafka windows.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct ClientWindows {
    pub rtt_p99: WorstPerSecond,
    pub queue_p99: WorstPerSecond,
}

impl ClientWindows {
    /// Notes one emission (librdkafka's statistics JSON; a document it cannot read is left out). Its window covers
    /// the interval before it, so it counts in the second of that interval's middle; windows outside the measured
    /// seconds are left out, as are librdkafka's bootstrap entries (no node id) and windows that saw nothing.
    pub fn note(&mut self, live: &Live, statistics_json: &[u8]) {
        let middle = now_micros().saturating_sub(STATISTICS_INTERVAL_MS * 1000 / 2);
        let Some(second) = live.second_of(middle) else {
            return;
        };
        let Ok(stats) = serde_json::from_slice::<StatisticsWindows>(statistics_json) else {
            return;
        };
        for broker in stats.brokers.values().filter(|b| b.nodeid >= 0) {
            if let Some(ms) = p99_ms(broker.rtt.as_ref()) {
                self.rtt_p99.note(second, ms);
            }
            if let Some(ms) = p99_ms(broker.int_latency.as_ref()) {
                self.queue_p99.note(second, ms);
            }
        }
    }

    pub fn merge(&mut self, other: &ClientWindows) {
        self.rtt_p99.merge(&other.rtt_p99);
        self.queue_p99.merge(&other.queue_p99);
    }

    /// `None` when no window counted anything (the native driver, or a run without statistics).
    pub fn summary(&self) -> Option<LibrdkafkaWindows> {
        let windows = LibrdkafkaWindows {
            rtt_p99_ms: self.rtt_p99.summary(),
            queue_p99_ms: self.queue_p99.summary(),
        };
        (windows.rtt_p99_ms.is_some() || windows.queue_p99_ms.is_some()).then_some(windows)
    }
}

/// The part of librdkafka's statistics document read here. Parsing only this skips the rest (per partition, per
/// topic) without building it, and does not depend on fields a librdkafka version may lack.
#[derive(Deserialize)]
struct StatisticsWindows {
    #[serde(default)]
    brokers: HashMap<String, BrokerWindows>,
}

#[derive(Deserialize)]
struct BrokerWindows {
    nodeid: i64,
    rtt: Option<Window>,
    int_latency: Option<Window>,
}

/// One rolling window, in microseconds.
#[derive(Deserialize)]
struct Window {
    cnt: i64,
    p99: i64,
}

fn p99_ms(window: Option<&Window>) -> Option<f64> {
    window
        .filter(|w| w.cnt > 0)
        .map(|w| w.p99.max(0) as f64 / 1000.0)
}

/// A figure's per-second p99s over a run.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
pub struct WindowSummary {
    /// Measured seconds with a window that counted something.
    pub seconds: u32,
    pub median_ms: f64,
    pub max_ms: f64,
}

/// librdkafka's own split of a publish, for rdkafka runs.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
pub struct LibrdkafkaWindows {
    /// The broker's round trip (`rtt`).
    pub rtt_p99_ms: Option<WindowSummary>,
    /// The wait in the producer's queue before a request (`int_latency`).
    pub queue_p99_ms: Option<WindowSummary>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::Ordering::Relaxed;

    #[test]
    fn each_second_keeps_its_worst_and_the_run_its_median_and_worst() {
        let mut a = WorstPerSecond::default();
        a.note(0, 2.0);
        a.note(0, 1.0);
        a.note(2, 8.0);
        let mut b = WorstPerSecond::default();
        b.note(0, 3.0);
        b.note(1, 4.0);
        a.merge(&b);
        assert_eq!(
            (a.at(0), a.at(1), a.at(2), a.at(3)),
            (Some(3.0), Some(4.0), Some(8.0), None)
        );
        let s = a.summary().unwrap();
        assert_eq!((s.seconds, s.median_ms, s.max_ms), (3, 4.0, 8.0));
        a.note(3, 5.0);
        assert_eq!(a.summary().unwrap().median_ms, 4.5);
        assert_eq!(WorstPerSecond::default().summary(), None);
    }

    /// librdkafka's statistics JSON, cut to what is read here and a little more: a bootstrap entry (no node id) and
    /// one broker.
    fn statistics(rtt_p99_us: i64, queue_p99_us: i64, rtt_cnt: i64) -> Vec<u8> {
        let window = |p99: i64, cnt: i64| serde_json::json!({"min": 1, "max": p99, "cnt": cnt, "p50": p99 / 2, "p99": p99});
        let broker = |nodeid: i64, rtt: i64, queue: i64| {
            serde_json::json!({"nodeid": nodeid, "state": "UP", "int_latency": window(queue, rtt_cnt),
                "rtt": window(rtt, rtt_cnt), "toppars": {}})
        };
        serde_json::to_vec(
            &serde_json::json!({"name": "p", "type": "producer", "topics": {}, "brokers": {
                "bootstrap": broker(-1, 900_000, 900_000),
                "127.0.0.1:9092/1": broker(1, rtt_p99_us, queue_p99_us),
            }}),
        )
        .expect("a JSON document")
    }

    #[test]
    fn windows_count_in_the_measured_second_of_their_middle_from_brokers_only() {
        let live = Live::default();
        let mut w = ClientWindows::default();
        w.note(&live, &statistics(4_000, 90_000, 10));
        assert_eq!(w.summary(), None, "no measured window yet");
        // The window opened 1.7 s ago: this emission's middle, 0.5 s back, is in second 1.
        live.measure_start_us
            .store(now_micros() - 1_700_000, Relaxed);
        w.note(&live, &statistics(4_000, 90_000, 10));
        w.note(&live, &statistics(6_500, 1_000, 0));
        assert_eq!(w.rtt_p99.at(1), Some(4.0), "an empty window counts nothing");
        assert_eq!(
            w.queue_p99.at(1),
            Some(90.0),
            "the bootstrap entry's 900 ms is not a broker's"
        );
        assert_eq!(w.rtt_p99.at(0), None);
        let s = w.summary().unwrap();
        assert_eq!(s.rtt_p99_ms.unwrap().max_ms, 4.0);
        assert_eq!(s.queue_p99_ms.unwrap().seconds, 1);
        w.note(&live, b"not json");
        assert_eq!(
            w.rtt_p99.at(1),
            Some(4.0),
            "a document it cannot read changes nothing"
        );
    }
}
