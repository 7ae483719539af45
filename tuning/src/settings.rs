//! One layer of configuration: every key optional.
//!
//! The same struct is the config-file schema (serde, `deny_unknown_fields`) and the flag/env schema (clap:
//! one `--kebab-key` flag per key, each also read from `PINLOG_<KEY>`), so a key cannot exist in one place
//! and be forgotten in the other. Layers are merged embedded default < file < (env < flag, which clap
//! already resolves) and then validated once into a `Config`.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::core_spec::{CoreSpec, RaftCore};
use crate::error::{one_line, ConfigError};
use crate::flush_policy::FlushPolicyName;

/// The reference config, compiled in: `pinlog` with no arguments runs exactly this.
pub const DEFAULT_CONFIG_TOML: &str = include_str!("../pinlog.default.toml");

/// Where the embedded default is said to come from in error messages.
const DEFAULT_CONFIG_NAME: &str = "<embedded pinlog.default.toml>";

/// Config keys, each optional in every layer. Doc comments are the flags' `--help` text.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, clap::Args)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Broker id of this node in the cluster [default 0].
    #[arg(long, env = "PINLOG_NODE_ID", value_name = "N")]
    pub node_id: Option<i32>,
    /// Address every shard listens on with SO_REUSEPORT [default 127.0.0.1:9092].
    #[arg(long, env = "PINLOG_LISTEN", value_name = "HOST:PORT")]
    pub listen: Option<String>,
    /// Host and port given to clients in Metadata [default: = listen].
    #[arg(long, env = "PINLOG_ADVERTISE", value_name = "HOST:PORT")]
    pub advertise: Option<String>,
    /// Directory for segments and the raft log; must support O_DIRECT [default ./data].
    #[arg(long, env = "PINLOG_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Cores running data shards: all, a count like 2, or a list like 0,1 [default all].
    #[arg(long, env = "PINLOG_SHARD_CORES", value_name = "all|N|LIST")]
    pub shard_cores: Option<CoreSpec>,
    /// Core running the metadata raft shard: auto or a core id [default auto].
    #[arg(long, env = "PINLOG_RAFT_CORE", value_name = "auto|ID")]
    pub raft_core: Option<RaftCore>,
    /// When appends are fdatasync'ed: durable, interval or never [default durable].
    #[arg(long, env = "PINLOG_FLUSH_POLICY", value_name = "POLICY")]
    pub flush_policy: Option<FlushPolicyName>,
    /// Flush period for flush_policy = interval [default 1000].
    #[arg(long, env = "PINLOG_FLUSH_INTERVAL_MS", value_name = "MS")]
    pub flush_interval_ms: Option<u64>,
    /// Largest Kafka request accepted; larger ones close the connection [default 104857600].
    #[arg(long, env = "PINLOG_MAX_REQUEST_BYTES", value_name = "BYTES")]
    pub max_request_bytes: Option<usize>,
    /// Connections one shard accepts before refusing more [default 10000].
    #[arg(long, env = "PINLOG_MAX_CONNECTIONS_PER_SHARD", value_name = "N")]
    pub max_connections_per_shard: Option<usize>,
    /// Size at which a segment is rolled [default 1073741824].
    #[arg(long, env = "PINLOG_SEGMENT_BYTES", value_name = "BYTES")]
    pub segment_bytes: Option<u64>,
    /// Age at which a segment is rolled [default 604800000].
    #[arg(long, env = "PINLOG_SEGMENT_MS", value_name = "MS")]
    pub segment_ms: Option<u64>,
    /// Share of segment_bytes, in percent (0-50), a partition rolls early, so partitions do not all roll at once
    /// [default 5].
    #[arg(long, env = "PINLOG_SEGMENT_JITTER_PERCENT", value_name = "PERCENT")]
    pub segment_jitter_percent: Option<u8>,
    /// Partition size above which old segments are deleted; -1 = unlimited [default -1].
    #[arg(
        long,
        env = "PINLOG_RETENTION_BYTES",
        value_name = "BYTES",
        allow_negative_numbers = true
    )]
    pub retention_bytes: Option<i64>,
    /// Age after which segments are deleted; -1 = forever [default 604800000].
    #[arg(
        long,
        env = "PINLOG_RETENTION_MS",
        value_name = "MS",
        allow_negative_numbers = true
    )]
    pub retention_ms: Option<i64>,
    /// How often each shard applies retention [default 300000].
    #[arg(long, env = "PINLOG_RETENTION_CHECK_INTERVAL_MS", value_name = "MS")]
    pub retention_check_interval_ms: Option<u64>,
    /// Create unknown topics on Metadata/Produce [default true].
    #[arg(long, env = "PINLOG_AUTO_CREATE_TOPICS", value_name = "BOOL")]
    pub auto_create_topics: Option<bool>,
    /// Partition count of auto-created topics [default 1].
    #[arg(long, env = "PINLOG_DEFAULT_PARTITIONS", value_name = "N")]
    pub default_partitions: Option<i32>,
    /// Partitions of the internal `__consumer_offsets` topic (fixed once the topic exists) [default 50].
    #[arg(long, env = "PINLOG_OFFSETS_TOPIC_PARTITIONS", value_name = "N")]
    pub offsets_topic_partitions: Option<i32>,
    /// Smallest session timeout a group member may ask for [default 6000].
    #[arg(long, env = "PINLOG_GROUP_MIN_SESSION_TIMEOUT_MS", value_name = "MS")]
    pub group_min_session_timeout_ms: Option<u64>,
    /// Largest session timeout a group member may ask for [default 1800000].
    #[arg(long, env = "PINLOG_GROUP_MAX_SESSION_TIMEOUT_MS", value_name = "MS")]
    pub group_max_session_timeout_ms: Option<u64>,
    /// How long the first rebalance of an empty group waits for more members [default 3000].
    #[arg(
        long,
        env = "PINLOG_GROUP_INITIAL_REBALANCE_DELAY_MS",
        value_name = "MS"
    )]
    pub group_initial_rebalance_delay_ms: Option<u64>,
    /// Largest record batch accepted [default 1048588].
    #[arg(long, env = "PINLOG_MESSAGE_MAX_BYTES", value_name = "BYTES")]
    pub message_max_bytes: Option<usize>,
    /// Recent bytes per partition kept in memory for tailing consumers [default 8388608].
    #[arg(long, env = "PINLOG_TAIL_CACHE_BYTES", value_name = "BYTES")]
    pub tail_cache_bytes: Option<usize>,
    /// Written bytes one shard's partitions keep in memory together; the ones written longest ago drop theirs
    /// first [default 268435456].
    #[arg(long, env = "PINLOG_TAIL_CACHE_SHARD_BYTES", value_name = "BYTES")]
    pub tail_cache_shard_bytes: Option<usize>,
    /// Bytes of requests one shard may have in progress before its connections wait [default 67108864].
    #[arg(long, env = "PINLOG_INFLIGHT_REQUEST_BYTES_MAX", value_name = "BYTES")]
    pub inflight_request_bytes_max: Option<usize>,
    /// Bytes of each shard's I/O buffer arena (huge pages, registered with io_uring); 0 = off [default 67108864].
    #[arg(long, env = "PINLOG_SHARD_IO_MEMORY_BYTES", value_name = "BYTES")]
    pub shard_io_memory_bytes: Option<usize>,
    /// IP:port of the Prometheus metrics endpoint (GET /metrics); empty = off [default ""].
    #[arg(long, env = "PINLOG_METRICS_LISTEN", value_name = "HOST:PORT")]
    pub metrics_listen: Option<String>,
    /// Bound on waits such as metadata proposals [default 30000].
    #[arg(long, env = "PINLOG_REQUEST_TIMEOUT_MS", value_name = "MS")]
    pub request_timeout_ms: Option<u64>,
    /// tracing filter: error, warn, info, debug, trace or directives [default info].
    #[arg(long, env = "PINLOG_LOG_LEVEL", value_name = "FILTER")]
    pub log_level: Option<String>,
}

impl Settings {
    /// The embedded default layer.
    pub(crate) fn embedded_default() -> Result<Settings, ConfigError> {
        Settings::from_toml(DEFAULT_CONFIG_TOML, Path::new(DEFAULT_CONFIG_NAME))
    }

    /// Reads one config file layer.
    pub(crate) fn from_file(path: &Path) -> Result<Settings, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|err| ConfigError::File {
            path: path.to_owned(),
            reason: one_line(format!("cannot read: {err}")),
        })?;
        Settings::from_toml(&text, path)
    }

    /// Parses a TOML layer; errors name the file, the line and the `key = value` entry.
    pub(crate) fn from_toml(text: &str, path: &Path) -> Result<Settings, ConfigError> {
        toml::from_str(text).map_err(|err| locate_toml_error(text, path, &err))
    }

    /// `over` wins wherever it sets a key.
    pub(crate) fn merge(self, over: Settings) -> Settings {
        Settings {
            node_id: over.node_id.or(self.node_id),
            listen: over.listen.or(self.listen),
            advertise: over.advertise.or(self.advertise),
            data_dir: over.data_dir.or(self.data_dir),
            shard_cores: over.shard_cores.or(self.shard_cores),
            raft_core: over.raft_core.or(self.raft_core),
            flush_policy: over.flush_policy.or(self.flush_policy),
            flush_interval_ms: over.flush_interval_ms.or(self.flush_interval_ms),
            max_request_bytes: over.max_request_bytes.or(self.max_request_bytes),
            max_connections_per_shard: over
                .max_connections_per_shard
                .or(self.max_connections_per_shard),
            segment_bytes: over.segment_bytes.or(self.segment_bytes),
            segment_ms: over.segment_ms.or(self.segment_ms),
            segment_jitter_percent: over.segment_jitter_percent.or(self.segment_jitter_percent),
            retention_bytes: over.retention_bytes.or(self.retention_bytes),
            retention_ms: over.retention_ms.or(self.retention_ms),
            retention_check_interval_ms: over
                .retention_check_interval_ms
                .or(self.retention_check_interval_ms),
            auto_create_topics: over.auto_create_topics.or(self.auto_create_topics),
            default_partitions: over.default_partitions.or(self.default_partitions),
            offsets_topic_partitions: over
                .offsets_topic_partitions
                .or(self.offsets_topic_partitions),
            group_min_session_timeout_ms: over
                .group_min_session_timeout_ms
                .or(self.group_min_session_timeout_ms),
            group_max_session_timeout_ms: over
                .group_max_session_timeout_ms
                .or(self.group_max_session_timeout_ms),
            group_initial_rebalance_delay_ms: over
                .group_initial_rebalance_delay_ms
                .or(self.group_initial_rebalance_delay_ms),
            message_max_bytes: over.message_max_bytes.or(self.message_max_bytes),
            tail_cache_bytes: over.tail_cache_bytes.or(self.tail_cache_bytes),
            tail_cache_shard_bytes: over.tail_cache_shard_bytes.or(self.tail_cache_shard_bytes),
            inflight_request_bytes_max: over
                .inflight_request_bytes_max
                .or(self.inflight_request_bytes_max),
            shard_io_memory_bytes: over.shard_io_memory_bytes.or(self.shard_io_memory_bytes),
            metrics_listen: over.metrics_listen.or(self.metrics_listen),
            request_timeout_ms: over.request_timeout_ms.or(self.request_timeout_ms),
            log_level: over.log_level.or(self.log_level),
        }
    }
}

/// Turns a multi-line toml error into one line naming the entry (`key = value`) it points at.
fn locate_toml_error(text: &str, path: &Path, err: &toml::de::Error) -> ConfigError {
    let reason = one_line(err.message().to_string());
    let Some(span) = err.span() else {
        return ConfigError::File {
            path: path.to_owned(),
            reason,
        };
    };
    let start = span.start.min(text.len());
    let line = text[..start].matches('\n').count() + 1;
    let entry = text.lines().nth(line - 1).unwrap_or("").trim();
    if entry.is_empty() {
        return ConfigError::File {
            path: path.to_owned(),
            reason: format!("line {line}: {reason}"),
        };
    }
    ConfigError::FileEntry {
        path: path.to_owned(),
        line,
        entry: entry.to_string(),
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Settings, String> {
        Settings::from_toml(text, Path::new("pinlog.toml")).map_err(|err| err.to_string())
    }

    #[test]
    fn embedded_default_sets_every_key_but_advertise() {
        let defaults = Settings::embedded_default().unwrap();
        assert_eq!(
            defaults.advertise, None,
            "advertise defaults to listen, so the file leaves it commented"
        );
        assert_eq!(defaults.listen.as_deref(), Some("127.0.0.1:9092"));
        assert_eq!(defaults.data_dir.as_deref(), Some(Path::new("./data")));
        assert_eq!(defaults.shard_cores, Some(CoreSpec::All));
        assert_eq!(defaults.raft_core, Some(RaftCore::Auto));
        assert_eq!(defaults.flush_policy, Some(FlushPolicyName::Durable));
        assert_eq!(defaults.retention_bytes, Some(-1));
    }

    #[test]
    fn unknown_key_names_the_key_and_line() {
        let err = parse("node_id = 1\nsegment_size = 10\n").unwrap_err();
        assert!(err.starts_with("invalid config: segment_size = 10 (pinlog.toml line 2): unknown field `segment_size`"), "{err}");
        assert!(!err.contains('\n'));
    }

    #[test]
    fn wrong_type_names_the_key_and_value() {
        let err = parse("node_id = \"one\"\n").unwrap_err();
        assert!(
            err.starts_with(
                "invalid config: node_id = \"one\" (pinlog.toml line 1): invalid type: string"
            ),
            "{err}"
        );
        let err = parse("segment_bytes = -5\n").unwrap_err();
        assert!(
            err.contains("segment_bytes = -5 (pinlog.toml line 1)"),
            "{err}"
        );
        let err = parse("flush_policy = \"sometimes\"\n").unwrap_err();
        assert!(err.contains("unknown variant `sometimes`"), "{err}");
    }

    #[test]
    fn syntax_error_is_one_line() {
        let err = parse("node_id = = 1\n").unwrap_err();
        assert!(
            err.starts_with("invalid config: node_id = = 1 (pinlog.toml line 1)"),
            "{err}"
        );
        assert!(!err.contains('\n'));
    }

    #[test]
    fn merge_prefers_the_upper_layer() {
        let lower = Settings {
            node_id: Some(1),
            segment_ms: Some(5),
            ..Settings::default()
        };
        let upper = Settings {
            node_id: Some(2),
            ..Settings::default()
        };
        let merged = lower.merge(upper);
        assert_eq!((merged.node_id, merged.segment_ms), (Some(2), Some(5)));
    }

    #[test]
    fn missing_file_is_one_line_error() {
        let err = Settings::from_file(Path::new("/nonexistent/pinlog.toml"))
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("invalid config: /nonexistent/pinlog.toml: cannot read:"),
            "{err}"
        );
    }
}
