//! The state one shard's request handlers share: configuration, the partition table, the metadata view and the
//! mesh to the other shards. One `ShardContext` per executor, shared as `Rc`.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use pinlog_engine::{LogConfig, ShardStorage};
use pinlog_raft_shard::{MetadataClient, MetadataSnapshot};

use crate::mesh::Mesh;
use crate::metrics::ShardMetrics;

/// Broker-wide settings the protocol layer enforces. Built once by the binary from the validated config.
#[derive(Clone, Debug)]
pub struct NetConfig {
    pub node_id: i32,
    pub listen: SocketAddr,
    pub advertise_host: String,
    pub advertise_port: u16,
    /// Where the partitions live (absolute); reported by DescribeConfigs (`log.dirs`) and DescribeLogDirs.
    pub data_dir: std::path::PathBuf,
    /// A frame whose length prefix exceeds this is refused and its connection closed.
    pub max_request_bytes: usize,
    pub max_connections_per_shard: usize,
    pub auto_create_topics: bool,
    pub default_partitions: i32,
    /// Bound for metadata proposals (CreateTopics, DeleteTopics, auto-creation).
    pub request_timeout: Duration,
    /// How often each shard applies retention to the partitions it owns.
    pub retention_check_interval: Duration,
    /// Defaults for every partition; topic configs override them (see [`ShardContext::log_config`]).
    pub log_defaults: LogConfig,
    /// Written bytes all of a shard's partition tails keep together (each also keeps at most its
    /// `log_defaults.tail_cache_bytes`); the partitions written longest ago shed first.
    pub tail_cache_shard_bytes: usize,
    /// Requests a connection may have started but not yet answered (pipelining depth).
    pub inflight_requests_per_connection_max: usize,
    /// Bytes of requests a shard may have started but not yet answered, over all its connections. The engine
    /// keeps appended data in memory until it is written, so this is what bounds that memory under a slow disk.
    pub inflight_request_bytes_max: usize,
    /// Partitions of `__consumer_offsets` (fixed once the topic exists: it decides where each group lives).
    pub offsets_topic_partitions: i32,
    /// Bounds on the session timeout a group member may ask for.
    pub group_min_session_timeout: Duration,
    pub group_max_session_timeout: Duration,
    /// How long the first rebalance of an empty group waits for more members.
    pub group_initial_rebalance_delay: Duration,
}

pub struct ShardContext {
    pub shard_id: u32,
    pub shard_count: u32,
    pub config: Rc<NetConfig>,
    pub storage: ShardStorage,
    pub metadata: Rc<MetadataClient>,
    pub mesh: Mesh,
    pub connections: Cell<usize>,
    /// Set when the shard starts to stop: background work finishes at once instead of pacing itself.
    pub stopping: Cell<bool>,
    pub metrics: Arc<ShardMetrics>,
    /// Permits for `inflight_request_bytes_max`, taken by a connection's reader before it starts a request.
    pub request_bytes_budget: Rc<glommio::sync::Semaphore>,
    /// Producer ids this shard may hand out without asking the metadata group.
    pub producer_ids: crate::api::producer_ids::ProducerIdBlock,
    /// The consumer groups of the `__consumer_offsets` partitions this shard owns.
    pub groups: Rc<crate::group::Coordinator>,
    /// Incremental fetch sessions of this shard's connections (never borrowed across an await).
    pub fetch_sessions: RefCell<crate::fetch_session::FetchSessions>,
}

impl ShardContext {
    pub fn snapshot(&self) -> Arc<MetadataSnapshot> {
        self.metadata.current()
    }

    /// The log settings of one topic: broker defaults overridden by the topic's own configs.
    /// A topic's partition settings now: static defaults, dynamic broker configs, then the topic's configs.
    pub fn log_config(
        &self,
        snapshot: &MetadataSnapshot,
        topic_configs: &BTreeMap<String, String>,
    ) -> LogConfig {
        crate::config_keys::layered_log_config(
            &self.config.log_defaults,
            &snapshot.broker_configs,
            topic_configs,
        )
    }
}
