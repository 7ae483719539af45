//! The validated configuration the binary runs with, and `load`, which builds it.
//!
//! `load` merges the layers (embedded default < `--config` file < env < flag), then validates everything
//! once, before any executor starts: a bad value must stop the process with one clear line, not surface
//! later as a confusing runtime failure on some shard. Host-dependent checks (core ids, data dir) run
//! here too, so `pinlog serve` fails fast on a host the config does not fit.

use std::fmt::Display;
use std::net::SocketAddr;
use std::path::PathBuf;

use crate::cli::ServeArgs;
use crate::core_plan::{host_core_ids, plan_cores_for_host};
use crate::core_spec::{CoreSpec, RaftCore};
use crate::data_dir::check_data_dir;
use crate::error::ConfigError;
use crate::flush_policy::FlushPolicyName;
use crate::settings::Settings;

/// Smallest `max_request_bytes`: below this not even a Metadata request with a few topics fits.
pub const MAX_REQUEST_BYTES_MIN: usize = 1024;
/// Smallest `segment_bytes`: smaller segments mean a file roll (and a preallocation) every few batches.
pub const SEGMENT_BYTES_MIN: u64 = 1024 * 1024;

/// Largest `segment_jitter_percent`: more would make segment sizes, and so retention by bytes, hard to predict.
pub const SEGMENT_JITTER_PERCENT_MAX: u8 = 50;

/// The arena's unit: one transparent huge page (x86-64, aarch64 with 4 KiB pages).
pub const HUGE_PAGE_BYTES: usize = 2 << 20;
/// Smallest non-zero `shard_io_memory_bytes`. A group commit writes at most 4 MiB at once (`engine::FLUSH_BYTES_MAX`)
/// and the arena's allocator keeps its bookkeeping at the arena's start, so a 4 MiB arena holds no 4 MiB buffer.
pub const SHARD_IO_MEMORY_BYTES_MIN: usize = 8 << 20;

/// Everything the binary needs to start, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub node_id: i32,
    pub listen: SocketAddr,
    pub advertise_host: String,
    pub advertise_port: u16,
    pub data_dir: PathBuf,
    pub shard_cores: CoreSpec,
    pub raft_core: RaftCore,
    pub flush_policy: FlushPolicyName,
    pub flush_interval_ms: u64,
    pub max_request_bytes: usize,
    pub max_connections_per_shard: usize,
    pub segment_bytes: u64,
    pub segment_ms: u64,
    pub segment_jitter_percent: u8,
    pub retention_bytes: i64,
    pub retention_ms: i64,
    pub retention_check_interval_ms: u64,
    pub auto_create_topics: bool,
    pub default_partitions: i32,
    pub offsets_topic_partitions: i32,
    pub group_min_session_timeout_ms: u64,
    pub group_max_session_timeout_ms: u64,
    pub group_initial_rebalance_delay_ms: u64,
    pub message_max_bytes: usize,
    pub tail_cache_bytes: usize,
    pub tail_cache_shard_bytes: usize,
    pub inflight_request_bytes_max: usize,
    /// Bytes of each shard's I/O buffer arena; 0 = buffers come from the heap.
    pub shard_io_memory_bytes: usize,
    /// Where the metrics endpoint listens; `None` = off.
    pub metrics_listen: Option<SocketAddr>,
    pub request_timeout_ms: u64,
    pub log_level: String,
}

/// Merges embedded default < `--config` file < env < flag, validates, and checks the config fits this
/// host (core ids exist, data dir is writable and supports O_DIRECT; the data dir is created if missing).
pub fn load(args: &ServeArgs) -> Result<Config, ConfigError> {
    let mut settings = Settings::embedded_default()?;
    if let Some(path) = &args.config {
        settings = settings.merge(Settings::from_file(path)?);
    }
    let mut config = Config::from_settings(settings.merge(args.settings.clone()))?;
    plan_cores_for_host(&config, &host_core_ids())?;
    check_data_dir(&config.data_dir)?;
    // Absolute from here on: paths derived from a relative dir (its parent is "") cannot be opened for the
    // directory fsyncs that make new segment files durable.
    config.data_dir = std::fs::canonicalize(&config.data_dir).map_err(|err| {
        ConfigError::invalid(
            "data_dir",
            format!("{:?}", config.data_dir.display().to_string()),
            format!("cannot resolve the path: {err}"),
        )
    })?;
    Ok(config)
}

fn required<T>(key: &'static str, value: Option<T>) -> Result<T, ConfigError> {
    value.ok_or_else(|| {
        ConfigError::invalid(
            key,
            "<unset>",
            "no value in any layer (the embedded default sets every key)",
        )
    })
}

/// `Err(invalid(key, value, reason))` unless `ok`.
fn ensure(
    ok: bool,
    key: &'static str,
    value: impl Display,
    reason: &str,
) -> Result<(), ConfigError> {
    if ok {
        Ok(())
    } else {
        Err(ConfigError::invalid(key, value, reason))
    }
}

fn quoted(text: &str) -> String {
    format!("{text:?}")
}

fn parse_listen(text: &str) -> Result<SocketAddr, ConfigError> {
    let addr: SocketAddr = text.parse().map_err(|_| {
        ConfigError::invalid(
            "listen",
            quoted(text),
            "expected IP:PORT such as 127.0.0.1:9092 or [::1]:9092",
        )
    })?;
    ensure(
        addr.port() != 0,
        "listen",
        quoted(text),
        "port 0 is not allowed: every shard binds the same fixed port",
    )?;
    Ok(addr)
}

/// Empty turns the metrics endpoint off; otherwise an IP:PORT to bind.
fn parse_metrics_listen(text: &str) -> Result<Option<SocketAddr>, ConfigError> {
    if text.is_empty() {
        return Ok(None);
    }
    text.parse().map(Some).map_err(|_| {
        ConfigError::invalid(
            "metrics_listen",
            quoted(text),
            "expected IP:PORT such as 127.0.0.1:9644, or \"\" for off",
        )
    })
}

/// `HOST:PORT` where HOST is a name or an IP (IPv6 in brackets); returns HOST without brackets.
fn parse_advertise(text: &str) -> Result<(String, u16), ConfigError> {
    let bad = |reason: &str| ConfigError::invalid("advertise", quoted(text), reason);
    let (host, port) = text
        .rsplit_once(':')
        .ok_or_else(|| bad("expected HOST:PORT such as broker1:9092"))?;
    let bracketed = host
        .strip_prefix('[')
        .and_then(|rest| rest.strip_suffix(']'));
    if bracketed.is_none() && host.contains(':') {
        return Err(bad(
            "an IPv6 host must be written in brackets, like [::1]:9092",
        ));
    }
    if let Some(ip) = bracketed {
        ip.parse::<std::net::Ipv6Addr>()
            .map_err(|_| bad("brackets must hold an IPv6 address"))?;
    }
    let host = bracketed.unwrap_or(host);
    if host.is_empty() || host.contains(|c: char| c.is_whitespace() || "[]/".contains(c)) {
        return Err(bad("expected HOST:PORT with a host name or IP address"));
    }
    let port: u16 = port
        .parse()
        .map_err(|_| bad("the port must be an integer 1-65535"))?;
    if port == 0 {
        return Err(bad("port 0 cannot be advertised"));
    }
    Ok((host.to_string(), port))
}

/// The advertise default: the listen address, unless clients cannot connect to it.
fn advertise_listen(listen: SocketAddr) -> Result<(String, u16), ConfigError> {
    ensure(
        !listen.ip().is_unspecified(),
        "listen",
        quoted(&listen.to_string()),
        "a wildcard address cannot be advertised to clients; also set advertise = \"HOST:PORT\"",
    )?;
    Ok((listen.ip().to_string(), listen.port()))
}

/// Structural checks of the core keys; whether the cores exist is checked against the host in `core_plan`.
pub(crate) fn validate_core_spec(spec: &CoreSpec) -> Result<(), ConfigError> {
    match spec {
        CoreSpec::All => Ok(()),
        CoreSpec::Count(count) => ensure(
            *count > 0,
            "shard_cores",
            spec,
            "at least one shard core is needed",
        ),
        CoreSpec::List(ids) => {
            ensure(
                !ids.is_empty(),
                "shard_cores",
                spec,
                "at least one shard core is needed",
            )?;
            let mut sorted = ids.clone();
            sorted.sort_unstable();
            match sorted.windows(2).find(|pair| pair[0] == pair[1]) {
                Some(pair) => Err(ConfigError::invalid(
                    "shard_cores",
                    spec,
                    format!("core {} is listed twice", pair[0]),
                )),
                None => Ok(()),
            }
        }
    }
}

impl Config {
    /// Validates a merged layer; pure (no host access), so every rule is unit-testable.
    pub(crate) fn from_settings(s: Settings) -> Result<Config, ConfigError> {
        let listen = parse_listen(&required("listen", s.listen)?)?;
        let (advertise_host, advertise_port) = match &s.advertise {
            Some(text) => parse_advertise(text)?,
            None => advertise_listen(listen)?,
        };
        let config = Config {
            node_id: required("node_id", s.node_id)?,
            listen,
            advertise_host,
            advertise_port,
            data_dir: required("data_dir", s.data_dir)?,
            shard_cores: required("shard_cores", s.shard_cores)?,
            raft_core: required("raft_core", s.raft_core)?,
            flush_policy: required("flush_policy", s.flush_policy)?,
            flush_interval_ms: required("flush_interval_ms", s.flush_interval_ms)?,
            max_request_bytes: required("max_request_bytes", s.max_request_bytes)?,
            max_connections_per_shard: required(
                "max_connections_per_shard",
                s.max_connections_per_shard,
            )?,
            segment_bytes: required("segment_bytes", s.segment_bytes)?,
            segment_ms: required("segment_ms", s.segment_ms)?,
            segment_jitter_percent: required("segment_jitter_percent", s.segment_jitter_percent)?,
            retention_bytes: required("retention_bytes", s.retention_bytes)?,
            retention_ms: required("retention_ms", s.retention_ms)?,
            retention_check_interval_ms: required(
                "retention_check_interval_ms",
                s.retention_check_interval_ms,
            )?,
            auto_create_topics: required("auto_create_topics", s.auto_create_topics)?,
            default_partitions: required("default_partitions", s.default_partitions)?,
            offsets_topic_partitions: required(
                "offsets_topic_partitions",
                s.offsets_topic_partitions,
            )?,
            group_min_session_timeout_ms: required(
                "group_min_session_timeout_ms",
                s.group_min_session_timeout_ms,
            )?,
            group_max_session_timeout_ms: required(
                "group_max_session_timeout_ms",
                s.group_max_session_timeout_ms,
            )?,
            group_initial_rebalance_delay_ms: required(
                "group_initial_rebalance_delay_ms",
                s.group_initial_rebalance_delay_ms,
            )?,
            message_max_bytes: required("message_max_bytes", s.message_max_bytes)?,
            tail_cache_bytes: required("tail_cache_bytes", s.tail_cache_bytes)?,
            tail_cache_shard_bytes: required("tail_cache_shard_bytes", s.tail_cache_shard_bytes)?,
            inflight_request_bytes_max: required(
                "inflight_request_bytes_max",
                s.inflight_request_bytes_max,
            )?,
            shard_io_memory_bytes: required("shard_io_memory_bytes", s.shard_io_memory_bytes)?,
            metrics_listen: parse_metrics_listen(&required("metrics_listen", s.metrics_listen)?)?,
            request_timeout_ms: required("request_timeout_ms", s.request_timeout_ms)?,
            log_level: required("log_level", s.log_level)?,
        };
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        ensure(self.node_id >= 0, "node_id", self.node_id, "must be >= 0")?;
        let data_dir = quoted(&self.data_dir.display().to_string());
        ensure(
            !self.data_dir.as_os_str().is_empty(),
            "data_dir",
            data_dir,
            "must not be empty",
        )?;
        validate_core_spec(&self.shard_cores)?;
        ensure(
            self.flush_interval_ms >= 1,
            "flush_interval_ms",
            self.flush_interval_ms,
            "must be >= 1",
        )?;
        ensure(
            self.max_request_bytes >= MAX_REQUEST_BYTES_MIN,
            "max_request_bytes",
            self.max_request_bytes,
            &format!("must be >= {MAX_REQUEST_BYTES_MIN} (1 KiB)"),
        )?;
        ensure(
            self.max_connections_per_shard >= 1,
            "max_connections_per_shard",
            self.max_connections_per_shard,
            "must be >= 1",
        )?;
        ensure(
            self.segment_bytes >= SEGMENT_BYTES_MIN,
            "segment_bytes",
            self.segment_bytes,
            &format!("must be >= {SEGMENT_BYTES_MIN} (1 MiB)"),
        )?;
        ensure(
            self.segment_ms >= 1,
            "segment_ms",
            self.segment_ms,
            "must be >= 1",
        )?;
        ensure(
            self.segment_jitter_percent <= SEGMENT_JITTER_PERCENT_MAX,
            "segment_jitter_percent",
            self.segment_jitter_percent,
            &format!("must be <= {SEGMENT_JITTER_PERCENT_MAX}"),
        )?;
        ensure(
            self.retention_bytes >= -1,
            "retention_bytes",
            self.retention_bytes,
            "must be -1 (unlimited) or >= 0",
        )?;
        ensure(
            self.retention_ms >= -1,
            "retention_ms",
            self.retention_ms,
            "must be -1 (forever) or >= 0",
        )?;
        ensure(
            self.retention_check_interval_ms >= 1,
            "retention_check_interval_ms",
            self.retention_check_interval_ms,
            "must be >= 1",
        )?;
        ensure(
            self.default_partitions >= 1,
            "default_partitions",
            self.default_partitions,
            "must be >= 1",
        )?;
        ensure(
            self.offsets_topic_partitions >= 1,
            "offsets_topic_partitions",
            self.offsets_topic_partitions,
            "must be >= 1",
        )?;
        ensure(
            self.group_min_session_timeout_ms >= 1,
            "group_min_session_timeout_ms",
            self.group_min_session_timeout_ms,
            "must be >= 1",
        )?;
        ensure(
            self.group_max_session_timeout_ms >= self.group_min_session_timeout_ms,
            "group_max_session_timeout_ms",
            self.group_max_session_timeout_ms,
            &format!(
                "must be >= group_min_session_timeout_ms ({})",
                self.group_min_session_timeout_ms
            ),
        )?;
        ensure(
            self.message_max_bytes >= 1,
            "message_max_bytes",
            self.message_max_bytes,
            "must be >= 1",
        )?;
        ensure(
            self.message_max_bytes <= self.max_request_bytes,
            "message_max_bytes",
            self.message_max_bytes,
            &format!(
                "must be <= max_request_bytes ({}): a batch must fit in a request",
                self.max_request_bytes
            ),
        )?;
        ensure(
            self.message_max_bytes as u64 <= self.segment_bytes,
            "message_max_bytes",
            self.message_max_bytes,
            &format!(
                "must be <= segment_bytes ({}): a batch must fit in a segment",
                self.segment_bytes
            ),
        )?;
        ensure(
            self.inflight_request_bytes_max >= self.message_max_bytes,
            "inflight_request_bytes_max",
            self.inflight_request_bytes_max,
            &format!(
                "must be >= message_max_bytes ({}): one largest batch must fit",
                self.message_max_bytes
            ),
        )?;
        ensure(
            self.shard_io_memory_bytes == 0
                || (self.shard_io_memory_bytes >= SHARD_IO_MEMORY_BYTES_MIN
                    && self.shard_io_memory_bytes.is_multiple_of(HUGE_PAGE_BYTES)),
            "shard_io_memory_bytes",
            self.shard_io_memory_bytes,
            &format!(
                "must be 0 (off) or a multiple of {HUGE_PAGE_BYTES} (2 MiB, one huge page) and >= \
                 {SHARD_IO_MEMORY_BYTES_MIN} (8 MiB: room for one largest group-commit buffer)"
            ),
        )?;
        ensure(
            self.request_timeout_ms >= 1,
            "request_timeout_ms",
            self.request_timeout_ms,
            "must be >= 1",
        )?;
        let level = quoted(&self.log_level);
        ensure(
            !self.log_level.trim().is_empty(),
            "log_level",
            level,
            "must not be empty; use error, warn, info, debug or trace",
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn defaults() -> Settings {
        Settings::embedded_default().unwrap()
    }

    /// The one-line error for the defaults with `change` applied on top.
    fn error_with(change: Settings) -> String {
        Config::from_settings(defaults().merge(change))
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn embedded_default_is_valid() {
        let config = Config::from_settings(defaults()).unwrap();
        assert_eq!(config.listen, "127.0.0.1:9092".parse().unwrap());
        assert_eq!(
            (config.advertise_host.as_str(), config.advertise_port),
            ("127.0.0.1", 9092)
        );
        assert_eq!(config.data_dir, PathBuf::from("./data"));
        assert_eq!(config.node_id, 0);
        assert_eq!(config.max_request_bytes, 104_857_600);
        assert_eq!(config.segment_bytes, 1_073_741_824);
        assert_eq!(config.message_max_bytes, 1_048_588);
        assert_eq!(config.request_timeout_ms, 30_000);
        assert_eq!(config.shard_io_memory_bytes, 64 << 20);
        assert!(config.auto_create_topics);
    }

    #[test]
    fn advertise_parses_names_and_ipv6() {
        let config = Config::from_settings(defaults().merge(Settings {
            advertise: Some("broker-1.example:19092".into()),
            ..Settings::default()
        }))
        .unwrap();
        assert_eq!(
            (config.advertise_host.as_str(), config.advertise_port),
            ("broker-1.example", 19092)
        );
        assert_eq!(
            parse_advertise("[::1]:9092").unwrap(),
            ("::1".to_string(), 9092)
        );
    }

    #[test]
    fn each_validation_error_is_one_clear_line() {
        let cases: Vec<(Settings, &str)> = vec![
            (Settings { node_id: Some(-1), ..Default::default() }, "invalid config: node_id = -1: must be >= 0"),
            (
                Settings { listen: Some("localhost".into()), ..Default::default() },
                "invalid config: listen = \"localhost\": expected IP:PORT",
            ),
            (
                Settings { listen: Some("127.0.0.1:0".into()), ..Default::default() },
                "invalid config: listen = \"127.0.0.1:0\": port 0 is not allowed",
            ),
            (
                Settings { listen: Some("0.0.0.0:9092".into()), ..Default::default() },
                "invalid config: listen = \"0.0.0.0:9092\": a wildcard address cannot be advertised",
            ),
            (
                Settings { advertise: Some("broker1".into()), ..Default::default() },
                "invalid config: advertise = \"broker1\": expected HOST:PORT",
            ),
            (
                Settings { advertise: Some("broker1:http".into()), ..Default::default() },
                "invalid config: advertise = \"broker1:http\": the port must be an integer",
            ),
            (
                Settings { advertise: Some(":9092".into()), ..Default::default() },
                "invalid config: advertise = \":9092\": expected HOST:PORT with a host",
            ),
            (
                Settings { advertise: Some("::1:9092".into()), ..Default::default() },
                "invalid config: advertise = \"::1:9092\": an IPv6 host must be written in brackets",
            ),
            (
                Settings { shard_cores: Some(CoreSpec::Count(0)), ..Default::default() },
                "invalid config: shard_cores = 0: at least one shard core is needed",
            ),
            (
                Settings { shard_cores: Some(CoreSpec::List(vec![])), ..Default::default() },
                "invalid config: shard_cores = []: at least one shard core is needed",
            ),
            (
                Settings { shard_cores: Some(CoreSpec::List(vec![0, 1, 0])), ..Default::default() },
                "invalid config: shard_cores = [0, 1, 0]: core 0 is listed twice",
            ),
            (
                Settings { default_partitions: Some(0), ..Default::default() },
                "invalid config: default_partitions = 0: must be >= 1",
            ),
            (
                Settings { max_request_bytes: Some(1023), ..Default::default() },
                "invalid config: max_request_bytes = 1023: must be >= 1024 (1 KiB)",
            ),
            (
                Settings { segment_bytes: Some(4096), ..Default::default() },
                "invalid config: segment_bytes = 4096: must be >= 1048576 (1 MiB)",
            ),
            (
                Settings { message_max_bytes: Some(200_000_000), ..Default::default() },
                "invalid config: message_max_bytes = 200000000: must be <= max_request_bytes (104857600)",
            ),
            (
                Settings { segment_bytes: Some(1 << 20), ..Default::default() },
                "invalid config: message_max_bytes = 1048588: must be <= segment_bytes (1048576)",
            ),
            (
                Settings { shard_io_memory_bytes: Some(4 << 20), ..Default::default() },
                "invalid config: shard_io_memory_bytes = 4194304: must be 0 (off) or a multiple of 2097152 (2 MiB, one \
                 huge page) and >= 8388608 (8 MiB: room for one largest group-commit buffer)",
            ),
            (
                Settings { shard_io_memory_bytes: Some((8 << 20) + 4096), ..Default::default() },
                "invalid config: shard_io_memory_bytes = 8392704: must be 0 (off) or a multiple of 2097152 (2 MiB, one \
                 huge page) and >= 8388608 (8 MiB: room for one largest group-commit buffer)",
            ),
            (
                Settings { flush_interval_ms: Some(0), ..Default::default() },
                "invalid config: flush_interval_ms = 0: must be >= 1",
            ),
            (
                Settings { retention_bytes: Some(-2), ..Default::default() },
                "invalid config: retention_bytes = -2: must be -1 (unlimited) or >= 0",
            ),
            (
                Settings { retention_ms: Some(-7), ..Default::default() },
                "invalid config: retention_ms = -7: must be -1 (forever) or >= 0",
            ),
            (
                Settings { retention_check_interval_ms: Some(0), ..Default::default() },
                "invalid config: retention_check_interval_ms = 0: must be >= 1",
            ),
            (
                Settings { offsets_topic_partitions: Some(0), ..Default::default() },
                "invalid config: offsets_topic_partitions = 0: must be >= 1",
            ),
            (
                Settings { group_min_session_timeout_ms: Some(0), ..Default::default() },
                "invalid config: group_min_session_timeout_ms = 0: must be >= 1",
            ),
            (
                Settings { group_max_session_timeout_ms: Some(5999), ..Default::default() },
                "invalid config: group_max_session_timeout_ms = 5999: must be >= group_min_session_timeout_ms (6000)",
            ),
            (
                Settings { max_connections_per_shard: Some(0), ..Default::default() },
                "invalid config: max_connections_per_shard = 0: must be >= 1",
            ),
            (
                Settings { request_timeout_ms: Some(0), ..Default::default() },
                "invalid config: request_timeout_ms = 0: must be >= 1",
            ),
            (Settings { segment_ms: Some(0), ..Default::default() }, "invalid config: segment_ms = 0: must be >= 1"),
            (
                Settings { segment_jitter_percent: Some(51), ..Default::default() },
                "invalid config: segment_jitter_percent = 51: must be <= 50",
            ),
            (
                Settings { log_level: Some(" ".into()), ..Default::default() },
                "invalid config: log_level = \" \": must not be empty",
            ),
            (
                Settings { data_dir: Some(PathBuf::new()), ..Default::default() },
                "invalid config: data_dir = \"\": must not be empty",
            ),
        ];
        for (change, expected) in cases {
            let err = error_with(change);
            assert!(
                err.starts_with(expected),
                "expected `{expected}`, got `{err}`"
            );
            assert!(!err.contains('\n'), "{err}");
        }
    }
}
