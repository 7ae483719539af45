//! One run of one workload against one broker, in phases:
//!
//! 1. create a fresh topic (`<prefix>-<unix ms>`) and wait for its leaders;
//! 2. fill (catch-up workloads only): produce `fill.bytes` at max rate, then read the log end offsets;
//! 3. start the consumers and wait until each knows its start offsets (nothing produced later is missed);
//! 4. start the producers (not after a fill: catch-up measures the consumers alone);
//! 5. warm up for `warmup_s`, then measure for `duration_s` (catch-up: until the consumers reach the end offsets),
//!    sampling counters and CPU once a second for the progress line and the time series;
//! 6. stop every thread, merge their histograms and build the [`BenchResult`].

use std::path::Path;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::thread::{self, ScopedJoinHandle};
use std::time::{Duration, Instant};

use crate::client_windows::ClientWindows;
use crate::cpu::{self, CpuSample, MachineSample};
use crate::disk_floor::{self, DiskFloor};
use crate::driver::{ConsumeJob, Driver, DriverKind, ProduceJob};
use crate::error::BenchError;
use crate::limits::Limits;
use crate::machine::Machine;
use crate::memory;
use crate::native::admin::{self, TopicLayout};
use crate::payload::now_micros;
use crate::protocol_floor::{self, ProtocolFloor};
use crate::report;
use crate::result::{
    BenchResult, Broker, Cpu, Goal, Second, ServerMemory, Throughput, GOAL_CATCHUP,
    GOAL_CATCHUP_TO_PRODUCE_MIN, GOAL_P99_TO_FDATASYNC_MAX, GOAL_PRODUCE_RECORD_BYTES,
    GOAL_PRODUCE_TO_DISK_MIN, SCHEMA_VERSION,
};
use crate::server_metrics::{Buckets, ServerMetrics};
use crate::stats::{Live, Recorder, WorkerReport};
use crate::workload::{Acks, SizeSpec, Workload};

/// How long consumers may take to find their start offsets.
const CONSUMERS_READY_TIMEOUT_S: u64 = 60;
/// Catch-up runs stop after this many times `duration_s` even if consumers have not caught up.
const CATCHUP_DURATION_FACTOR: u64 = 10;
/// How often the fill prints its progress line.
const FILL_PROGRESS_EVERY: Duration = Duration::from_millis(500);
/// How often a catch-up checks whether its fill producers or consumers have finished.
const CATCHUP_POLL: Duration = Duration::from_millis(5);

/// Everything a run needs besides the workload's own settings.
pub struct RunOptions {
    pub workload: Workload,
    pub bootstrap: String,
    pub driver: DriverKind,
    pub broker_name: String,
    pub server_pid: Option<u32>,
    /// The broker's Prometheus endpoint (`host:port`), scraped once a second for its commit latency.
    pub server_metrics: Option<String>,
    pub limits: Limits,
    /// A max-rate result, for workloads whose rate is a fraction of it.
    pub reference: Option<BenchResult>,
    /// The disk's latency floor at this workload's offered rate, measured before the run (see [`disk_floor`]).
    pub disk_floor: Option<DiskFloor>,
    /// The protocol's latency floor at the same rate: a broker that stores nothing (see [`protocol_floor`]).
    pub protocol_floor: Option<ProtocolFloor>,
    /// Print the progress line.
    pub progress: bool,
}

/// Records/s over all producers: a fraction of the reference result's produce rate when the workload asks for one
/// and a reference is given, else the workload's fixed rate.
pub fn offered_rate(workload: &Workload, reference: Option<&BenchResult>) -> u64 {
    match (workload.producer.rate_fraction_of_reference, reference) {
        (Some(fraction), Some(r)) if r.produce.records_s > 0.0 => {
            (r.produce.records_s * fraction).round().max(1.0) as u64
        }
        _ => workload.producer.rate_records_s,
    }
}

/// Upper bound of the bytes the broker writes in this run: the fill, then the warm-up and the window at the offered
/// rate, or at fio's sequential write speed when the workload runs at max rate (no broker writes faster than the disk).
pub fn bytes_written_bound(
    workload: &Workload,
    reference: Option<&BenchResult>,
    limits: &Limits,
) -> Option<f64> {
    let seconds = (workload.warmup_s + workload.duration_s) as f64;
    let rate_bytes_s = match offered_rate(workload, reference) {
        _ if workload.producer.count == 0 => 0.0,
        0 => limits.fio_seq_write_mb_s? * 1e6,
        rate => rate as f64 * workload.records.size.mean_bytes(),
    };
    Some(workload.fill.bytes as f64 + rate_bytes_s * seconds)
}

/// Share of the data dir's free space a run may fill: the broker's indexes and preallocation, the disk floor's files
/// and everything else on the file system need the rest.
const FREE_SPACE_SHARE: f64 = 0.9;
/// Shortest measured window worth running when the disk cannot hold the workload's (or the workload's own, if shorter).
const WINDOW_MIN_S: u64 = 5;

/// What the data dir's free space allows of the workload's measured window.
#[derive(Debug, PartialEq)]
pub enum WindowFit {
    /// The whole window fits, or nothing bounds what the run writes.
    Whole,
    /// The window cut to this many seconds fits.
    Cut(u64),
    /// Not even [`WINDOW_MIN_S`] fit after the fill and the warm-up.
    TooLittle,
}

/// How much of the measured window fits in `free_bytes`, by [`bytes_written_bound`].
pub fn window_that_fits(
    workload: &Workload,
    reference: Option<&BenchResult>,
    limits: &Limits,
    free_bytes: u64,
) -> WindowFit {
    let Some(bound) = bytes_written_bound(workload, reference, limits) else {
        return WindowFit::Whole;
    };
    let usable = free_bytes as f64 * FREE_SPACE_SHARE;
    if bound <= usable {
        return WindowFit::Whole;
    }
    let fill = workload.fill.bytes as f64;
    let rate_bytes_s = (bound - fill) / (workload.warmup_s + workload.duration_s) as f64;
    if rate_bytes_s <= 0.0 || usable <= fill {
        return WindowFit::TooLittle;
    }
    let fits_s = ((usable - fill) / rate_bytes_s).floor() - workload.warmup_s as f64;
    if fits_s < WINDOW_MIN_S.min(workload.duration_s) as f64 {
        WindowFit::TooLittle
    } else {
        WindowFit::Cut(fits_s as u64)
    }
}

/// Fits the run to the data dir's free space before anything is paid for: a full disk fails a max-rate run seconds
/// in, after the limits and the warm-up (the broker then refuses appends). The measured window is cut to what fits,
/// and the run is refused where not even [`WINDOW_MIN_S`] fit. `keep_window` (a broker whose data lives elsewhere than
/// `data_dir`) only warns. The bound is loose, since no broker writes faster than fio.
pub fn fit_window_to_disk(
    workload: &mut Workload,
    reference: Option<&BenchResult>,
    limits: &Limits,
    data_dir: &Path,
    keep_window: bool,
) -> Result<(), BenchError> {
    let free = match disk_floor::free_bytes(data_dir) {
        Ok(free) => free,
        Err(e) => {
            eprintln!("bench: warning: free space of the data dir unknown: {e}");
            return Ok(());
        }
    };
    let fit = window_that_fits(workload, reference, limits, free);
    if fit == WindowFit::Whole {
        return Ok(());
    }
    let bound = bytes_written_bound(workload, reference, limits).unwrap_or_default();
    let what = format!(
        "{} has {:.1} GB free, and this run may write up to {:.1} GB (the fill, then {} s at the offered rate or at \
         fio's write speed)",
        data_dir.display(),
        free as f64 / 1e9,
        bound / 1e9,
        workload.warmup_s + workload.duration_s
    );
    match fit {
        _ if keep_window => {
            eprintln!("bench: warning: {what}; --keep-window runs the whole window anyway");
            Ok(())
        }
        WindowFit::Cut(seconds) => {
            eprintln!(
                "bench: {what}: the measured window is cut from {} s to {seconds} s so the disk does not fill \
                 (--keep-window keeps it; free space under target/bench-data to measure the whole window)",
                workload.duration_s
            );
            workload.duration_s = seconds;
            Ok(())
        }
        _ => Err(BenchError::Workload {
            path: workload.name.clone(),
            reason: format!(
                "{what}: not even {WINDOW_MIN_S} s of it fit; free space first (old data dirs under \
                 target/bench-data)"
            ),
        }),
    }
}

/// Measures the disk's latency floor when the run will judge a paced acks=all latency against the disk: at the
/// offered payload rate, for the workload's window (at most [`disk_floor::SECONDS_MAX`]). A failure (say, a data
/// dir without O_DIRECT) is printed and leaves the floor out; it never stops the run.
pub fn measure_disk_floor(
    workload: &Workload,
    reference: Option<&BenchResult>,
    data_dir: &Path,
) -> Option<DiskFloor> {
    let rate = offered_rate(workload, reference);
    if !judged_against_floors(workload, rate) {
        return None;
    }
    let record_bytes = workload.records.size.mean_bytes();
    let rate_bytes_s = rate as f64 * record_bytes;
    let seconds = (workload.duration_s as f64).min(disk_floor::SECONDS_MAX);
    eprintln!(
        "disk floor: one writer at {:.1} MB/s for {seconds:.0} s (+{:.0} s warm-up) on {}",
        rate_bytes_s / 1e6,
        disk_floor::WARMUP_S,
        data_dir.display()
    );
    let files = workload.disk_floor_files;
    match disk_floor::measure(data_dir, rate_bytes_s, record_bytes, seconds, files) {
        Ok(floor) => Some(floor),
        Err(e) => {
            eprintln!("disk floor left out: {e}");
            None
        }
    }
}

/// Whether the run's latency is judged against the floors: paced acks=all producers, no fill.
fn judged_against_floors(workload: &Workload, rate: u64) -> bool {
    rate > 0
        && workload.producer.count > 0
        && workload.producer.acks == Acks::All
        && workload.fill.bytes == 0
}

/// Measures the protocol's latency floor where the disk's is measured, with the run's driver (see
/// [`protocol_floor`]). A failure is printed and leaves the floor out; it never stops the run.
pub fn measure_protocol_floor(
    workload: &Workload,
    reference: Option<&BenchResult>,
    driver: DriverKind,
    limits: &Limits,
) -> Option<ProtocolFloor> {
    let rate = offered_rate(workload, reference);
    if !judged_against_floors(workload, rate) {
        return None;
    }
    eprintln!(
        "protocol floor: the producers alone at {rate} records/s for {} s (+{} s warm-up) against a broker that stores \
         nothing",
        workload.duration_s.clamp(1, protocol_floor::SECONDS_MAX),
        protocol_floor::WARMUP_S
    );
    match protocol_floor::measure(workload, rate, driver, limits) {
        Ok(floor) => Some(floor),
        Err(e) => {
            eprintln!("protocol floor left out: {e}");
            None
        }
    }
}

/// Counter values at one instant.
#[derive(Debug, Clone, Copy)]
struct Snapshot {
    produced: (u64, u64),
    consumed: (u64, u64),
    errors: (u64, u64),
    client: Option<CpuSample>,
    server: Option<CpuSample>,
    machine: Option<MachineSample>,
}

impl Snapshot {
    fn take(live: &Live, server_pid: Option<u32>) -> Snapshot {
        Snapshot {
            produced: (
                live.produced_records.load(Relaxed),
                live.produced_bytes.load(Relaxed),
            ),
            consumed: (
                live.consumed_records.load(Relaxed),
                live.consumed_bytes.load(Relaxed),
            ),
            errors: (
                live.produce_errors.load(Relaxed),
                live.consume_errors.load(Relaxed),
            ),
            client: cpu::sample(None),
            server: server_pid.and_then(|p| cpu::sample(Some(p))),
            machine: cpu::sample_machine(),
        }
    }
}

fn cores(a: Option<CpuSample>, b: Option<CpuSample>) -> Option<f64> {
    Some(cpu::cores_between(a?, b?))
}

/// The client's, the broker's and the whole machine's CPU between two snapshots.
fn cpu_between(a: &Snapshot, b: &Snapshot) -> Cpu {
    let machine = a
        .machine
        .zip(b.machine)
        .map(|(a, b)| cpu::machine_cores_between(a, b));
    let user = |x: Option<CpuSample>, y: Option<CpuSample>| {
        x.zip(y).map_or(0.0, |(x, y)| cpu::user_cores_between(x, y))
    };
    let ours = user(a.client, b.client) + user(a.server, b.server);
    Cpu {
        client_cores: cores(a.client, b.client).unwrap_or(0.0),
        server_cores: cores(a.server, b.server),
        machine_cores: machine.map(|m| m.busy),
        other_process_cores: machine.map(|m| (m.user - ours).max(0.0)),
        steal_cores: machine.map(|m| m.steal),
    }
}

fn second_between(t_s: u32, a: &Snapshot, b: &Snapshot, seconds: f64) -> Second {
    let produce = Throughput::over(
        b.produced.0 - a.produced.0,
        b.produced.1 - a.produced.1,
        0,
        seconds,
    );
    let consume = Throughput::over(
        b.consumed.0 - a.consumed.0,
        b.consumed.1 - a.consumed.1,
        0,
        seconds,
    );
    Second {
        t_s,
        produce_records_s: produce.records_s,
        produce_mb_s: produce.mb_s,
        consume_records_s: consume.records_s,
        consume_mb_s: consume.mb_s,
        client_cores: cores(a.client, b.client).unwrap_or(0.0),
        server_cores: cores(a.server, b.server),
        ..Second::default()
    }
}

/// Runs the workload; the result is returned even when some threads failed (their errors are in it).
pub fn run(opts: &RunOptions) -> Result<BenchResult, BenchError> {
    let w = &opts.workload;
    let started_at_unix = now_micros() / 1_000_000;
    let topic = format!("{}-{}", w.topic.prefix, now_micros() / 1000);
    let layout = admin::create_topic(&opts.bootstrap, &topic, &w.topic)?;
    let driver = opts.driver.driver();
    let rate = offered_rate(w, opts.reference.as_ref());
    let mut errors = Vec::new();

    let (fill, end_offsets) = if w.fill.bytes > 0 {
        let (fill, fill_errors) = fill_topic(driver.as_ref(), opts, &layout)?;
        errors.extend(fill_errors);
        (Some(fill), Some(admin::end_offsets(&layout)?))
    } else {
        (None, None)
    };

    let live = Arc::new(Live::default());
    let measured = thread::scope(|scope| -> Result<Measured, BenchError> {
        let consumers: Vec<_> = (0..w.consumer.count)
            .map(|index| {
                let job = ConsumeJob {
                    bootstrap: &opts.bootstrap,
                    workload: w,
                    layout: &layout,
                    end_offsets: end_offsets.as_deref(),
                    index,
                };
                let (driver, live) = (&driver, &live);
                scope.spawn(move || driver.consume(&job, live))
            })
            .collect();
        wait_for_consumers(&live, &consumers)?;
        let producer_count = if fill.is_some() { 0 } else { w.producer.count };
        let producers: Vec<_> = (0..producer_count)
            .map(|i| {
                let job = ProduceJob {
                    bootstrap: &opts.bootstrap,
                    workload: w,
                    layout: &layout,
                    rate_records_s: rate.div_ceil(u64::from(producer_count)),
                    bytes_limit: None,
                    seed: u64::from(i) + 1,
                };
                let (driver, live) = (&driver, &live);
                scope.spawn(move || driver.produce(&job, live))
            })
            .collect();
        let catch_up = fill.is_some();
        let measured = measure(opts, &live, catch_up, &consumers);
        live.stop.store(true, Relaxed);
        let mut reports = Vec::new();
        for handle in producers.into_iter().chain(consumers) {
            match handle.join() {
                Ok(Ok(report)) => reports.push(report),
                Ok(Err(e)) => reports.push(WorkerReport {
                    first_error: Some(e.to_string()),
                    ..WorkerReport::default()
                }),
                Err(_) => reports.push(WorkerReport {
                    first_error: Some("a load thread panicked".into()),
                    ..WorkerReport::default()
                }),
            }
        }
        Ok(Measured {
            reports,
            ..measured
        })
    })?;
    if opts.progress {
        eprintln!();
    }
    Ok(build_result(
        opts,
        started_at_unix,
        topic,
        rate,
        fill,
        measured,
        errors,
    ))
}

/// Produces `fill.bytes` at max rate; returns its throughput and the producers' errors.
fn fill_topic(
    driver: &dyn Driver,
    opts: &RunOptions,
    layout: &TopicLayout,
) -> Result<(Throughput, Vec<String>), BenchError> {
    let w = &opts.workload;
    let live = Arc::new(Live::default());
    let producers = w.producer.count.max(1);
    let start = Instant::now();
    let reports: Vec<Result<WorkerReport, BenchError>> = thread::scope(|scope| {
        let handles: Vec<_> = (0..producers)
            .map(|i| {
                let job = ProduceJob {
                    bootstrap: &opts.bootstrap,
                    workload: w,
                    layout,
                    rate_records_s: 0,
                    bytes_limit: Some(w.fill.bytes.div_ceil(u64::from(producers))),
                    seed: u64::from(i) + 1,
                };
                let live = &live;
                scope.spawn(move || driver.produce(&job, live))
            })
            .collect();
        // Polled often so the fill's end (and MB/s) is not rounded to the progress interval.
        let mut next_progress = start + FILL_PROGRESS_EVERY;
        while opts.progress && !handles.iter().all(|h| h.is_finished()) {
            thread::sleep(CATCHUP_POLL);
            if Instant::now() < next_progress {
                continue;
            }
            next_progress += FILL_PROGRESS_EVERY;
            let bytes = live.produced_bytes.load(Relaxed);
            eprint!(
                "\r[fill {:>5.1}s] {:>9.1} MB of {:.1} MB",
                start.elapsed().as_secs_f64(),
                bytes as f64 / 1e6,
                w.fill.bytes as f64 / 1e6
            );
        }
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(BenchError::protocol("fill", "producer panicked")))
            })
            .collect()
    });
    let seconds = start.elapsed().as_secs_f64();
    if opts.progress {
        eprintln!();
    }
    let errors: Vec<String> = reports
        .iter()
        .filter_map(|r| r.as_ref().err().map(|e| e.to_string()))
        .collect();
    let fill = Throughput::over(
        live.produced_records.load(Relaxed),
        live.produced_bytes.load(Relaxed),
        live.produce_errors.load(Relaxed),
        seconds,
    );
    Ok((fill, errors))
}

/// Waits, bounded, until every consumer has its start offsets (or one of them has already failed).
fn wait_for_consumers<T>(
    live: &Live,
    consumers: &[ScopedJoinHandle<'_, T>],
) -> Result<(), BenchError> {
    let deadline = Instant::now() + Duration::from_secs(CONSUMERS_READY_TIMEOUT_S);
    while (live.consumers_ready.load(Relaxed) as usize) < consumers.len() {
        if consumers.iter().any(|c| c.is_finished()) {
            return Ok(()); // it failed; its error is reported when joined
        }
        if Instant::now() >= deadline {
            live.stop.store(true, Relaxed);
            return Err(BenchError::protocol(
                "consumers",
                format!("not ready after {CONSUMERS_READY_TIMEOUT_S} s"),
            ));
        }
        thread::sleep(Duration::from_millis(10));
    }
    Ok(())
}

/// What the measured window produced.
#[derive(Default)]
struct Measured {
    seconds: f64,
    produce: Throughput,
    consume: Throughput,
    cpu: Cpu,
    server_memory: Option<ServerMemory>,
    series: Vec<Second>,
    reports: Vec<WorkerReport>,
}

/// Warm-up then the measured window, one tick a second.
fn measure<T>(
    opts: &RunOptions,
    live: &Live,
    catch_up: bool,
    consumers: &[ScopedJoinHandle<'_, T>],
) -> Measured {
    let w = &opts.workload;
    let pid = opts.server_pid;
    let warmup = if catch_up { 0 } else { w.warmup_s };
    let warm_start = Instant::now();
    for s in 0..warmup {
        let next = warm_start + Duration::from_secs(s + 1);
        thread::sleep(next.saturating_duration_since(Instant::now()));
        if opts.progress {
            eprint!(
                "\r{}",
                report::progress_line("warm-up", s + 1, warmup, live, None)
            );
        }
    }
    live.measure_start_us.store(now_micros(), Relaxed);
    let start = Instant::now();
    let first = Snapshot::take(live, pid);
    live.window_open.store(true, Relaxed);
    let mut previous = first;
    let mut commits = opts.server_metrics.as_deref().map(CommitLatency::new);
    if let Some(s) = commits.as_mut() {
        s.scrape();
    }
    let mut series = Vec::new();
    let limit_s = if catch_up {
        w.duration_s * CATCHUP_DURATION_FACTOR
    } else {
        w.duration_s
    };
    for s in 0..limit_s {
        let second_start = start + Duration::from_secs(s);
        let caught_up = wait_second(second_start + Duration::from_secs(1), catch_up, consumers);
        let now = Snapshot::take(live, pid);
        // A catch-up ends the moment the consumers do: its last second is a partial one.
        let span = second_start.elapsed().as_secs_f64().clamp(1e-3, 1.0);
        let mut second = second_between(s as u32, &previous, &now, span);
        if let Some(commits) = commits.as_mut() {
            (second.server_commit_p99_ms, second.server_commit_max_ms) = commits.scrape();
        }
        if opts.progress {
            eprint!(
                "\r{}",
                report::progress_line("measure", s + 1, limit_s, live, Some(&second))
            );
        }
        series.push(second);
        previous = now;
        if caught_up {
            break;
        }
    }
    live.measure_end_us.store(now_micros(), Relaxed);
    let last = Snapshot::take(live, pid);
    let seconds = start.elapsed().as_secs_f64();
    Measured {
        seconds,
        produce: Throughput::over(
            last.produced.0 - first.produced.0,
            last.produced.1 - first.produced.1,
            last.errors.0 - first.errors.0,
            seconds,
        ),
        consume: Throughput::over(
            last.consumed.0 - first.consumed.0,
            last.consumed.1 - first.consumed.1,
            last.errors.1 - first.errors.1,
            seconds,
        ),
        cpu: cpu_between(&first, &last),
        server_memory: pid.and_then(memory::sample),
        series,
        reports: Vec::new(),
    }
}

/// The broker's commit latency histogram, scraped each second; a failed scrape leaves that second (and the next) without
/// the figures and is printed once.
struct CommitLatency {
    endpoint: ServerMetrics,
    last: Option<Buckets>,
    warned: bool,
}

impl CommitLatency {
    fn new(addr: &str) -> CommitLatency {
        CommitLatency {
            endpoint: ServerMetrics::new(addr),
            last: None,
            warned: false,
        }
    }

    /// Scrapes now; returns the p99 and the max (bucket bounds, ms) of the commits since the last scrape.
    fn scrape(&mut self) -> (Option<f64>, Option<f64>) {
        let now = match self.endpoint.commits() {
            Ok(now) => Some(now),
            Err(e) => {
                if !std::mem::replace(&mut self.warned, true) {
                    eprintln!("\nbench: no server commit figures for some seconds: {e}");
                }
                None
            }
        };
        let figures = match (&self.last, &now) {
            (Some(last), Some(now)) => (
                now.quantile_ms_since(last, 0.99),
                now.quantile_ms_since(last, 1.0),
            ),
            _ => (None, None),
        };
        self.last = now;
        figures
    }
}

/// Sleeps until `until`; a catch-up also wakes every [`CATCHUP_POLL`] to end the window as soon as every consumer
/// has finished (so its MB/s is not rounded to whole seconds). True if they have.
fn wait_second<T>(until: Instant, catch_up: bool, consumers: &[ScopedJoinHandle<'_, T>]) -> bool {
    loop {
        if catch_up && consumers.iter().all(|c| c.is_finished()) {
            return true;
        }
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        thread::sleep(if catch_up {
            left.min(CATCHUP_POLL)
        } else {
            left
        });
    }
}

fn build_result(
    opts: &RunOptions,
    started_at_unix: u64,
    topic: String,
    rate: u64,
    fill: Option<Throughput>,
    measured: Measured,
    mut errors: Vec<String>,
) -> BenchResult {
    let w = &opts.workload;
    let mut publish = Recorder::default();
    let mut request_rtt = Recorder::default();
    let mut client_windows = ClientWindows::default();
    let mut e2e = Recorder::default();
    for r in &measured.reports {
        publish.merge(&r.publish);
        request_rtt.merge(&r.request_rtt);
        client_windows.merge(&r.client_windows);
        e2e.merge(&r.e2e);
        errors.extend(r.first_error.clone());
    }
    let mut series = measured.series;
    for (second, pair) in series.iter_mut().zip(publish.per_second()) {
        second.publish_p50_ms = pair.map(|p| p.0);
        second.publish_p99_ms = pair.map(|p| p.1);
    }
    for (second, pair) in series.iter_mut().zip(e2e.per_second()) {
        second.e2e_p50_ms = pair.map(|p| p.0);
        second.e2e_p99_ms = pair.map(|p| p.1);
    }
    for (t, second) in series.iter_mut().enumerate() {
        second.client_rtt_p99_ms = client_windows.rtt_p99.at(t);
        second.client_queue_p99_ms = client_windows.queue_p99.at(t);
    }
    let produces = fill.is_none() && w.producer.count > 0;
    let produce_to_disk_ratio = match (produces, opts.limits.fio_seq_write_mb_s) {
        (true, Some(disk)) if disk > 0.0 => Some(measured.produce.mb_s / disk),
        _ => None,
    };
    let publish_latency_ms = publish.percentiles();
    let mut goals = Vec::new();
    let goal_records = w.records.size
        == SizeSpec::Fixed {
            bytes: GOAL_PRODUCE_RECORD_BYTES,
        };
    // The produce goal is for the max-rate workload: acks=all, 1 KiB records, nobody reading beside it.
    if let (Some(ratio), true, true, true, 0) = (
        produce_to_disk_ratio,
        rate == 0,
        w.producer.acks == Acks::All,
        goal_records,
        w.consumer.count,
    ) {
        goals.push(Goal::at_least(
            "produce_to_disk_ratio",
            ratio,
            GOAL_PRODUCE_TO_DISK_MIN,
        ));
    }
    if let (true, true, Some(sync_p99)) = (
        produces && rate > 0,
        publish_latency_ms.count > 0,
        opts.limits.fdatasync_p99_ms,
    ) {
        let mut goal = Goal::at_most(
            "publish_p99_to_fdatasync_p99",
            publish_latency_ms.p99 / sync_p99.max(1e-6),
            GOAL_P99_TO_FDATASYNC_MAX,
        );
        goal.disk_alone = opts
            .disk_floor
            .as_ref()
            .filter(|f| f.latency_ms.count > 0)
            .map(|f| f.latency_ms.p99 / sync_p99.max(1e-6));
        goal.network_alone = opts
            .protocol_floor
            .as_ref()
            .map(|f| f.publish_latency_ms.p99 / sync_p99.max(1e-6));
        goals.push(goal);
    }
    if let Some(f) = fill.filter(|f| f.mb_s > 0.0) {
        // The produce figure is the reference's max rate where that is higher than the fill's: a broker that fills
        // slowly (a large tail cache taking fresh memory, say) must not make the catch-up goal easier.
        let reference_mb_s = opts.reference.as_ref().map(|r| r.produce.mb_s);
        let (produce_mb_s, basis) = match reference_mb_s {
            Some(max) if max > f.mb_s => (
                max,
                format!(
                    "the reference's max produce, {max:.0} MB/s; this fill ran at {:.0} MB/s",
                    f.mb_s
                ),
            ),
            _ => (f.mb_s, format!("this run's fill, {:.0} MB/s", f.mb_s)),
        };
        let mut goal = Goal::at_least(
            GOAL_CATCHUP,
            measured.consume.mb_s / produce_mb_s,
            GOAL_CATCHUP_TO_PRODUCE_MIN,
        );
        goal.basis = Some(basis);
        // A catch-up read from the disk is bounded by the disk's sequential read (the fill outgrows the tail cache).
        goal.disk_alone = opts
            .limits
            .fio_seq_read_mb_s
            .filter(|r| *r > 0.0)
            .map(|r| r / produce_mb_s);
        // From memory the bound is the connection: 1 Gbit/s is 125 MB/s.
        goal.network_alone = opts
            .limits
            .iperf3_loopback_gbit_s
            .filter(|g| *g > 0.0)
            .map(|g| g * 125.0 / produce_mb_s);
        goals.push(goal);
    }
    BenchResult {
        schema_version: SCHEMA_VERSION,
        tool_version: env!("CARGO_PKG_VERSION").to_string(),
        started_at_unix,
        workload: w.clone(),
        topic,
        driver: opts.driver.name().to_string(),
        broker: Broker {
            name: opts.broker_name.clone(),
            bootstrap: opts.bootstrap.clone(),
            server_pid: opts.server_pid,
        },
        machine: Machine::describe(),
        limits: opts.limits.clone(),
        offered_rate_records_s: rate,
        measured_s: measured.seconds,
        produce: measured.produce,
        consume: measured.consume,
        fill,
        publish_latency_ms,
        produce_request_rtt_ms: (request_rtt.count() > 0).then(|| request_rtt.percentiles()),
        librdkafka: client_windows.summary(),
        e2e_latency_ms: e2e.percentiles(),
        publish_latency_curve: publish.curve(),
        e2e_latency_curve: e2e.curve(),
        cpu: measured.cpu,
        server_memory: measured.server_memory,
        series,
        produce_to_disk_ratio,
        disk_floor: opts.disk_floor.clone(),
        protocol_floor: opts.protocol_floor.clone(),
        goals,
        errors,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn workload(fraction: Option<f64>) -> Workload {
        let mut w = crate::workload::minimal_for_tests();
        w.records.size = SizeSpec::Fixed { bytes: 100 };
        w.producer.count = 2;
        w.producer.rate_records_s = 5000;
        w.producer.rate_fraction_of_reference = fraction;
        w
    }

    #[test]
    fn offered_rate_uses_the_reference_only_when_asked() {
        let w = workload(None);
        assert_eq!(offered_rate(&w, None), 5000);
        let mut reference = crate::result::sample_result();
        reference.produce.records_s = 100_000.0;
        assert_eq!(offered_rate(&w, Some(&reference)), 5000);
        let half = workload(Some(0.5));
        assert_eq!(offered_rate(&half, Some(&reference)), 50_000);
        assert_eq!(
            offered_rate(&half, None),
            5000,
            "no reference: the fixed fallback rate"
        );
    }

    fn fio_writing_at(mb_s: f64) -> Limits {
        Limits {
            fio_seq_write_mb_s: Some(mb_s),
            ..Limits::default()
        }
    }

    #[test]
    fn bytes_written_bound_takes_fio_speed_at_max_rate() {
        let limits = fio_writing_at(2000.0);
        let mut w = workload(None);
        w.warmup_s = 3;
        // Paced: 5000 records/s of 100 B for 3 + 5 s.
        assert_eq!(bytes_written_bound(&w, None, &limits), Some(4e6));
        w.fill.bytes = 1_000_000;
        assert_eq!(bytes_written_bound(&w, None, &limits), Some(5e6));
        w.producer.rate_records_s = 0;
        assert_eq!(
            bytes_written_bound(&w, None, &limits),
            Some(1e6 + 2000e6 * 8.0)
        );
        assert_eq!(
            bytes_written_bound(&w, None, &Limits::default()),
            None,
            "max rate without fio's figure: no bound"
        );
        w.producer.count = 0;
        assert_eq!(bytes_written_bound(&w, None, &limits), Some(1e6));
    }

    #[test]
    fn the_window_is_cut_to_the_free_space_or_the_run_refused() {
        let limits = fio_writing_at(1000.0);
        let mut w = workload(None);
        w.producer.rate_records_s = 0;
        w.warmup_s = 10;
        w.duration_s = 60;
        // Max rate at fio's 1 GB/s: 70 GB for the whole run.
        assert_eq!(
            window_that_fits(&w, None, &limits, 100_000_000_000),
            WindowFit::Whole
        );
        // 50 GB free: 45 GB usable, 10 s of warm-up, 35 s of window.
        assert_eq!(
            window_that_fits(&w, None, &limits, 50_000_000_000),
            WindowFit::Cut(35)
        );
        assert_eq!(
            window_that_fits(&w, None, &limits, 15_000_000_000),
            WindowFit::TooLittle
        );
        w.fill.bytes = 40_000_000_000;
        assert_eq!(
            window_that_fits(&w, None, &limits, 50_000_000_000),
            WindowFit::TooLittle,
            "the fill takes the room"
        );
        assert_eq!(
            window_that_fits(&w, None, &Limits::default(), 1),
            WindowFit::Whole,
            "no bound without fio's figure"
        );
    }

    #[test]
    fn second_between_turns_deltas_into_rates() {
        let a = Snapshot {
            produced: (100, 100_000),
            consumed: (0, 0),
            errors: (0, 0),
            client: None,
            server: None,
            machine: None,
        };
        let b = Snapshot {
            produced: (1100, 2_100_000),
            consumed: (500, 1_000_000),
            ..a
        };
        let s = second_between(3, &a, &b, 2.0);
        assert_eq!(s.t_s, 3);
        assert_eq!(s.produce_records_s, 500.0);
        assert_eq!(s.produce_mb_s, 1.0);
        assert_eq!(s.consume_mb_s, 0.5);
        assert_eq!(s.server_cores, None);
    }

    fn options(bytes: usize) -> RunOptions {
        let mut w = workload(None);
        w.producer.rate_records_s = 0;
        w.records.size = SizeSpec::Fixed { bytes };
        RunOptions {
            workload: w,
            bootstrap: "127.0.0.1:9092".into(),
            driver: DriverKind::Native,
            broker_name: "pinlog".into(),
            server_pid: None,
            server_metrics: None,
            limits: Limits {
                fio_seq_write_mb_s: Some(1000.0),
                fio_seq_read_mb_s: Some(1300.0),
                iperf3_loopback_gbit_s: Some(20.0),
                ..Limits::default()
            },
            reference: None,
            disk_floor: None,
            protocol_floor: None,
            progress: false,
        }
    }

    fn measured(produce_mb_s: f64, consume_mb_s: f64) -> Measured {
        let mb_s = |mb_s| Throughput {
            mb_s,
            ..Throughput::default()
        };
        Measured {
            seconds: 10.0,
            produce: mb_s(produce_mb_s),
            consume: mb_s(consume_mb_s),
            cpu: Cpu::default(),
            server_memory: None,
            series: Vec::new(),
            reports: Vec::new(),
        }
    }

    fn goals(r: &BenchResult) -> Vec<(String, f64, Option<f64>)> {
        r.goals
            .iter()
            .map(|g| (g.name.clone(), g.value, g.disk_alone))
            .collect()
    }

    #[test]
    fn the_produce_goal_is_for_1_kib_records_and_the_catchup_goal_knows_the_disk_read_and_the_max()
    {
        let at_max = |bytes| {
            let r = build_result(
                &options(bytes),
                0,
                "t".into(),
                0,
                None,
                measured(800.0, 0.0),
                Vec::new(),
            );
            (goals(&r), r.produce_to_disk_ratio)
        };
        assert_eq!(
            at_max(1024),
            (
                vec![("produce_to_disk_ratio".to_string(), 0.8, None)],
                Some(0.8)
            )
        );
        assert_eq!(
            at_max(100),
            (vec![], Some(0.8)),
            "100 B records: the ratio, not the goal"
        );
        let mut fanout = options(1024);
        fanout.workload.consumer.count = 3;
        let r = build_result(
            &fanout,
            0,
            "t".into(),
            0,
            None,
            measured(800.0, 2400.0),
            Vec::new(),
        );
        assert_eq!(
            (goals(&r), r.produce_to_disk_ratio),
            (vec![], Some(0.8)),
            "consumers beside the producer: the ratio, not the goal"
        );

        let fill = Throughput {
            mb_s: 1000.0,
            ..Throughput::default()
        };
        let r = build_result(
            &options(1024),
            0,
            "t".into(),
            0,
            Some(fill),
            measured(0.0, 1200.0),
            Vec::new(),
        );
        assert_eq!(goals(&r), vec![(GOAL_CATCHUP.to_string(), 1.2, Some(1.3))]);
        assert_eq!(
            r.goals[0].basis.as_deref(),
            Some("this run's fill, 1000 MB/s")
        );
        assert_eq!(
            r.goals[0].network_alone,
            Some(2.5),
            "20 Gbit/s of loopback is 2500 MB/s"
        );

        let mut with_reference = options(1024);
        let mut reference = crate::result::sample_result();
        reference.produce.mb_s = 1300.0;
        with_reference.reference = Some(reference);
        let slow_fill = Throughput {
            mb_s: 400.0,
            ..Throughput::default()
        };
        let r = build_result(
            &with_reference,
            0,
            "t".into(),
            0,
            Some(slow_fill),
            measured(0.0, 1950.0),
            Vec::new(),
        );
        assert_eq!(
            goals(&r),
            vec![(GOAL_CATCHUP.to_string(), 1.5, Some(1.0))],
            "a slow fill is measured against the reference's max produce"
        );
        assert!(!r.goals[0].met);
        assert_eq!(
            r.goals[0].basis.as_deref(),
            Some("the reference's max produce, 1300 MB/s; this fill ran at 400 MB/s")
        );
    }
}
