//! Topic administration and layout discovery on the native codecs, shared by both drivers: create the run's topic,
//! wait until every partition has a leader, map partitions to leader addresses, and read log end offsets.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use kafka_protocol::messages::create_topics_request::{
    CreatableTopic, CreatableTopicConfig, CreateTopicsRequest,
};
use kafka_protocol::messages::metadata_request::{MetadataRequest, MetadataRequestTopic};
use kafka_protocol::messages::{ApiKey, BrokerId, TopicName};
use kafka_protocol::protocol::StrBytes;

use super::conn::{self, Conn};
use crate::error::BenchError;
use crate::workload::TopicSpec;

/// How long a new topic may take to get a leader for every partition.
pub const TOPIC_READY_TIMEOUT_S: u64 = 60;
/// Pause between metadata polls while waiting for leaders (a client-side wait for a one-off event, bounded above).
const TOPIC_READY_POLL_MS: u64 = 100;
/// Kafka error codes the admin path tolerates.
pub const TOPIC_ALREADY_EXISTS: i16 = 36;
const LEADER_NOT_AVAILABLE: i16 = 5;
const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
/// ListOffsets timestamps meaning "log end" and "log start".
pub const OFFSET_LATEST: i64 = -1;
pub const OFFSET_EARLIEST: i64 = -2;

/// Where each partition of a topic lives.
#[derive(Debug, Clone, PartialEq)]
pub struct TopicLayout {
    pub topic: String,
    /// Leader broker id per partition index (`leaders[p]`).
    pub leaders: Vec<i32>,
    /// Broker id -> "host:port".
    pub brokers: BTreeMap<i32, String>,
}

impl TopicLayout {
    pub fn partitions(&self) -> u32 {
        self.leaders.len() as u32
    }

    /// Partitions led by each broker, as (address, partition indexes).
    pub fn by_leader(&self) -> Vec<(String, Vec<i32>)> {
        let mut groups: BTreeMap<i32, Vec<i32>> = BTreeMap::new();
        for (p, leader) in self.leaders.iter().enumerate() {
            groups.entry(*leader).or_default().push(p as i32);
        }
        groups
            .into_iter()
            .map(|(id, parts)| (self.brokers[&id].clone(), parts))
            .collect()
    }
}

fn topic_name(name: &str) -> TopicName {
    TopicName(StrBytes::from_string(name.to_string()))
}

/// Creates `topic` with the workload's `configs` (an existing one is accepted) and waits until every partition
/// has a leader.
pub fn create_topic(
    bootstrap: &str,
    topic: &str,
    spec: &TopicSpec,
) -> Result<TopicLayout, BenchError> {
    let (partitions, replication) = (spec.partitions, spec.replication_factor);
    let configs = spec
        .configs
        .iter()
        .map(|(name, value)| {
            CreatableTopicConfig::default()
                .with_name(StrBytes::from_string(name.clone()))
                .with_value(Some(StrBytes::from_string(value.clone())))
        })
        .collect();
    let mut conn = conn::connect(bootstrap)?;
    let controller = controller_addr(&mut conn)?;
    let mut admin = match controller {
        Some(addr) if addr != bootstrap => conn::connect(&addr)?,
        _ => conn,
    };
    let request = CreateTopicsRequest::default()
        .with_timeout_ms(30_000)
        .with_topics(vec![CreatableTopic::default()
            .with_name(topic_name(topic))
            .with_num_partitions(partitions as i32)
            .with_replication_factor(replication)
            .with_configs(configs)]);
    let answer = admin.call(ApiKey::CreateTopics, &request)?;
    for t in &answer.topics {
        if t.error_code != 0 && t.error_code != TOPIC_ALREADY_EXISTS {
            let message = t
                .error_message
                .as_ref()
                .map(|m| m.to_string())
                .unwrap_or_default();
            return Err(BenchError::protocol(
                format!("CreateTopics {topic}"),
                format!("error code {} {message}", t.error_code),
            ));
        }
    }
    wait_for_layout(&mut admin, topic, partitions)
}

/// The controller's address, if the broker names one.
fn controller_addr(conn: &mut Conn) -> Result<Option<String>, BenchError> {
    let answer = conn.call(
        ApiKey::Metadata,
        &MetadataRequest::default().with_topics(Some(Vec::new())),
    )?;
    let controller = answer.controller_id.0;
    Ok(answer
        .brokers
        .iter()
        .find(|b| b.node_id.0 == controller)
        .map(|b| format!("{}:{}", b.host, b.port)))
}

/// Polls Metadata until `partitions` partitions of `topic` have leaders, bounded by [`TOPIC_READY_TIMEOUT_S`].
pub fn wait_for_layout(
    conn: &mut Conn,
    topic: &str,
    partitions: u32,
) -> Result<TopicLayout, BenchError> {
    let deadline = Instant::now() + Duration::from_secs(TOPIC_READY_TIMEOUT_S);
    loop {
        match layout(conn, topic)? {
            Some(l) if l.partitions() == partitions => return Ok(l),
            _ if Instant::now() >= deadline => {
                return Err(BenchError::protocol(
                    format!("Metadata {topic}"),
                    format!("not every partition had a leader after {TOPIC_READY_TIMEOUT_S} s"),
                ))
            }
            _ => std::thread::sleep(Duration::from_millis(TOPIC_READY_POLL_MS)),
        }
    }
}

/// The topic's layout, or `None` while some partition has no leader yet.
pub fn layout(conn: &mut Conn, topic: &str) -> Result<Option<TopicLayout>, BenchError> {
    let request = MetadataRequest::default()
        .with_topics(Some(vec![
            MetadataRequestTopic::default().with_name(Some(topic_name(topic)))
        ]))
        .with_allow_auto_topic_creation(false);
    let answer = conn.call(ApiKey::Metadata, &request)?;
    let brokers: BTreeMap<i32, String> = answer
        .brokers
        .iter()
        .map(|b| (b.node_id.0, format!("{}:{}", b.host, b.port)))
        .collect();
    let Some(t) = answer.topics.first() else {
        return Ok(None);
    };
    if t.error_code == LEADER_NOT_AVAILABLE
        || t.error_code == UNKNOWN_TOPIC_OR_PARTITION
        || t.partitions.is_empty()
    {
        return Ok(None);
    }
    if t.error_code != 0 {
        return Err(BenchError::Broker {
            what: format!("Metadata {topic}"),
            code: t.error_code,
        });
    }
    let mut leaders = vec![-1; t.partitions.len()];
    for p in &t.partitions {
        let index = p.partition_index as usize;
        if index >= leaders.len()
            || p.leader_id == BrokerId(-1)
            || !brokers.contains_key(&p.leader_id.0)
        {
            return Ok(None);
        }
        leaders[index] = p.leader_id.0;
    }
    if leaders.contains(&-1) {
        return Ok(None);
    }
    Ok(Some(TopicLayout {
        topic: topic.to_string(),
        leaders,
        brokers,
    }))
}

/// Offsets for `partitions` at `timestamp` ([`OFFSET_LATEST`] or [`OFFSET_EARLIEST`]), asked of their leader `conn`.
pub fn offsets(
    conn: &mut Conn,
    topic: &str,
    partitions: &[i32],
    timestamp: i64,
) -> Result<Vec<i64>, BenchError> {
    Ok(conn.list_offsets(topic, partitions, timestamp)?)
}

/// Log end offsets of every partition of `layout`, indexed by partition.
pub fn end_offsets(layout: &TopicLayout) -> Result<Vec<i64>, BenchError> {
    let mut ends = vec![0; layout.leaders.len()];
    for (addr, parts) in layout.by_leader() {
        let mut conn = conn::connect(&addr)?;
        for (p, o) in parts
            .iter()
            .zip(offsets(&mut conn, &layout.topic, &parts, OFFSET_LATEST)?)
        {
            ends[*p as usize] = o;
        }
    }
    Ok(ends)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn by_leader_groups_partitions() {
        let layout = TopicLayout {
            topic: "t".into(),
            leaders: vec![1, 2, 1, 2, 1],
            brokers: BTreeMap::from([(1, "a:1".to_string()), (2, "b:2".to_string())]),
        };
        assert_eq!(
            layout.by_leader(),
            vec![
                ("a:1".to_string(), vec![0, 2, 4]),
                ("b:2".to_string(), vec![1, 3])
            ]
        );
        assert_eq!(layout.partitions(), 5);
    }
}
