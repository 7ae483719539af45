//! DescribeCluster and DescribeTopicPartitions (API 75, what newer tooling uses instead of Metadata): answered
//! from this shard's metadata snapshot, no raft round trip.
//!
//! pinlog has no authorizer, so the authorized-operations bit sets say "everything", as Kafka does without one.

use std::rc::Rc;

use kafka_protocol::messages::describe_cluster_request::DescribeClusterRequest;
use kafka_protocol::messages::describe_cluster_response::{
    DescribeClusterBroker, DescribeClusterResponse,
};
use kafka_protocol::messages::describe_topic_partitions_request::DescribeTopicPartitionsRequest;
use kafka_protocol::messages::describe_topic_partitions_response::{
    Cursor, DescribeTopicPartitionsResponse, DescribeTopicPartitionsResponsePartition,
    DescribeTopicPartitionsResponseTopic,
};
use kafka_protocol::messages::{BrokerId, TopicName};
use kafka_protocol::protocol::StrBytes;
use pinlog_raft_shard::{MetadataSnapshot, TopicMeta};

use crate::codes;
use crate::context::ShardContext;

/// Kafka's `AclOperation` codes, as bits of an authorized-operations set.
mod acl {
    pub const CREATE: i32 = 5;
    pub const READ: i32 = 3;
    pub const WRITE: i32 = 4;
    pub const DELETE: i32 = 6;
    pub const ALTER: i32 = 7;
    pub const DESCRIBE: i32 = 8;
    pub const CLUSTER_ACTION: i32 = 9;
    pub const DESCRIBE_CONFIGS: i32 = 10;
    pub const ALTER_CONFIGS: i32 = 11;
    pub const IDEMPOTENT_WRITE: i32 = 12;

    pub const fn set(ops: &[i32]) -> i32 {
        let mut bits = 0;
        let mut i = 0;
        while i < ops.len() {
            bits |= 1 << ops[i];
            i += 1;
        }
        bits
    }
}

const TOPIC_OPERATIONS: i32 = acl::set(&[
    acl::READ,
    acl::WRITE,
    acl::CREATE,
    acl::DELETE,
    acl::ALTER,
    acl::DESCRIBE,
    acl::DESCRIBE_CONFIGS,
    acl::ALTER_CONFIGS,
]);
const CLUSTER_OPERATIONS: i32 = acl::set(&[
    acl::CREATE,
    acl::ALTER,
    acl::DESCRIBE,
    acl::CLUSTER_ACTION,
    acl::DESCRIBE_CONFIGS,
    acl::ALTER_CONFIGS,
    acl::IDEMPOTENT_WRITE,
]);
/// "Not asked for" in an authorized-operations field.
const OPERATIONS_NOT_ASKED: i32 = i32::MIN;

/// Kafka's `max.request.partition.size.limit`: the most partitions one DescribeTopicPartitions answer carries.
pub const DESCRIBE_PARTITIONS_MAX: i32 = 2000;

pub async fn describe_cluster(
    ctx: Rc<ShardContext>,
    request: DescribeClusterRequest,
) -> DescribeClusterResponse {
    let snapshot = ctx.snapshot();
    // One node is broker and controller at once (KRaft's combined mode): both endpoint types list it.
    let brokers = snapshot
        .brokers
        .iter()
        .map(|b| {
            DescribeClusterBroker::default()
                .with_broker_id(BrokerId(b.node_id))
                .with_host(StrBytes::from_string(b.host.clone()))
                .with_port(i32::from(b.port))
        })
        .collect();
    DescribeClusterResponse::default()
        .with_endpoint_type(request.endpoint_type)
        .with_cluster_id(StrBytes::from_string(snapshot.cluster_id.clone()))
        .with_controller_id(BrokerId(snapshot.controller_id))
        .with_brokers(brokers)
        .with_cluster_authorized_operations(if request.include_cluster_authorized_operations {
            CLUSTER_OPERATIONS
        } else {
            OPERATIONS_NOT_ASKED
        })
}

pub async fn describe_topic_partitions(
    ctx: Rc<ShardContext>,
    request: DescribeTopicPartitionsRequest,
) -> DescribeTopicPartitionsResponse {
    let snapshot = ctx.snapshot();
    let mut names: Vec<String> = if request.topics.is_empty() {
        snapshot.topics.keys().cloned().collect()
    } else {
        request
            .topics
            .iter()
            .map(|t| t.name.0.to_string())
            .collect()
    };
    names.sort();
    names.dedup();
    let cursor = request
        .cursor
        .map(|c| (c.topic_name.0.to_string(), c.partition_index.max(0)));
    let limit = request
        .response_partition_limit
        .clamp(1, DESCRIBE_PARTITIONS_MAX) as usize;
    let page = paginate(&snapshot, &names, cursor.as_ref(), limit);
    let topics = page
        .entries
        .into_iter()
        .map(|(name, range)| topic_result(&snapshot, name, range))
        .collect();
    DescribeTopicPartitionsResponse::default()
        .with_topics(topics)
        .with_next_cursor(page.next.map(|(topic, partition)| {
            Cursor::default()
                .with_topic_name(TopicName(StrBytes::from_string(topic)))
                .with_partition_index(partition)
        }))
}

/// One answer's worth of topics: each with the range of partitions it shows, and where the next answer starts.
#[derive(Debug, PartialEq)]
struct Page<'a> {
    entries: Vec<(&'a str, std::ops::Range<i32>)>,
    next: Option<(String, i32)>,
}

/// Walks `names` (sorted) from the cursor, taking at most `limit` partitions. A missing topic takes no partition.
fn paginate<'a>(
    snapshot: &MetadataSnapshot,
    names: &'a [String],
    cursor: Option<&(String, i32)>,
    limit: usize,
) -> Page<'a> {
    let mut entries = Vec::new();
    let mut left = limit;
    let start = cursor.map_or(0, |(topic, _)| names.partition_point(|n| n < topic));
    for (i, name) in names.iter().enumerate().skip(start) {
        let count = snapshot
            .topic(name)
            .map_or(0, |t| t.partitions.len() as i32);
        let first = match cursor {
            Some((topic, partition)) if topic == name => (*partition).min(count),
            _ => 0,
        };
        if left == 0 {
            return Page {
                entries,
                next: Some((name.clone(), first)),
            };
        }
        let end = count.min(first + left as i32);
        entries.push((name.as_str(), first..end));
        left -= (end - first) as usize;
        if end < count {
            return Page {
                entries,
                next: Some((name.clone(), end)),
            };
        }
        if left == 0 && i + 1 < names.len() {
            return Page {
                entries,
                next: Some((names[i + 1].clone(), 0)),
            };
        }
    }
    Page {
        entries,
        next: None,
    }
}

fn topic_result(
    snapshot: &MetadataSnapshot,
    name: &str,
    range: std::ops::Range<i32>,
) -> DescribeTopicPartitionsResponseTopic {
    let entry = DescribeTopicPartitionsResponseTopic::default()
        .with_name(Some(TopicName(StrBytes::from_string(name.to_owned()))));
    let Some(topic) = snapshot.topic(name) else {
        return entry.with_error_code(codes::UNKNOWN_TOPIC_OR_PARTITION);
    };
    entry
        .with_topic_id(uuid::Uuid::from_bytes(topic.topic_id))
        .with_is_internal(topic.internal)
        .with_partitions(partitions(topic, range))
        .with_topic_authorized_operations(TOPIC_OPERATIONS)
}

fn partitions(
    topic: &TopicMeta,
    range: std::ops::Range<i32>,
) -> Vec<DescribeTopicPartitionsResponsePartition> {
    topic.partitions[range.start as usize..range.end as usize]
        .iter()
        .map(|p| {
            let replicas: Vec<BrokerId> = p.replicas.iter().map(|r| BrokerId(*r)).collect();
            DescribeTopicPartitionsResponsePartition::default()
                .with_partition_index(p.partition)
                .with_leader_id(BrokerId(p.leader))
                .with_leader_epoch(p.leader_epoch)
                .with_isr_nodes(replicas.clone())
                .with_replica_nodes(replicas)
                .with_eligible_leader_replicas(Some(Vec::new()))
                .with_last_known_elr(Some(Vec::new()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use pinlog_raft_shard::PartitionMeta;

    fn snapshot(topics: &[(&str, i32)]) -> MetadataSnapshot {
        MetadataSnapshot {
            version: 1,
            cluster_id: "c".into(),
            controller_id: 0,
            brokers: vec![],
            topics: topics
                .iter()
                .map(|(name, count)| {
                    let meta = TopicMeta {
                        name: name.to_string(),
                        topic_id: [1; 16],
                        partitions: (0..*count)
                            .map(|p| PartitionMeta {
                                partition: p,
                                leader: 0,
                                leader_epoch: 0,
                                replicas: vec![0],
                                shard: 0,
                            })
                            .collect(),
                        configs: Default::default(),
                        internal: false,
                    };
                    (name.to_string(), meta)
                })
                .collect(),
            broker_configs: Default::default(),
        }
    }

    #[test]
    fn pages_walk_every_partition_once_in_order() {
        let snap = snapshot(&[("a", 3), ("b", 2), ("c", 4)]);
        let names: Vec<String> = ["a", "b", "c", "missing"].map(String::from).to_vec();
        let mut cursor = None;
        let mut seen = Vec::new();
        let mut pages = 0;
        loop {
            let page = paginate(&snap, &names, cursor.as_ref(), 2);
            for (name, range) in &page.entries {
                seen.extend(range.clone().map(|p| format!("{name}{p}")));
            }
            pages += 1;
            assert!(pages < 20, "pagination does not end");
            match page.next {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        assert_eq!(seen, ["a0", "a1", "a2", "b0", "b1", "c0", "c1", "c2", "c3"]);
        assert_eq!(pages, 5);
    }

    #[test]
    fn a_page_that_ends_with_a_topic_points_at_the_next_topic() {
        let snap = snapshot(&[("a", 2), ("b", 1)]);
        let names: Vec<String> = ["a", "b"].map(String::from).to_vec();
        let page = paginate(&snap, &names, None, 2);
        assert_eq!(page.entries, vec![("a", 0..2)]);
        assert_eq!(page.next, Some(("b".to_owned(), 0)));
        let all = paginate(&snap, &names, None, 10);
        assert_eq!(all.entries, vec![("a", 0..2), ("b", 0..1)]);
        assert_eq!(all.next, None);
        let zz = ["zz".to_owned()];
        let missing = paginate(&snap, &zz, None, 10);
        assert_eq!(missing.entries, vec![("zz", 0..0)]);
    }
}
