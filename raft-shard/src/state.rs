//! The metadata every shard reads, and the commands that change it.
//!
//! A [`MetadataSnapshot`] is immutable: the raft shard builds a new one after each batch of applied entries and
//! hands every shard an `Arc` of it, so readers never lock and never see a half-applied change. The types derive
//! rkyv because the same values are written into raft log entries ([`MetadataCommand`]) and into the state machine
//! snapshot file (see `FORMAT.md`).

use std::collections::BTreeMap;

use rkyv::{Archive, Deserialize, Serialize};

/// The state of the metadata state machine at one applied raft index, as published to every shard.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MetadataSnapshot {
    /// The raft index of the last applied entry; strictly increases with every applied entry.
    pub version: u64,
    /// Generated once (uuid v4) at the first boot of the group and kept in the state machine.
    pub cluster_id: String,
    /// Node id of the raft leader (the controller), -1 while there is none.
    pub controller_id: i32,
    /// Registered brokers, ordered by node id.
    pub brokers: Vec<BrokerMeta>,
    pub topics: BTreeMap<String, TopicMeta>,
    /// Dynamic broker configs (set with AlterConfigs on the broker resource); they override the static config.
    pub broker_configs: BTreeMap<String, String>,
}

impl MetadataSnapshot {
    pub fn topic(&self, name: &str) -> Option<&TopicMeta> {
        self.topics.get(name)
    }

    /// Linear in the number of topics: topic-id lookups are rare (DeleteTopics by id, Fetch v13+ resolves once per
    /// request), so a second index that every apply must keep in step is not worth it.
    pub fn topic_by_id(&self, id: [u8; 16]) -> Option<&TopicMeta> {
        self.topics.values().find(|t| t.topic_id == id)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Archive, Serialize, Deserialize)]
pub struct BrokerMeta {
    pub node_id: i32,
    pub host: String,
    pub port: u16,
    pub shard_count: u32,
}

#[derive(Clone, Debug, PartialEq, Eq, Archive, Serialize, Deserialize)]
pub struct TopicMeta {
    pub name: String,
    pub topic_id: [u8; 16],
    /// Indexed by partition number: `partitions[p].partition == p`.
    pub partitions: Vec<PartitionMeta>,
    pub configs: BTreeMap<String, String>,
    /// Names starting with `__` (`__consumer_offsets`, `__transaction_state`).
    pub internal: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Archive, Serialize, Deserialize)]
pub struct PartitionMeta {
    pub partition: i32,
    pub leader: i32,
    pub leader_epoch: i32,
    pub replicas: Vec<i32>,
    /// Which core (shard) of the leader owns the partition.
    pub shard: u32,
}

/// A change to the metadata; each command is exactly one raft entry, whatever it touches.
#[derive(Clone, Debug, PartialEq, Eq, Archive, Serialize, Deserialize)]
pub enum MetadataCommand {
    RegisterBroker {
        node_id: i32,
        host: String,
        port: u16,
        shard_count: u32,
    },
    /// One raft entry for the whole request, never one per topic or partition.
    CreateTopics {
        topics: Vec<NewTopic>,
        validate_only: bool,
    },
    DeleteTopics {
        names: Vec<String>,
    },
    /// Hands out the next `count` producer ids as one block (idempotent producers), so InitProducerId costs one
    /// raft entry per block, not one per producer.
    AllocateProducerIds {
        count: u32,
    },
    /// Grows topics to `count` partitions each; new partitions are placed like those of a new topic.
    CreatePartitions {
        topics: Vec<PartitionGrowth>,
        validate_only: bool,
    },
    /// Changes topic or dynamic broker configs. Values were validated by the proposer; APPEND / SUBTRACT were
    /// resolved by it into a set of the resulting list.
    AlterConfigs {
        changes: Vec<ConfigChange>,
        validate_only: bool,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, Archive, Serialize, Deserialize)]
pub struct PartitionGrowth {
    pub name: String,
    /// The new total partition count.
    pub count: i32,
}

#[derive(Clone, Debug, PartialEq, Eq, Archive, Serialize, Deserialize)]
pub enum ConfigResource {
    Topic(String),
    /// The dynamic broker configs of this one-node cluster (Kafka's per-broker and cluster-default resources).
    Broker,
}

#[derive(Clone, Debug, PartialEq, Eq, Archive, Serialize, Deserialize)]
pub struct ConfigChange {
    pub resource: ConfigResource,
    /// AlterConfigs (not incremental): the ops are the whole new config set, everything else reverts to default.
    pub replace_all: bool,
    pub ops: Vec<ConfigOp>,
}

#[derive(Clone, Debug, PartialEq, Eq, Archive, Serialize, Deserialize)]
pub struct ConfigOp {
    pub key: String,
    /// `Some` sets the key, `None` removes it (back to the default).
    pub value: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Archive, Serialize, Deserialize)]
pub struct NewTopic {
    pub name: String,
    pub partitions: i32,
    pub replication_factor: i16,
    pub configs: BTreeMap<String, String>,
}

/// Per-topic (or per config resource) result of CreateTopics / DeleteTopics / CreatePartitions / AlterConfigs, with a Kafka error code (0 = none).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopicOutcome {
    pub name: String,
    pub error_code: i16,
    pub message: Option<String>,
    /// The new topic's id on a successful create, the removed topic's id on a delete, zero otherwise.
    pub topic_id: [u8; 16],
    /// Partition count on success (0 for a config change), -1 on error.
    pub partitions: i32,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CommandOutcome {
    Done,
    Topics(Vec<TopicOutcome>),
    /// Producer ids `first .. first + count` now belong to the proposer.
    ProducerIds {
        first: i64,
        count: u32,
    },
}
