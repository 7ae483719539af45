//! Metadata: brokers, controller and topics from this shard's metadata snapshot (no Raft round trip), with
//! auto-creation of unknown topics when both the broker and the request allow it.

use std::rc::Rc;

use kafka_protocol::messages::metadata_request::MetadataRequest;
use kafka_protocol::messages::metadata_response::{
    MetadataResponse, MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{BrokerId, TopicName};
use kafka_protocol::protocol::StrBytes;
use pinlog_raft_shard::{MetadataSnapshot, TopicMeta};

use crate::codes;
use crate::context::ShardContext;

pub async fn handle(
    ctx: Rc<ShardContext>,
    version: i16,
    request: MetadataRequest,
) -> MetadataResponse {
    // v0 has no allow_auto_topic_creation field: the broker setting alone decides, as in Kafka.
    let allow_create =
        ctx.config.auto_create_topics && (version < 4 || request.allow_auto_topic_creation);
    let requested: Option<Vec<String>> = request.topics.map(|topics| {
        topics
            .into_iter()
            .filter_map(|t| t.name.map(|n| n.0.to_string()))
            .collect()
    });
    let mut snapshot = ctx.snapshot();
    if allow_create {
        if let Some(names) = &requested {
            let missing: Vec<String> = names
                .iter()
                .filter(|n| snapshot.topic(n).is_none())
                .cloned()
                .collect();
            if !missing.is_empty() {
                super::topics::auto_create(&ctx, missing).await;
                snapshot = ctx.snapshot();
            }
        }
    }
    let topics = match requested {
        // v0 treats an empty list as "all topics"; later versions use null for that.
        Some(names) if !(version == 0 && names.is_empty()) => names
            .iter()
            .map(|name| topic_entry(&snapshot, name))
            .collect(),
        _ => snapshot
            .topics
            .keys()
            .map(|name| topic_entry(&snapshot, name))
            .collect(),
    };
    MetadataResponse::default()
        .with_brokers(brokers(&snapshot))
        .with_cluster_id(Some(StrBytes::from_string(snapshot.cluster_id.clone())))
        .with_controller_id(BrokerId(snapshot.controller_id))
        .with_topics(topics)
}

pub fn brokers(snapshot: &MetadataSnapshot) -> Vec<MetadataResponseBroker> {
    snapshot
        .brokers
        .iter()
        .map(|b| {
            MetadataResponseBroker::default()
                .with_node_id(BrokerId(b.node_id))
                .with_host(StrBytes::from_string(b.host.clone()))
                .with_port(i32::from(b.port))
        })
        .collect()
}

fn topic_entry(snapshot: &MetadataSnapshot, name: &str) -> MetadataResponseTopic {
    let entry = MetadataResponseTopic::default()
        .with_name(Some(TopicName(StrBytes::from_string(name.to_owned()))));
    match snapshot.topic(name) {
        Some(topic) => entry
            .with_topic_id(uuid::Uuid::from_bytes(topic.topic_id))
            .with_is_internal(topic.internal)
            .with_partitions(partitions(topic)),
        None => entry.with_error_code(codes::UNKNOWN_TOPIC_OR_PARTITION),
    }
}

fn partitions(topic: &TopicMeta) -> Vec<MetadataResponsePartition> {
    topic
        .partitions
        .iter()
        .map(|p| {
            let replicas: Vec<BrokerId> = p.replicas.iter().map(|r| BrokerId(*r)).collect();
            MetadataResponsePartition::default()
                .with_partition_index(p.partition)
                .with_leader_id(BrokerId(p.leader))
                .with_leader_epoch(p.leader_epoch)
                .with_isr_nodes(replicas.clone())
                .with_replica_nodes(replicas)
        })
        .collect()
}
