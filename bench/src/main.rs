//! `pinlog-bench`: run a workload against any Kafka-compatible broker, measure the machine's limits, render and
//! compare results. See bench/README.md.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use pinlog_bench::driver::DriverKind;
use pinlog_bench::error::BenchError;
use pinlog_bench::limits::{self, Limits};
use pinlog_bench::result::BenchResult;
use pinlog_bench::runner::{self, RunOptions};
use pinlog_bench::workload::Workload;
use pinlog_bench::{compare, disk_floor, null_broker, plot, report};

#[derive(Parser)]
#[command(
    name = "pinlog-bench",
    version,
    about = "Benchmark suite for pinlog and any Kafka-compatible broker"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run a workload file against a broker and write a JSON result (plus SVG plots next to it).
    Run(Box<RunArgs>),
    /// Measure the machine's limits with fio (on the data dir) and iperf3 (loopback); cached for an hour.
    Limits {
        /// Directory on the disk the broker writes to (never tmpfs).
        #[arg(long)]
        data_dir: PathBuf,
        #[arg(long, default_value_os_t = limits::default_cache())]
        cache: PathBuf,
        /// Measure even if the cache is fresh.
        #[arg(long)]
        force: bool,
    },
    /// The disk's latency floor at a rate: one writer, write + fdatasync per group commit, no broker (JSON out).
    Floor {
        /// Directory on the disk the broker writes to (never tmpfs).
        #[arg(long)]
        data_dir: PathBuf,
        /// Offered payload rate, MB/s (10^6 bytes).
        #[arg(long)]
        rate_mb_s: f64,
        #[arg(long, default_value_t = 1024.0)]
        record_bytes: f64,
        #[arg(long, default_value_t = disk_floor::SECONDS_MAX)]
        seconds: f64,
        /// `fresh` (fallocated, as pinlog's segments) or `prewritten` (overwrites, as recycled segments would be).
        #[arg(long, value_enum, default_value_t = disk_floor::Files::Fresh)]
        files: disk_floor::Files,
    },
    /// Print the summary of result files and render their plots.
    Report { files: Vec<PathBuf> },
    /// Compare two or more result files side by side (ratios to the first).
    Compare {
        #[arg(required = true, num_args = 2..)]
        files: Vec<PathBuf>,
        /// Also write `<out>.md` and `<out>-percentiles.svg`.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Check result files are valid and complete (what the smoke test asserts; speed is not judged).
    Validate { files: Vec<PathBuf> },
    /// A Kafka endpoint that stores nothing and answers every Produce at once: the floor of a publish without a
    /// broker's work, for producer-only workloads (runs until killed).
    NullBroker {
        #[arg(long, default_value = "127.0.0.1:9092")]
        listen: std::net::SocketAddr,
        /// Acknowledge produce only once its bytes are written and fdatasynced over a 1 GiB file written in this
        /// directory beforehand (never tmpfs): the floor of a durable broker.
        #[arg(long)]
        sync_dir: Option<PathBuf>,
    },
}

#[derive(clap::Args)]
struct RunArgs {
    /// Workload file (bench/workloads/*.toml).
    #[arg(long)]
    workload: PathBuf,
    /// Any Kafka-compatible broker.
    #[arg(long, default_value = "127.0.0.1:9092")]
    bootstrap: String,
    #[arg(long, value_enum, default_value_t = DriverKind::Native)]
    driver: DriverKind,
    /// Label of the broker in reports.
    #[arg(long, default_value = "pinlog")]
    broker_name: String,
    /// Broker process whose CPU use is reported.
    #[arg(long)]
    server_pid: Option<u32>,
    /// The broker's Prometheus endpoint (host:port, e.g. pinlog's --metrics-listen): its commit latency goes into
    /// each second of the series.
    #[arg(long)]
    server_metrics: Option<String>,
    /// Broker data directory: where the limits are measured (never tmpfs).
    #[arg(long)]
    data_dir: PathBuf,
    #[arg(long, default_value_os_t = limits::default_cache())]
    limits_cache: PathBuf,
    /// Result file to write.
    #[arg(long)]
    out: PathBuf,
    /// Max-rate result whose produce rate sets `rate_fraction_of_reference` workloads' rate.
    #[arg(long)]
    reference: Option<PathBuf>,
    /// Override the workload's measured seconds.
    #[arg(long)]
    duration_s: Option<u64>,
    /// Override the workload's warm-up seconds.
    #[arg(long)]
    warmup_s: Option<u64>,
    /// Cap the workload's fill bytes (smoke runs).
    #[arg(long)]
    fill_bytes_max: Option<u64>,
    /// Cap the workload's partitions (smoke runs on small hosts).
    #[arg(long)]
    partitions_max: Option<u32>,
    /// No progress line.
    #[arg(long)]
    quiet: bool,
    /// Do not render SVG plots.
    #[arg(long)]
    no_plots: bool,
    /// Skip the disk's latency floor that paced acks=all workloads measure before the run.
    #[arg(long)]
    no_disk_floor: bool,
    /// Skip the protocol's latency floor (the producers against an in-process broker that stores nothing) that paced
    /// acks=all workloads measure before the run.
    #[arg(long)]
    no_protocol_floor: bool,
    /// Measure the whole window even where the data dir's free space may not hold what the broker writes (a broker
    /// whose data lives elsewhere); without it the window is cut to fit.
    #[arg(long)]
    keep_window: bool,
}

fn run(args: RunArgs) -> Result<bool, BenchError> {
    let mut workload = Workload::load(&args.workload)?;
    if let Some(d) = args.duration_s {
        workload.duration_s = d.max(1);
    }
    if let Some(w) = args.warmup_s {
        workload.warmup_s = w;
    }
    if let Some(f) = args.fill_bytes_max {
        workload.fill.bytes = workload.fill.bytes.min(f);
    }
    if let Some(p) = args.partitions_max {
        workload.topic.partitions = workload.topic.partitions.min(p.max(1));
    }
    let limits = Limits::cached_or_measure(&args.limits_cache, &args.data_dir, false)?;
    let reference = args
        .reference
        .as_deref()
        .map(BenchResult::load)
        .transpose()?;
    runner::fit_window_to_disk(
        &mut workload,
        reference.as_ref(),
        &limits,
        &args.data_dir,
        args.keep_window,
    )?;
    let disk_floor = if args.no_disk_floor {
        None
    } else {
        runner::measure_disk_floor(&workload, reference.as_ref(), &args.data_dir)
    };
    let protocol_floor = if args.no_protocol_floor {
        None
    } else {
        runner::measure_protocol_floor(&workload, reference.as_ref(), args.driver, &limits)
    };
    let opts = RunOptions {
        workload,
        bootstrap: args.bootstrap,
        driver: args.driver,
        broker_name: args.broker_name,
        server_pid: args.server_pid,
        server_metrics: args.server_metrics,
        limits,
        reference,
        disk_floor,
        protocol_floor,
        progress: !args.quiet,
    };
    let result = runner::run(&opts)?;
    result.save(&args.out)?;
    print!("{}", report::summary(&result));
    println!("result: {}", args.out.display());
    if !args.no_plots {
        for f in plot::render(&result, &args.out.with_extension(""))? {
            println!("plot: {}", f.display());
        }
    }
    Ok(result.errors.is_empty())
}

fn floor(
    data_dir: &Path,
    rate_mb_s: f64,
    record_bytes: f64,
    seconds: f64,
    files: disk_floor::Files,
) -> Result<bool, BenchError> {
    let valid = |v: f64| v.is_finite() && v > 0.0;
    if !(valid(rate_mb_s) && valid(record_bytes) && valid(seconds)) {
        return Err(BenchError::Tool {
            tool: "floor".into(),
            reason: "--rate-mb-s, --record-bytes and --seconds must be positive".into(),
        });
    }
    let f = disk_floor::measure(data_dir, rate_mb_s * 1e6, record_bytes, seconds, files)?;
    println!(
        "{}",
        serde_json::to_string_pretty(&f).expect("floor serializes")
    );
    Ok(true)
}

fn null_broker(listen: std::net::SocketAddr, sync_dir: Option<&Path>) -> Result<bool, BenchError> {
    let io = |what: &str| {
        let what = format!("null-broker {what} {listen}");
        move |source| BenchError::Io { what, source }
    };
    let log = match sync_dir {
        None => None,
        Some(dir) => {
            std::fs::create_dir_all(dir)
                .map_err(|e| BenchError::io(format!("create {}", dir.display()), e))?;
            Some(disk_floor::OverwrittenLog::create(
                dir,
                disk_floor::FILE_BYTES,
            )?)
        }
    };
    let listener = std::net::TcpListener::bind(listen).map_err(io("binding"))?;
    let advertised = listener.local_addr().map_err(io("binding"))?;
    match sync_dir {
        None => eprintln!("null-broker: listening on {advertised}; it stores nothing"),
        Some(dir) => eprintln!(
            "null-broker: listening on {advertised}; produce is acknowledged once written and fdatasynced in {}",
            dir.display()
        ),
    }
    null_broker::serve(listener, advertised, log).map_err(io("accepting on"))?;
    Ok(true)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome = match cli.command {
        Cmd::Run(args) => run(*args),
        Cmd::Limits {
            data_dir,
            cache,
            force,
        } => Limits::cached_or_measure(&cache, &data_dir, force).map(|l| {
            println!(
                "{}",
                serde_json::to_string_pretty(&l).expect("limits serialize")
            );
            true
        }),
        Cmd::Floor {
            data_dir,
            rate_mb_s,
            record_bytes,
            seconds,
            files,
        } => floor(&data_dir, rate_mb_s, record_bytes, seconds, files),
        Cmd::Report { files } => files.iter().try_fold(true, |ok, f| {
            let r = BenchResult::load(f)?;
            print!("{}", report::summary(&r));
            for p in plot::render(&r, &f.with_extension(""))? {
                println!("plot: {}", p.display());
            }
            Ok(ok)
        }),
        Cmd::Compare { files, out } => {
            let paths: Vec<_> = files.iter().map(PathBuf::as_path).collect();
            compare::compare(&paths, out.as_deref()).map(|t| {
                print!("{t}");
                true
            })
        }
        Cmd::Validate { files } => files.iter().try_fold(true, |ok, f| {
            let problems = BenchResult::load(f)?.completeness_problems();
            for p in &problems {
                eprintln!("{}: {p}", f.display());
            }
            if problems.is_empty() {
                println!("{}: ok", f.display());
            }
            Ok(ok && problems.is_empty())
        }),
        Cmd::NullBroker { listen, sync_dir } => null_broker(listen, sync_dir.as_deref()),
    };
    match outcome {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("pinlog-bench: {e}");
            ExitCode::from(2)
        }
    }
}
