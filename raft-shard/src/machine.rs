//! The metadata state machine: applies committed commands deterministically.
//!
//! Every replica applies the same entries in the same order and must reach the same state, so nothing here reads a
//! clock, a random number generator or the local node's identity. The one piece of entropy a command needs, the id
//! of a new topic, is drawn by the proposer and carried inside the log entry ([`LoggedCommand::topic_ids`]), so a
//! replay after restart gives every topic the id it had before.

use std::collections::BTreeMap;

use crate::entry::LoggedCommand;
use crate::state::{
    BrokerMeta, CommandOutcome, ConfigChange, ConfigResource, MetadataCommand, MetadataSnapshot,
    NewTopic, PartitionGrowth, PartitionMeta, TopicMeta, TopicOutcome,
};
use crate::topic_rules::{self, codes, TopicCheck};

/// The metadata state machine at `applied_index`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Machine {
    pub applied_index: u64,
    pub cluster_id: String,
    /// Keyed by node id so the lowest id (the default partition leader) is first.
    pub brokers: BTreeMap<i32, BrokerMeta>,
    pub topics: BTreeMap<String, TopicMeta>,
    /// The first producer id not yet handed out.
    pub next_producer_id: i64,
    /// Dynamic broker configs.
    pub broker_configs: BTreeMap<String, String>,
}

/// Largest block one AllocateProducerIds may take.
pub const PRODUCER_ID_BLOCK_MAX: u32 = 1_000_000;

impl Machine {
    pub fn new(cluster_id: String) -> Machine {
        Machine {
            applied_index: 0,
            cluster_id,
            brokers: BTreeMap::new(),
            topics: BTreeMap::new(),
            next_producer_id: 0,
            broker_configs: BTreeMap::new(),
        }
    }

    /// The immutable view published to the shards.
    pub fn snapshot(&self, controller_id: i32) -> MetadataSnapshot {
        MetadataSnapshot {
            version: self.applied_index,
            cluster_id: self.cluster_id.clone(),
            controller_id,
            brokers: self.brokers.values().cloned().collect(),
            topics: self.topics.clone(),
            broker_configs: self.broker_configs.clone(),
        }
    }

    /// Marks `index` applied without a command (the empty entry a new leader appends, or an undecodable entry).
    pub fn skip(&mut self, index: u64) {
        self.advance_to(index);
    }

    pub fn apply(&mut self, index: u64, logged: &LoggedCommand) -> CommandOutcome {
        self.advance_to(index);
        match &logged.command {
            MetadataCommand::RegisterBroker {
                node_id,
                host,
                port,
                shard_count,
            } => {
                let broker = BrokerMeta {
                    node_id: *node_id,
                    host: host.clone(),
                    port: *port,
                    shard_count: *shard_count,
                };
                self.brokers.insert(*node_id, broker);
                CommandOutcome::Done
            }
            MetadataCommand::CreateTopics {
                topics,
                validate_only,
            } => CommandOutcome::Topics(self.create_topics(
                topics,
                *validate_only,
                &logged.topic_ids,
            )),
            MetadataCommand::DeleteTopics { names } => {
                CommandOutcome::Topics(names.iter().map(|name| self.delete_topic(name)).collect())
            }
            MetadataCommand::AllocateProducerIds { count } => {
                let count = (*count).clamp(1, PRODUCER_ID_BLOCK_MAX);
                let first = self.next_producer_id;
                self.next_producer_id += i64::from(count);
                CommandOutcome::ProducerIds { first, count }
            }
            MetadataCommand::CreatePartitions {
                topics,
                validate_only,
            } => CommandOutcome::Topics(
                topics
                    .iter()
                    .enumerate()
                    .map(|(i, growth)| {
                        if topics[..i].iter().any(|t| t.name == growth.name) {
                            return failed(
                                &growth.name,
                                codes::INVALID_REQUEST,
                                format!("topic '{}' appears twice in the request", growth.name),
                            );
                        }
                        self.grow_topic(growth, *validate_only)
                    })
                    .collect(),
            ),
            MetadataCommand::AlterConfigs {
                changes,
                validate_only,
            } => CommandOutcome::Topics(
                changes
                    .iter()
                    .map(|change| self.alter_configs(change, *validate_only))
                    .collect(),
            ),
        }
    }

    fn advance_to(&mut self, index: u64) {
        assert!(
            index > self.applied_index,
            "entry {index} applied after {}",
            self.applied_index
        );
        self.applied_index = index;
    }

    fn create_topics(
        &mut self,
        topics: &[NewTopic],
        validate_only: bool,
        ids: &[[u8; 16]],
    ) -> Vec<TopicOutcome> {
        if !validate_only && ids.len() != topics.len() {
            // Only a proposer bug can get here; every replica answers the same, so the state stays in step.
            let message = format!("{} topic ids for {} topics", ids.len(), topics.len());
            return topics
                .iter()
                .map(|t| failed(&t.name, codes::UNKNOWN_SERVER_ERROR, message.clone()))
                .collect();
        }
        let leader = self.brokers.values().next().cloned();
        let mut outcomes = Vec::with_capacity(topics.len());
        for (i, topic) in topics.iter().enumerate() {
            let check = if topics[..i].iter().any(|t| t.name == topic.name) {
                TopicCheck::Invalid {
                    error_code: codes::INVALID_REQUEST,
                    message: format!("topic '{}' appears twice in the request", topic.name),
                }
            } else {
                topic_rules::check(
                    topic,
                    leader.as_ref(),
                    self.topics.contains_key(&topic.name),
                )
            };
            let outcome = match (check, &leader) {
                (
                    TopicCheck::Invalid {
                        error_code,
                        message,
                    },
                    _,
                ) => failed(&topic.name, error_code, message),
                (TopicCheck::Valid, Some(leader)) if !validate_only => {
                    self.insert_topic(topic, ids[i], leader)
                }
                (TopicCheck::Valid, _) => TopicOutcome {
                    name: topic.name.clone(),
                    error_code: codes::NONE,
                    message: None,
                    topic_id: [0; 16],
                    partitions: topic.partitions,
                },
            };
            outcomes.push(outcome);
        }
        outcomes
    }

    fn insert_topic(
        &mut self,
        topic: &NewTopic,
        topic_id: [u8; 16],
        leader: &BrokerMeta,
    ) -> TopicOutcome {
        let partitions = (0..topic.partitions)
            .map(|p| place_partition(&topic.name, p, leader))
            .collect();
        let meta = TopicMeta {
            name: topic.name.clone(),
            topic_id,
            partitions,
            configs: topic.configs.clone(),
            internal: topic.name.starts_with("__"),
        };
        self.topics.insert(topic.name.clone(), meta);
        TopicOutcome {
            name: topic.name.clone(),
            error_code: codes::NONE,
            message: None,
            topic_id,
            partitions: topic.partitions,
        }
    }

    fn grow_topic(&mut self, growth: &PartitionGrowth, validate_only: bool) -> TopicOutcome {
        let name = &growth.name;
        let Some(leader) = self.brokers.values().next().cloned() else {
            return failed(
                name,
                codes::INVALID_REPLICATION_FACTOR,
                "no broker is registered yet".to_owned(),
            );
        };
        let Some(topic) = self.topics.get_mut(name) else {
            return failed(
                name,
                codes::UNKNOWN_TOPIC_OR_PARTITION,
                format!("topic '{name}' does not exist"),
            );
        };
        if topic.internal {
            // Group coordinators hash group ids over the partition count of __consumer_offsets.
            return failed(
                name,
                codes::INVALID_REQUEST,
                format!("the partition count of internal topic '{name}' cannot change"),
            );
        }
        let current = topic.partitions.len() as i32;
        if growth.count <= current {
            return failed(
                name,
                codes::INVALID_PARTITIONS,
                format!(
                    "topic currently has {current} partitions, which is higher than or equal to the requested {}",
                    growth.count
                ),
            );
        }
        if growth.count > topic_rules::TOPIC_PARTITIONS_MAX {
            return failed(
                name,
                codes::INVALID_PARTITIONS,
                format!(
                    "partitions must be at most {}, got {}",
                    topic_rules::TOPIC_PARTITIONS_MAX,
                    growth.count
                ),
            );
        }
        if !validate_only {
            topic
                .partitions
                .extend((current..growth.count).map(|p| place_partition(name, p, &leader)));
        }
        succeeded(name, growth.count)
    }

    fn alter_configs(&mut self, change: &ConfigChange, validate_only: bool) -> TopicOutcome {
        let (name, configs) = match &change.resource {
            ConfigResource::Broker => ("", &mut self.broker_configs),
            ConfigResource::Topic(name) => match self.topics.get_mut(name) {
                Some(topic) => (name.as_str(), &mut topic.configs),
                None => {
                    return failed(
                        name,
                        codes::UNKNOWN_TOPIC_OR_PARTITION,
                        format!("topic '{name}' does not exist"),
                    )
                }
            },
        };
        if let Some(key) = change
            .ops
            .iter()
            .enumerate()
            .find(|(i, op)| change.ops[..*i].iter().any(|o| o.key == op.key))
            .map(|(_, op)| &op.key)
        {
            return failed(
                name,
                codes::INVALID_REQUEST,
                format!("config '{key}' appears twice in the request"),
            );
        }
        if !validate_only {
            if change.replace_all {
                configs.clear();
            }
            for op in &change.ops {
                match &op.value {
                    Some(value) => configs.insert(op.key.clone(), value.clone()),
                    None => configs.remove(&op.key),
                };
            }
        }
        succeeded(name, 0)
    }

    fn delete_topic(&mut self, name: &str) -> TopicOutcome {
        match self.topics.remove(name) {
            Some(topic) => TopicOutcome {
                name: name.to_owned(),
                error_code: codes::NONE,
                message: None,
                topic_id: topic.topic_id,
                partitions: topic.partitions.len() as i32,
            },
            None => failed(
                name,
                codes::UNKNOWN_TOPIC_OR_PARTITION,
                format!("topic '{name}' does not exist"),
            ),
        }
    }
}

/// Where partition `p` of a topic lives: on the leader, on shard `(crc32c(name) + p) % shard_count`, so a topic's
/// partitions spread over the shards and a topic's partition 0 is not always on shard 0.
fn place_partition(topic: &str, p: i32, leader: &BrokerMeta) -> PartitionMeta {
    let shard_count = leader.shard_count.max(1);
    let first_shard = crc32c::crc32c(topic.as_bytes()) % shard_count;
    PartitionMeta {
        partition: p,
        leader: leader.node_id,
        leader_epoch: 0,
        replicas: vec![leader.node_id],
        shard: (first_shard + p as u32) % shard_count,
    }
}

fn succeeded(name: &str, partitions: i32) -> TopicOutcome {
    TopicOutcome {
        name: name.to_owned(),
        error_code: codes::NONE,
        message: None,
        topic_id: [0; 16],
        partitions,
    }
}

fn failed(name: &str, error_code: i16, message: String) -> TopicOutcome {
    TopicOutcome {
        name: name.to_owned(),
        error_code,
        message: Some(message),
        topic_id: [0; 16],
        partitions: -1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{ConfigOp, PartitionGrowth};

    fn machine_with_broker(shard_count: u32) -> Machine {
        let mut m = Machine::new("cluster".into());
        let register = MetadataCommand::RegisterBroker {
            node_id: 7,
            host: "h".into(),
            port: 9092,
            shard_count,
        };
        assert_eq!(
            m.apply(
                1,
                &LoggedCommand {
                    command: register,
                    topic_ids: vec![]
                }
            ),
            CommandOutcome::Done
        );
        m
    }

    fn new_topic(name: &str, partitions: i32, replication_factor: i16) -> NewTopic {
        NewTopic {
            name: name.into(),
            partitions,
            replication_factor,
            configs: BTreeMap::new(),
        }
    }

    fn create(
        m: &mut Machine,
        index: u64,
        topics: Vec<NewTopic>,
        validate_only: bool,
    ) -> Vec<TopicOutcome> {
        let topic_ids = (0..topics.len())
            .map(|i| [index as u8 + i as u8 + 1; 16])
            .collect();
        let logged = LoggedCommand {
            command: MetadataCommand::CreateTopics {
                topics,
                validate_only,
            },
            topic_ids,
        };
        match m.apply(index, &logged) {
            CommandOutcome::Topics(outcomes) => outcomes,
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn create_places_partitions_round_robin_from_the_name_hash() {
        let mut m = machine_with_broker(4);
        let outcomes = create(&mut m, 2, vec![new_topic("orders", 6, -1)], false);
        assert_eq!(outcomes[0].error_code, codes::NONE);
        assert_eq!(outcomes[0].partitions, 6);
        assert_eq!(outcomes[0].topic_id, [3; 16]);
        let topic = m.topics.get("orders").expect("created");
        let first = crc32c::crc32c(b"orders") % 4;
        for (p, meta) in topic.partitions.iter().enumerate() {
            assert_eq!(meta.partition, p as i32);
            assert_eq!(meta.shard, (first + p as u32) % 4);
            assert_eq!(
                (meta.leader, meta.leader_epoch, meta.replicas.clone()),
                (7, 0, vec![7])
            );
        }
        assert!(!topic.internal);
        assert_eq!(m.applied_index, 2);
    }

    #[test]
    fn create_reports_each_kafka_error_code() {
        let mut m = machine_with_broker(2);
        create(&mut m, 2, vec![new_topic("exists", 1, 1)], false);
        let long = "x".repeat(250);
        let outcomes = create(
            &mut m,
            3,
            vec![
                new_topic("", 1, 1),
                new_topic("..", 1, 1),
                new_topic(&long, 1, 1),
                new_topic("bad/name", 1, 1),
                new_topic("zero", 0, 1),
                new_topic("huge", 100_001, 1),
                new_topic("rf", 1, 3),
                new_topic("exists", 1, 1),
                new_topic("fine", 2, 1),
                new_topic("fine", 2, 1),
            ],
            false,
        );
        let codes: Vec<i16> = outcomes.iter().map(|o| o.error_code).collect();
        assert_eq!(codes, vec![17, 17, 17, 17, 37, 37, 38, 36, 0, 42]);
        assert!(outcomes
            .iter()
            .filter(|o| o.error_code != 0)
            .all(|o| o.partitions == -1 && o.message.is_some()));
        assert_eq!(m.topics.keys().collect::<Vec<_>>(), vec!["exists", "fine"]);
    }

    #[test]
    fn validate_only_checks_without_changing_anything() {
        let mut m = machine_with_broker(1);
        let before = m.topics.clone();
        let outcomes = create(
            &mut m,
            2,
            vec![new_topic("t", 3, 1), new_topic("", 1, 1)],
            true,
        );
        assert_eq!((outcomes[0].error_code, outcomes[0].partitions), (0, 3));
        assert_eq!(outcomes[1].error_code, codes::INVALID_TOPIC_EXCEPTION);
        assert_eq!(m.topics, before);
        assert_eq!(m.applied_index, 2);
    }

    #[test]
    fn create_without_a_registered_broker_is_a_replication_factor_error() {
        let mut m = Machine::new("c".into());
        let outcomes = create(&mut m, 1, vec![new_topic("t", 1, -1)], false);
        assert_eq!(outcomes[0].error_code, codes::INVALID_REPLICATION_FACTOR);
        assert!(m.topics.is_empty());
    }

    #[test]
    fn internal_topics_are_flagged_and_delete_reports_unknown_names() {
        let mut m = machine_with_broker(1);
        create(
            &mut m,
            2,
            vec![new_topic("__consumer_offsets", 2, 1)],
            false,
        );
        assert!(m.topics["__consumer_offsets"].internal);
        let delete = MetadataCommand::DeleteTopics {
            names: vec!["__consumer_offsets".into(), "nope".into()],
        };
        let CommandOutcome::Topics(outcomes) = m.apply(
            3,
            &LoggedCommand {
                command: delete,
                topic_ids: vec![],
            },
        ) else {
            panic!("delete returns topic outcomes");
        };
        assert_eq!(
            (
                outcomes[0].error_code,
                outcomes[0].topic_id,
                outcomes[0].partitions
            ),
            (0, [3; 16], 2)
        );
        assert_eq!(outcomes[1].error_code, codes::UNKNOWN_TOPIC_OR_PARTITION);
        assert!(m.topics.is_empty());
    }

    #[test]
    fn a_command_missing_topic_ids_fails_every_topic_the_same_way() {
        let mut m = machine_with_broker(1);
        let command = MetadataCommand::CreateTopics {
            topics: vec![new_topic("t", 1, 1)],
            validate_only: false,
        };
        let outcome = m.apply(
            2,
            &LoggedCommand {
                command,
                topic_ids: vec![],
            },
        );
        let CommandOutcome::Topics(outcomes) = outcome else {
            panic!("topic outcomes")
        };
        assert_eq!(outcomes[0].error_code, codes::UNKNOWN_SERVER_ERROR);
        assert!(m.topics.is_empty());
    }

    #[test]
    fn snapshot_lists_brokers_by_node_id_and_carries_the_version() {
        let mut m = machine_with_broker(1);
        let register = MetadataCommand::RegisterBroker {
            node_id: 3,
            host: "a".into(),
            port: 1,
            shard_count: 1,
        };
        m.apply(
            2,
            &LoggedCommand {
                command: register,
                topic_ids: vec![],
            },
        );
        let snap = m.snapshot(7);
        assert_eq!(
            snap.brokers.iter().map(|b| b.node_id).collect::<Vec<_>>(),
            vec![3, 7]
        );
        assert_eq!(
            (snap.version, snap.controller_id, snap.cluster_id.as_str()),
            (2, 7, "cluster")
        );
    }

    #[test]
    fn producer_id_blocks_are_contiguous_and_survive_a_snapshot() {
        let mut machine = machine_with_broker(1);
        let allocate = |count| LoggedCommand::new(MetadataCommand::AllocateProducerIds { count });
        let first = machine.apply(10, &allocate(1000));
        let second = machine.apply(11, &allocate(0));
        assert_eq!(
            first,
            CommandOutcome::ProducerIds {
                first: 0,
                count: 1000
            }
        );
        assert_eq!(
            second,
            CommandOutcome::ProducerIds {
                first: 1000,
                count: 1
            },
            "an empty block is one id"
        );
        let restored = crate::snapshot_file::StoredSnapshot::of(&machine, 1, vec![1]).machine();
        assert_eq!(restored.next_producer_id, 1001);
        assert_eq!(restored, machine);
    }

    fn topics_outcome(m: &mut Machine, index: u64, command: MetadataCommand) -> Vec<TopicOutcome> {
        match m.apply(index, &LoggedCommand::new(command)) {
            CommandOutcome::Topics(outcomes) => outcomes,
            other => panic!("unexpected {other:?}"),
        }
    }

    fn grow(name: &str, count: i32) -> PartitionGrowth {
        PartitionGrowth {
            name: name.into(),
            count,
        }
    }

    #[test]
    fn create_partitions_appends_partitions_placed_like_new_ones() {
        let mut m = machine_with_broker(4);
        create(&mut m, 2, vec![new_topic("orders", 2, 1)], false);
        let before = m.topics["orders"].clone();
        let outcomes = topics_outcome(
            &mut m,
            3,
            MetadataCommand::CreatePartitions {
                topics: vec![grow("orders", 5)],
                validate_only: false,
            },
        );
        assert_eq!((outcomes[0].error_code, outcomes[0].partitions), (0, 5));
        let topic = &m.topics["orders"];
        assert_eq!(topic.partitions[..2], before.partitions[..]);
        assert_eq!(topic.topic_id, before.topic_id);
        let first = crc32c::crc32c(b"orders") % 4;
        for (p, meta) in topic.partitions.iter().enumerate() {
            assert_eq!(meta.partition, p as i32);
            assert_eq!(meta.shard, (first + p as u32) % 4);
        }
    }

    #[test]
    fn create_partitions_reports_each_kafka_error_code_and_validate_only_changes_nothing() {
        let mut m = machine_with_broker(2);
        create(
            &mut m,
            2,
            vec![new_topic("t", 3, 1), new_topic("__consumer_offsets", 2, 1)],
            false,
        );
        let before = m.topics.clone();
        let outcomes = topics_outcome(
            &mut m,
            3,
            MetadataCommand::CreatePartitions {
                topics: vec![
                    grow("t", 3),
                    grow("t", 2),
                    grow("missing", 4),
                    grow("__consumer_offsets", 4),
                    grow("t", 100_001),
                ],
                validate_only: false,
            },
        );
        let codes: Vec<i16> = outcomes.iter().map(|o| o.error_code).collect();
        assert_eq!(codes, vec![37, 42, 3, 42, 42]);
        assert_eq!(m.topics, before);
        let outcomes = topics_outcome(
            &mut m,
            4,
            MetadataCommand::CreatePartitions {
                topics: vec![grow("t", 8)],
                validate_only: true,
            },
        );
        assert_eq!((outcomes[0].error_code, outcomes[0].partitions), (0, 8));
        assert_eq!(m.topics, before);
    }

    fn op(key: &str, value: Option<&str>) -> ConfigOp {
        ConfigOp {
            key: key.into(),
            value: value.map(str::to_owned),
        }
    }

    #[test]
    fn alter_configs_sets_removes_and_replaces_topic_and_broker_configs() {
        let mut m = machine_with_broker(1);
        let mut topic = new_topic("t", 1, 1);
        topic.configs = [
            ("retention.ms".to_owned(), "1000".to_owned()),
            ("segment.bytes".to_owned(), "2048".to_owned()),
        ]
        .into();
        create(&mut m, 2, vec![topic], false);
        let incremental = ConfigChange {
            resource: ConfigResource::Topic("t".into()),
            replace_all: false,
            ops: vec![
                op("retention.ms", None),
                op("cleanup.policy", Some("compact")),
            ],
        };
        let broker = ConfigChange {
            resource: ConfigResource::Broker,
            replace_all: false,
            ops: vec![op("log.retention.ms", Some("5000"))],
        };
        let missing = ConfigChange {
            resource: ConfigResource::Topic("nope".into()),
            replace_all: false,
            ops: vec![],
        };
        let outcomes = topics_outcome(
            &mut m,
            3,
            MetadataCommand::AlterConfigs {
                changes: vec![incremental, broker, missing],
                validate_only: false,
            },
        );
        let codes: Vec<i16> = outcomes.iter().map(|o| o.error_code).collect();
        assert_eq!(codes, vec![0, 0, 3]);
        let expected: BTreeMap<String, String> = [
            ("cleanup.policy".to_owned(), "compact".to_owned()),
            ("segment.bytes".to_owned(), "2048".to_owned()),
        ]
        .into();
        assert_eq!(m.topics["t"].configs, expected);
        assert_eq!(m.snapshot(0).broker_configs["log.retention.ms"], "5000");

        let replace = ConfigChange {
            resource: ConfigResource::Topic("t".into()),
            replace_all: true,
            ops: vec![op("max.message.bytes", Some("100"))],
        };
        topics_outcome(
            &mut m,
            4,
            MetadataCommand::AlterConfigs {
                changes: vec![replace.clone()],
                validate_only: true,
            },
        );
        assert_eq!(
            m.topics["t"].configs, expected,
            "validate_only changes nothing"
        );
        topics_outcome(
            &mut m,
            5,
            MetadataCommand::AlterConfigs {
                changes: vec![replace],
                validate_only: false,
            },
        );
        assert_eq!(
            m.topics["t"].configs,
            [("max.message.bytes".to_owned(), "100".to_owned())].into()
        );
        let twice = ConfigChange {
            resource: ConfigResource::Broker,
            replace_all: false,
            ops: vec![op("a", Some("1")), op("a", None)],
        };
        let outcomes = topics_outcome(
            &mut m,
            6,
            MetadataCommand::AlterConfigs {
                changes: vec![twice],
                validate_only: false,
            },
        );
        assert_eq!(outcomes[0].error_code, codes::INVALID_REQUEST);
        let restored = crate::snapshot_file::StoredSnapshot::of(&m, 1, vec![1]).machine();
        assert_eq!(restored, m, "broker configs survive a snapshot");
    }
}
