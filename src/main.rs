//! The `pinlog` binary: parses the config, plans the cores, starts the metadata raft shard, then one glommio
//! executor per shard core, each serving Kafka on the same port.

mod admin;

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use glommio::channels::shared_channel;
use glommio::{LocalExecutorBuilder, Placement};
use pinlog_engine::{FlushPolicy, LogConfig};
use pinlog_net::{build_mesh, run_shard, NetConfig, ShardMetrics, ShardParams};
use pinlog_raft_shard::RaftShardConfig;
use pinlog_tuning::{Cli, Command, Config, FlushPolicyName};

/// Requests one connection may have in flight (librdkafka pipelines up to 1,000,000 by default; 5 when idempotent).
const INFLIGHT_REQUESTS_PER_CONNECTION_MAX: usize = 128;
/// How long start-up waits for an answer when checking that the listen port is free.
const PORT_PROBE_TIMEOUT: Duration = Duration::from_millis(300);
/// Messages queued between the raft shard and one data shard, each way.
const RAFT_CHANNEL_CAPACITY: usize = 1024;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command.unwrap_or_default() {
        Command::Serve(args) => match pinlog_tuning::load(&args) {
            Ok(config) => serve(config),
            Err(err) => {
                eprintln!("pinlog: {err}");
                ExitCode::from(2)
            }
        },
        Command::Tune(args) => {
            print!("{}", pinlog_tuning::tune_report(&args.data_dir));
            ExitCode::SUCCESS
        }
        Command::Topic(args) => admin::run_topic(args),
        Command::Group(args) => admin::run_group(args),
        Command::Cluster(args) => admin::run_cluster(args),
    }
}

fn init_tracing(level: &str) {
    // glommio logs through `log`: tracing-subscriber's init() bridges it into tracing (tracing-log feature), so
    // there is one stream.
    let filter = tracing_subscriber::EnvFilter::try_from_env("PINLOG_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

/// Logs the shards' I/O arenas (`shard_io_memory_bytes`), and warns, with the remedy, when io_uring cannot register
/// them (glommio's own warning is an OS error dump per ring); unregistered, every I/O pins its pages itself.
fn log_io_memory(config: &Config, shards: usize) {
    let arena = config.shard_io_memory_bytes as u64;
    if arena == 0 {
        tracing::info!(
            "I/O memory off (shard_io_memory_bytes = 0): group-commit buffers come from the heap"
        );
        return;
    }
    let registered = pinlog_tuning::IO_ARENA_RINGS_PER_SHARD * shards as u64 * arena;
    tracing::info!(
        arena_bytes_per_shard = arena,
        shards,
        "I/O memory: group-commit buffers and disk reads from a huge-page arena per shard"
    );
    match pinlog_tuning::memlock_fits(registered) {
        Ok(true) => {}
        Ok(false) => tracing::warn!(
            registered_bytes = registered,
            memlock_soft_bytes = ?pinlog_tuning::memlock_limit().ok().and_then(|(soft, _)| soft),
            "I/O arenas not registered with io_uring: RLIMIT_MEMLOCK is below what they need and the process lacks \
             CAP_IPC_LOCK; raise LimitMEMLOCK (ulimit -l) to register them (see pinlog tune)"
        ),
        Err(err) => tracing::warn!(%err, "cannot read RLIMIT_MEMLOCK or capabilities"),
    }
}

/// Buffers below this size come from malloc's arenas, not from a fresh `mmap` each (glibc's default: 128 KiB, raised
/// on the fly only after such a buffer is freed). 32 MiB is glibc's largest allowed value on 64-bit.
const HEAP_MMAP_THRESHOLD_BYTES: libc::c_int = 32 << 20;
/// Free memory an arena keeps at its top before it hands it back to the kernel (glibc's default: 128 KiB).
const HEAP_TRIM_THRESHOLD_BYTES: libc::c_int = 64 << 20;

/// Lets the request path reuse freed buffers instead of faulting in fresh zeroed pages for every one. Fetch answers
/// are copied into a new buffer per partition read (up to 8 MiB): with glibc's defaults each came from a new `mmap`
/// or a regrown arena, and the kernel's page faults and page clearing were 21 % of a shard's samples during a
/// catch-up. With these two settings the catch-up read 1080 -> 1444 MB/s at 0.86 -> 0.71 server cores (medians of 3
/// alternating rounds, bench/EXPERIMENTS.md "Freed buffers"). The cost: up to 64 MiB of free memory per malloc arena stays
/// in the process.
fn keep_freed_buffers() {
    for (param, value, name) in [
        (
            libc::M_MMAP_THRESHOLD,
            HEAP_MMAP_THRESHOLD_BYTES,
            "M_MMAP_THRESHOLD",
        ),
        (
            libc::M_TRIM_THRESHOLD,
            HEAP_TRIM_THRESHOLD_BYTES,
            "M_TRIM_THRESHOLD",
        ),
    ] {
        // SAFETY: mallopt only changes allocator parameters; it takes the allocator's own lock.
        if unsafe { libc::mallopt(param, value) } != 1 {
            tracing::warn!(
                param = name,
                value,
                "mallopt refused: freed buffers may go back to the kernel"
            );
        }
    }
}

fn serve(config: Config) -> ExitCode {
    init_tracing(&config.log_level);
    keep_freed_buffers();
    let plan = match pinlog_tuning::plan_cores(&config) {
        Ok(plan) => plan,
        Err(err) => {
            eprintln!("pinlog: {err}");
            return ExitCode::from(2);
        }
    };
    tracing::info!(
        shard_cpus = ?plan.shard_cpus,
        raft_cpu = plan.raft_cpu,
        raft_shares_core = plan.raft_shares_core,
        reason = %plan.reason,
        "core plan"
    );
    log_io_memory(&config, plan.shard_cpus.len());
    // Every shard binds with SO_REUSEPORT, which would also let a second pinlog share the port silently and take
    // half the connections. A test bind is no use (the previous process's sockets in TIME_WAIT make it fail on
    // a free port after a restart), so ask the port itself: if something accepts a connection, it is taken.
    if port_is_served(config.listen) {
        eprintln!(
            "pinlog: invalid config: listen = {}: another process is already serving on this port",
            config.listen
        );
        return ExitCode::from(2);
    }
    match pinlog_engine::remove_interrupted_deletes(&config.data_dir) {
        Ok(0) => {}
        Ok(removed) => tracing::info!(
            removed,
            "removed partitions whose delete a crash interrupted"
        ),
        Err(err) => {
            tracing::error!(%err, "cannot sweep the data dir");
            return ExitCode::FAILURE;
        }
    }
    let shard_count = plan.shard_cpus.len();
    let raft_config = RaftShardConfig {
        node_id: config.node_id,
        dir: config.data_dir.join("raft"),
        cpu: Some(plan.raft_cpu),
        shard_count,
        tick_ms: 100,
        advertised_host: config.advertise_host.clone(),
        advertised_port: config.advertise_port,
        channel_capacity: RAFT_CHANNEL_CAPACITY,
        snapshot_every_entries: 1000,
    };
    let (raft, links) = match pinlog_raft_shard::spawn(raft_config) {
        Ok(started) => started,
        Err(err) => {
            tracing::error!(%err, "cannot start the metadata raft shard");
            return ExitCode::FAILURE;
        }
    };
    let net_config = net_config(&config);
    // Block the stop signals before any thread starts, so every thread inherits the mask and only the main thread
    // takes them (with sigwait below).
    let signals = stop_signals();
    let mut stoppers = Vec::with_capacity(shard_count);
    let mut shards = Vec::with_capacity(shard_count);
    let mut shard_metrics = Vec::with_capacity(shard_count);
    for (((shard_id, cpu), link), mesh) in plan
        .shard_cpus
        .iter()
        .enumerate()
        .zip(links)
        .zip(build_mesh(shard_count))
    {
        let (stopper, stop) = shared_channel::new_bounded(1);
        stoppers.push(stopper);
        let metrics = ShardMetrics::new();
        shard_metrics.push(metrics.clone());
        let params = ShardParams {
            shard_id: shard_id as u32,
            shard_count: shard_count as u32,
            config: net_config.clone(),
            data_dir: config.data_dir.clone(),
            metadata_link: link,
            mesh,
            stop,
            metrics,
        };
        let executor = LocalExecutorBuilder::new(Placement::Fixed(*cpu))
            .name(&format!("shard-{shard_id}"))
            // The group commit's buffers and disk reads come from this arena (huge pages: third_party/glommio/PINLOG.md).
            .io_memory(config.shard_io_memory_bytes)
            .spawn(move || run_shard(params));
        match executor {
            Ok(handle) => shards.push(handle),
            Err(err) => {
                tracing::error!(shard_id, cpu, %err, "cannot start shard executor");
                return ExitCode::FAILURE;
            }
        }
    }
    tracing::info!(node_id = config.node_id, listen = %config.listen, shards = shard_count, data_dir = %config.data_dir.display(), "pinlog started");
    if let Some(addr) = config.metrics_listen {
        if let Err(err) = pinlog_net::metrics::serve(addr, shard_metrics) {
            tracing::error!(%addr, %err, "cannot start the metrics endpoint (metrics_listen)");
            return ExitCode::FAILURE;
        }
    }
    if let Err(err) = relay_stop_signal(signals, stoppers) {
        tracing::error!(%err, "cannot wait for stop signals");
        return ExitCode::FAILURE;
    }
    let mut code = ExitCode::SUCCESS;
    for (shard_id, handle) in shards.into_iter().enumerate() {
        match handle.join() {
            Ok(Ok(())) => {}
            Ok(Err(err)) => {
                tracing::error!(%err, "shard stopped");
                eprintln!("pinlog: {err}");
                std::process::exit(1);
            }
            Err(err) => {
                tracing::error!(shard_id, ?err, "shard executor failed");
                code = ExitCode::FAILURE;
            }
        }
    }
    if let Err(err) = raft.shutdown() {
        tracing::error!(%err, "raft shard did not stop cleanly");
    }
    tracing::info!("pinlog stopped");
    code
}

/// Whether a live Kafka broker already answers on `listen` (a wildcard address is probed on loopback). A TCP
/// connect alone is not proof: just after a pinlog process dies, io_uring's deferred teardown can keep its
/// listening socket accepting for a moment with nobody behind it, and a loopback connect with no listener can
/// connect to itself. So the probe sends an ApiVersions v0 request and counts only an answer.
fn port_is_served(listen: std::net::SocketAddr) -> bool {
    use std::io::{Read, Write};
    let mut probe = listen;
    if probe.ip().is_unspecified() {
        probe.set_ip(if listen.is_ipv4() {
            std::net::Ipv4Addr::LOCALHOST.into()
        } else {
            std::net::Ipv6Addr::LOCALHOST.into()
        });
    }
    let Ok(mut stream) = std::net::TcpStream::connect_timeout(&probe, PORT_PROBE_TIMEOUT) else {
        return false;
    };
    if stream.local_addr().ok() == stream.peer_addr().ok() {
        return false;
    }
    // size 10 | api key 18 (ApiVersions) | version 0 | correlation id 0 | null client id
    const API_VERSIONS_V0: [u8; 14] = [0, 0, 0, 10, 0, 18, 0, 0, 0, 0, 0, 0, 0xff, 0xff];
    let mut answer = [0u8; 4];
    stream.set_read_timeout(Some(PORT_PROBE_TIMEOUT)).is_ok()
        && stream.write_all(&API_VERSIONS_V0).is_ok()
        && stream.read_exact(&mut answer).is_ok()
}

/// SIGTERM and SIGINT, blocked in the calling thread (and so in every thread it starts afterwards).
fn stop_signals() -> libc::sigset_t {
    // SAFETY: plain libc calls on a sigset_t we own; pthread_sigmask only changes this thread's mask.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        set
    }
}

/// Waits for a stop signal on this thread, then asks every shard to stop. The wait blocks this thread only: it runs
/// on a one-task executor of its own, which is what the shards' stop channels need on the sending side.
fn relay_stop_signal(
    signals: libc::sigset_t,
    stoppers: Vec<shared_channel::SharedSender<()>>,
) -> Result<(), glommio::GlommioError<()>> {
    LocalExecutorBuilder::new(Placement::Unbound)
        .name("signals")
        .io_memory(0)
        .make()?
        .run(async move {
            let mut connected = Vec::with_capacity(stoppers.len());
            for stopper in stoppers {
                connected.push(stopper.connect().await);
            }
            let mut signal: libc::c_int = 0;
            // SAFETY: sigwait reads the set we built and writes the signal number into our local.
            unsafe { libc::sigwait(&signals, &mut signal) };
            tracing::info!(
                signal,
                "stop signal received: flushing and closing partitions"
            );
            for stopper in &connected {
                let _ = stopper.send(()).await;
            }
        });
    Ok(())
}

fn net_config(config: &Config) -> NetConfig {
    let flush = match config.flush_policy {
        FlushPolicyName::Durable => FlushPolicy::Durable,
        FlushPolicyName::Interval => FlushPolicy::Interval {
            interval_ms: config.flush_interval_ms,
        },
        FlushPolicyName::Never => FlushPolicy::Never,
    };
    let log_defaults = LogConfig {
        segment_bytes: config.segment_bytes,
        segment_ms: config.segment_ms,
        segment_jitter_percent: config.segment_jitter_percent,
        retention_bytes: config.retention_bytes,
        retention_ms: config.retention_ms,
        flush,
        tail_cache_bytes: config.tail_cache_bytes,
        max_batch_bytes: config.message_max_bytes,
        ..LogConfig::default()
    };
    NetConfig {
        node_id: config.node_id,
        listen: config.listen,
        advertise_host: config.advertise_host.clone(),
        advertise_port: config.advertise_port,
        data_dir: config.data_dir.clone(),
        max_request_bytes: config.max_request_bytes,
        max_connections_per_shard: config.max_connections_per_shard,
        auto_create_topics: config.auto_create_topics,
        default_partitions: config.default_partitions,
        request_timeout: Duration::from_millis(config.request_timeout_ms),
        retention_check_interval: Duration::from_millis(config.retention_check_interval_ms),
        log_defaults,
        tail_cache_shard_bytes: config.tail_cache_shard_bytes,
        inflight_requests_per_connection_max: INFLIGHT_REQUESTS_PER_CONNECTION_MAX,
        inflight_request_bytes_max: config.inflight_request_bytes_max,
        offsets_topic_partitions: config.offsets_topic_partitions,
        group_min_session_timeout: Duration::from_millis(config.group_min_session_timeout_ms),
        group_max_session_timeout: Duration::from_millis(config.group_max_session_timeout_ms),
        group_initial_rebalance_delay: Duration::from_millis(
            config.group_initial_rebalance_delay_ms,
        ),
    }
}
