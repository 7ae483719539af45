//! What load threads measure, and how a run's threads share it.
//!
//! Counters that the progress line reads every second are atomics in [`Live`], bumped once per batch (never per
//! record). Latencies go into a per-thread [`Recorder`] (no sharing, no lock) and are merged when the threads end:
//! one HdrHistogram for the whole window plus one coarser histogram per second for the time series. Only samples
//! whose send stamp falls inside the measured window count, so warm-up and fill traffic never leak into the figures.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::client_windows::ClientWindows;

/// How often a consumer waiting for the measured window looks again.
const WINDOW_POLL: Duration = Duration::from_millis(1);
/// Largest latency a histogram holds (1 hour in µs); larger samples are clamped to it.
pub const LATENCY_US_MAX: u64 = 3_600_000_000;
/// Significant digits of the whole-window histograms.
const WINDOW_SIGFIG: u8 = 3;
/// Significant digits of the per-second histograms (they are many; 1% is enough for a time series).
const SECOND_SIGFIG: u8 = 2;
/// Seconds of per-second histograms one recorder keeps; samples later than this only go to the window histogram.
pub const SERIES_SECONDS_MAX: usize = 3600;

/// Counters and flags shared by every thread of a run.
#[derive(Debug, Default)]
pub struct Live {
    pub produced_records: AtomicU64,
    pub produced_bytes: AtomicU64,
    pub consumed_records: AtomicU64,
    pub consumed_bytes: AtomicU64,
    pub produce_errors: AtomicU64,
    pub consume_errors: AtomicU64,
    /// Send stamps (µs since the epoch) inside `[measure_start_us, measure_end_us)` are measured; 0 = not yet set.
    pub measure_start_us: AtomicU64,
    pub measure_end_us: AtomicU64,
    /// Set when every load thread must wind down.
    pub stop: AtomicBool,
    /// Consumers that have found their start offsets and are fetching.
    pub consumers_ready: AtomicU32,
    /// Set once the measured window's first snapshot is taken (see [`Live::wait_for_window`]).
    pub window_open: AtomicBool,
}

impl Live {
    pub fn stopped(&self) -> bool {
        self.stop.load(Relaxed)
    }

    /// Waits until the measured window opens or the run stops. A catch-up's consumers call it once they have their
    /// start offsets: a small fill read at GB/s is over in milliseconds, and read before the window opened it would
    /// count for nothing. The runner always opens the window or stops the run, so the wait ends.
    pub fn wait_for_window(&self) {
        while !self.window_open.load(Relaxed) && !self.stopped() {
            std::thread::sleep(WINDOW_POLL);
        }
    }

    /// The measured second a send stamp falls in, or `None` outside the window.
    pub fn second_of(&self, stamp_us: u64) -> Option<usize> {
        let start = self.measure_start_us.load(Relaxed);
        let end = self.measure_end_us.load(Relaxed);
        if start == 0 || stamp_us < start || (end != 0 && stamp_us >= end) {
            return None;
        }
        Some(((stamp_us - start) / 1_000_000) as usize)
    }

    pub fn add_produced(&self, records: u64, bytes: u64) {
        self.produced_records.fetch_add(records, Relaxed);
        self.produced_bytes.fetch_add(bytes, Relaxed);
    }

    pub fn add_consumed(&self, records: u64, bytes: u64) {
        self.consumed_records.fetch_add(records, Relaxed);
        self.consumed_bytes.fetch_add(bytes, Relaxed);
    }
}

fn window_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, LATENCY_US_MAX, WINDOW_SIGFIG)
        .expect("static histogram bounds are valid")
}

fn second_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, LATENCY_US_MAX, SECOND_SIGFIG)
        .expect("static histogram bounds are valid")
}

/// One thread's latency samples (µs).
#[derive(Debug, Clone)]
pub struct Recorder {
    window: Histogram<u64>,
    seconds: Vec<Histogram<u64>>,
}

impl Default for Recorder {
    fn default() -> Self {
        Recorder {
            window: window_histogram(),
            seconds: Vec::new(),
        }
    }
}

impl Recorder {
    /// Records `done_us - stamp_us` if the stamp is inside the measured window; returns whether it counted.
    pub fn record(&mut self, live: &Live, stamp_us: u64, done_us: u64) -> bool {
        self.record_n(live, stamp_us, done_us.saturating_sub(stamp_us), 1)
    }

    /// Records `latency_us` `n` times, in the second of `stamp_us`, if that stamp is inside the measured window (one
    /// request's figure weighted by the records it carried, or records that share a stamp); returns whether it
    /// counted.
    pub fn record_n(&mut self, live: &Live, stamp_us: u64, latency_us: u64, n: u64) -> bool {
        match live.second_of(stamp_us) {
            Some(second) if n > 0 => {
                self.add(second, latency_us, n);
                true
            }
            _ => false,
        }
    }

    fn add(&mut self, second: usize, latency_us: u64, n: u64) {
        let latency = latency_us.clamp(1, LATENCY_US_MAX);
        self.window.saturating_record_n(latency, n);
        if second < SERIES_SECONDS_MAX {
            if self.seconds.len() <= second {
                self.seconds.resize_with(second + 1, second_histogram);
            }
            self.seconds[second].saturating_record_n(latency, n);
        }
    }

    pub fn merge(&mut self, other: &Recorder) {
        self.window
            .add(&other.window)
            .expect("recorders share bounds");
        if self.seconds.len() < other.seconds.len() {
            self.seconds
                .resize_with(other.seconds.len(), second_histogram);
        }
        for (mine, theirs) in self.seconds.iter_mut().zip(&other.seconds) {
            mine.add(theirs).expect("recorders share bounds");
        }
    }

    pub fn count(&self) -> u64 {
        self.window.len()
    }

    /// p50, p90, p99, p99.9, max and mean in milliseconds.
    pub fn percentiles(&self) -> Percentiles {
        Percentiles::of(&self.window)
    }

    /// (percentile, ms) points for a latency percentile curve, denser towards the tail.
    pub fn curve(&self) -> Vec<CurvePoint> {
        if self.window.is_empty() {
            return Vec::new();
        }
        let mut points = Vec::new();
        let mut nines = 0.0f64;
        // Percentiles 1 - 10^-n for n in 0..=5 in steps of 0.1 "nines", i.e. 0%, ~20%, ... 99.999%.
        while nines <= 5.0 + 1e-9 {
            let q = 1.0 - 10f64.powf(-nines);
            points.push(CurvePoint {
                percentile: q * 100.0,
                ms: us_to_ms(self.window.value_at_quantile(q)),
            });
            nines += 0.1;
        }
        points.push(CurvePoint {
            percentile: 100.0,
            ms: us_to_ms(self.window.max()),
        });
        points
    }

    /// Per-second (p50, p99) in ms; seconds without samples are `None`.
    pub fn per_second(&self) -> Vec<Option<(f64, f64)>> {
        self.seconds
            .iter()
            .map(|h| {
                (!h.is_empty()).then(|| {
                    (
                        us_to_ms(h.value_at_quantile(0.5)),
                        us_to_ms(h.value_at_quantile(0.99)),
                    )
                })
            })
            .collect()
    }
}

fn us_to_ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

/// Latency summary in milliseconds.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq)]
pub struct Percentiles {
    pub count: u64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
    pub mean: f64,
}

impl Percentiles {
    pub(crate) fn of(h: &Histogram<u64>) -> Percentiles {
        if h.is_empty() {
            return Percentiles::default();
        }
        Percentiles {
            count: h.len(),
            p50: us_to_ms(h.value_at_quantile(0.5)),
            p90: us_to_ms(h.value_at_quantile(0.9)),
            p99: us_to_ms(h.value_at_quantile(0.99)),
            p999: us_to_ms(h.value_at_quantile(0.999)),
            max: us_to_ms(h.max()),
            mean: h.mean() / 1000.0,
        }
    }
}

/// One point of a latency percentile curve.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
pub struct CurvePoint {
    pub percentile: f64,
    pub ms: f64,
}

/// What one load thread hands back when it ends.
#[derive(Debug, Default)]
pub struct WorkerReport {
    /// Send -> acknowledged (producers).
    pub publish: Recorder,
    /// Produce request written -> its answer read, once per record it carried (native producer). A publish is this
    /// plus the record's wait in the client: linger, a full batch, the in-flight window.
    pub request_rtt: Recorder,
    /// librdkafka's own round trip and queue wait, window by window (rdkafka producers).
    pub client_windows: ClientWindows,
    /// Stamp in the record -> consumed (consumers).
    pub e2e: Recorder,
    /// First error the thread saw, for the report.
    pub first_error: Option<String>,
}

impl WorkerReport {
    pub fn note_error(&mut self, error: impl FnOnce() -> String) {
        if self.first_error.is_none() {
            self.first_error = Some(error());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waiting_for_the_window_ends_when_it_opens_or_the_run_stops() {
        let flags: [fn(&Live) -> &AtomicBool; 2] = [|l| &l.window_open, |l| &l.stop];
        for flag in flags {
            let live = Live::default();
            std::thread::scope(|scope| {
                let waiter = scope.spawn(|| live.wait_for_window());
                std::thread::sleep(Duration::from_millis(20));
                assert!(!waiter.is_finished(), "nothing opened the window yet");
                flag(&live).store(true, Relaxed);
                waiter.join().unwrap();
            });
        }
    }

    fn live_window(start: u64, end: u64) -> Live {
        let live = Live::default();
        live.measure_start_us.store(start, Relaxed);
        live.measure_end_us.store(end, Relaxed);
        live
    }

    #[test]
    fn samples_outside_the_window_are_ignored() {
        let live = live_window(10_000_000, 20_000_000);
        let mut r = Recorder::default();
        r.record(&live, 9_999_999, 10_500_000);
        r.record(&live, 20_000_000, 20_000_100);
        assert_eq!(r.count(), 0);
        r.record(&live, 10_000_000, 10_002_000);
        r.record(&live, 12_500_000, 12_504_000);
        assert_eq!(r.count(), 2);
        let per_second = r.per_second();
        assert_eq!(per_second.len(), 3);
        assert!(per_second[0].is_some() && per_second[1].is_none() && per_second[2].is_some());
        let (p50, _) = per_second[2].unwrap();
        assert!((p50 - 4.0).abs() < 0.05, "{p50}");
    }

    #[test]
    fn a_request_figure_counts_once_per_record_it_carried() {
        let live = live_window(10_000_000, 20_000_000);
        let mut r = Recorder::default();
        assert!(r.record(&live, 10_000_000, 10_004_000));
        r.record_n(&live, 10_000_000, 1_000, 3);
        r.record_n(&live, 10_000_000, 9_000, 0);
        r.record_n(&live, 25_000_000, 9_000, 5);
        let p = r.percentiles();
        assert_eq!(p.count, 4);
        assert!(
            (p.p50 - 1.0).abs() < 0.01 && (p.max - 4.0).abs() < 0.01,
            "{p:?}"
        );
        assert!(!r.record(&live, 9_000_000, 10_000_000));
    }

    #[test]
    fn nothing_is_measured_before_the_window_opens() {
        let live = Live::default();
        let mut r = Recorder::default();
        r.record(&live, 5, 10);
        assert_eq!(r.count(), 0);
    }

    #[test]
    fn percentiles_and_merge() {
        let live = live_window(1, 0);
        let mut a = Recorder::default();
        let mut b = Recorder::default();
        for i in 1..=1000u64 {
            a.record(&live, 1, 1 + i * 1000); // 1..1000 ms
        }
        b.record(&live, 1, 1 + 5_000_000); // one 5 s outlier
        a.merge(&b);
        let p = a.percentiles();
        assert_eq!(p.count, 1001);
        assert!((p.p50 - 500.0).abs() < 2.5, "{p:?}");
        assert!((p.p99 - 990.0).abs() < 5.0, "{p:?}");
        assert!((p.max - 5000.0).abs() < 25.0, "{p:?}");
        let curve = a.curve();
        assert!(curve
            .windows(2)
            .all(|w| w[0].ms <= w[1].ms && w[0].percentile < w[1].percentile));
        assert_eq!(curve.last().unwrap().percentile, 100.0);
    }

    #[test]
    fn huge_latencies_are_clamped_not_lost() {
        let live = live_window(1, 0);
        let mut r = Recorder::default();
        r.record(&live, 1, u64::MAX);
        assert_eq!(r.count(), 1);
        assert!(r.percentiles().max >= LATENCY_US_MAX as f64 / 1000.0 * 0.99);
    }
}
