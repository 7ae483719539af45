//! `pinlog topic ...`: CreateTopics, Metadata, ListOffsets + DescribeConfigs, IncrementalAlterConfigs,
//! CreatePartitions and DeleteTopics.

use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::metadata_response::MetadataResponseTopic;
use kafka_protocol::messages::{
    ApiKey, CreatePartitionsRequest, CreateTopicsRequest, DeleteTopicsRequest,
    DescribeConfigsRequest, IncrementalAlterConfigsRequest, MetadataRequest, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use pinlog_net::client::Conn;
use pinlog_tuning::TopicCommand;
use serde_json::{json, Value};

use super::{error_name, key_value, AdminError, Outcome, Section, Session};

const RESOURCE_TOPIC: i8 = 2;
const OP_SET: i8 = 0;
const OP_DELETE: i8 = 1;
/// ListOffsets' special timestamps.
pub const EARLIEST: i64 = -2;
pub const LATEST: i64 = -1;

pub fn run(session: &mut Session, command: TopicCommand) -> Result<Outcome, AdminError> {
    let timeout_ms = session.target.timeout_ms.min(i32::MAX as u64) as i32;
    let conn = &mut session.conn;
    match command {
        TopicCommand::Create {
            names,
            partitions,
            replicas,
            configs,
        } => {
            let configs = configs
                .iter()
                .map(|c| key_value(c))
                .collect::<Result<Vec<_>, _>>()?;
            let topics = names.iter().map(|name| {
                CreatableTopic::default()
                    .with_name(topic_name(name))
                    .with_num_partitions(partitions)
                    .with_replication_factor(replicas)
                    .with_configs(
                        configs
                            .iter()
                            .map(|(k, v)| {
                                CreatableTopicConfig::default()
                                    .with_name(StrBytes::from_string(k.clone()))
                                    .with_value(Some(StrBytes::from_string(v.clone())))
                            })
                            .collect(),
                    )
            });
            let request = CreateTopicsRequest::default()
                .with_topics(topics.collect())
                .with_timeout_ms(timeout_ms);
            let response = conn.call(ApiKey::CreateTopics, &request)?;
            let results = response.topics.into_iter().map(|t| {
                let partitions = json!(t.num_partitions);
                (
                    t.name.0.to_string(),
                    t.error_code,
                    t.error_message,
                    vec![partitions],
                )
            });
            Ok(per_item(&["topic", "partitions", "error"], results))
        }
        TopicCommand::List { all } => {
            let mut section = Section::new(&["name", "partitions", "replicas", "internal"]);
            for t in metadata(conn, None)? {
                if t.is_internal && !all {
                    continue;
                }
                let replicas = t.partitions.first().map_or(0, |p| p.replica_nodes.len());
                section.row(vec![
                    json!(t.name.map(|n| n.0.to_string())),
                    json!(t.partitions.len()),
                    json!(replicas),
                    json!(t.is_internal),
                ]);
            }
            Ok(Outcome::ok(vec![section]))
        }
        TopicCommand::Describe { name } => describe(conn, &name),
        TopicCommand::AlterConfig { name, set, delete } => {
            let mut configs = Vec::new();
            for text in &set {
                let (k, v) = key_value(text)?;
                configs.push(alterable(k, OP_SET, Some(v)));
            }
            configs.extend(delete.into_iter().map(|k| alterable(k, OP_DELETE, None)));
            if configs.is_empty() {
                return Err(AdminError::Usage(
                    "nothing to alter: give --set or --delete".into(),
                ));
            }
            let request = IncrementalAlterConfigsRequest::default().with_resources(vec![
                AlterConfigsResource::default()
                    .with_resource_type(RESOURCE_TOPIC)
                    .with_resource_name(StrBytes::from_string(name))
                    .with_configs(configs),
            ]);
            let response = conn.call(ApiKey::IncrementalAlterConfigs, &request)?;
            let results = response.responses.into_iter().map(|r| {
                (
                    r.resource_name.to_string(),
                    r.error_code,
                    r.error_message,
                    vec![],
                )
            });
            Ok(per_item(&["topic", "error"], results))
        }
        TopicCommand::AddPartitions { name, num } => {
            let request = CreatePartitionsRequest::default()
                .with_topics(vec![CreatePartitionsTopic::default()
                    .with_name(topic_name(&name))
                    .with_count(num)
                    .with_assignments(None)])
                .with_timeout_ms(timeout_ms);
            let response = conn.call(ApiKey::CreatePartitions, &request)?;
            let results = response.results.into_iter().map(|r| {
                (
                    r.name.0.to_string(),
                    r.error_code,
                    r.error_message,
                    vec![json!(num)],
                )
            });
            Ok(per_item(&["topic", "partitions", "error"], results))
        }
        TopicCommand::Delete { names } => {
            let request = DeleteTopicsRequest::default()
                .with_topic_names(names.iter().map(|n| topic_name(n)).collect())
                .with_timeout_ms(timeout_ms);
            let response = conn.call(ApiKey::DeleteTopics, &request)?;
            let results = response.responses.into_iter().map(|r| {
                let name = r.name.map_or_else(String::new, |n| n.0.to_string());
                (name, r.error_code, r.error_message, vec![])
            });
            Ok(per_item(&["topic", "error"], results))
        }
    }
}

fn topic_name(name: &str) -> TopicName {
    TopicName(StrBytes::from_string(name.to_owned()))
}

fn alterable(key: String, op: i8, value: Option<String>) -> AlterableConfig {
    AlterableConfig::default()
        .with_name(StrBytes::from_string(key))
        .with_config_operation(op)
        .with_value(value.map(StrBytes::from_string))
}

/// One row per item (name, extra columns, error name), and one failure per refused item.
pub fn per_item(
    columns: &'static [&'static str],
    results: impl Iterator<Item = (String, i16, Option<StrBytes>, Vec<Value>)>,
) -> Outcome {
    let mut section = Section::new(columns);
    let mut failures = Vec::new();
    for (name, code, message, extra) in results {
        let mut row = vec![json!(name)];
        row.extend(extra);
        row.push(if code == 0 {
            Value::Null
        } else {
            json!(error_name(code))
        });
        section.row(row);
        if code != 0 {
            let message = message.map_or_else(|| name.clone(), |m| format!("{name}: {m}"));
            failures.push(AdminError::kafka(code, message));
        }
    }
    Outcome {
        sections: vec![section],
        failures,
    }
}

/// Metadata of the named topics (all when `None`), without creating any.
pub fn metadata(
    conn: &mut Conn,
    names: Option<&[&str]>,
) -> Result<Vec<MetadataResponseTopic>, AdminError> {
    let request = MetadataRequest::default()
        .with_topics(names.map(|names| {
            names
                .iter()
                .map(|n| MetadataRequestTopic::default().with_name(Some(topic_name(n))))
                .collect()
        }))
        .with_allow_auto_topic_creation(false);
    Ok(conn.call(ApiKey::Metadata, &request)?.topics)
}

/// The partitions of one existing topic, or the broker's error for it.
pub fn partitions_of(conn: &mut Conn, name: &str) -> Result<MetadataResponseTopic, AdminError> {
    let topic = metadata(conn, Some(&[name]))?
        .into_iter()
        .next()
        .ok_or_else(|| AdminError::kafka(3, format!("{name}: no answer for the topic")))?;
    if topic.error_code != 0 {
        return Err(AdminError::kafka(topic.error_code, name.to_owned()));
    }
    Ok(topic)
}

/// The offset for `timestamp` (EARLIEST, LATEST) of each partition, as (partition, offset).
pub fn offsets(
    conn: &mut Conn,
    topic: &str,
    partitions: &[i32],
    timestamp: i64,
) -> Result<Vec<(i32, i64)>, AdminError> {
    let found = conn.list_offsets(topic, partitions, timestamp)?;
    Ok(partitions.iter().copied().zip(found).collect())
}

fn describe(conn: &mut Conn, name: &str) -> Result<Outcome, AdminError> {
    let topic = partitions_of(conn, name)?;
    let indexes: Vec<i32> = topic.partitions.iter().map(|p| p.partition_index).collect();
    let starts = offsets(conn, name, &indexes, EARLIEST)?;
    let ends = offsets(conn, name, &indexes, LATEST)?;
    let mut partitions = Section::titled(
        "partitions",
        &[
            "partition",
            "leader",
            "epoch",
            "replicas",
            "log_start_offset",
            "high_watermark",
        ],
    );
    for (p, ((_, start), (_, end))) in topic.partitions.iter().zip(starts.iter().zip(&ends)) {
        partitions.row(vec![
            json!(p.partition_index),
            json!(p.leader_id.0),
            json!(p.leader_epoch),
            json!(p.replica_nodes.iter().map(|r| r.0).collect::<Vec<_>>()),
            json!(start),
            json!(end),
        ]);
    }
    let request =
        DescribeConfigsRequest::default().with_resources(vec![DescribeConfigsResource::default()
            .with_resource_type(RESOURCE_TOPIC)
            .with_resource_name(StrBytes::from_string(name.to_owned()))
            .with_configuration_keys(None)]);
    let response = conn.call(ApiKey::DescribeConfigs, &request)?;
    let mut configs = Section::titled("configs", &["key", "value", "source"]);
    for result in response.results {
        if result.error_code != 0 {
            return Err(AdminError::kafka(
                result.error_code,
                format!("{name}: configs"),
            ));
        }
        for c in result.configs {
            configs.row(vec![
                json!(c.name.to_string()),
                json!(c.value.map(|v| v.to_string())),
                json!(config_source(c.config_source)),
            ]);
        }
    }
    Ok(Outcome::ok(vec![partitions, configs]))
}

fn config_source(source: i8) -> &'static str {
    match source {
        1 => "DYNAMIC_TOPIC_CONFIG",
        2 => "DYNAMIC_BROKER_CONFIG",
        3 => "DYNAMIC_DEFAULT_BROKER_CONFIG",
        4 => "STATIC_BROKER_CONFIG",
        5 => "DEFAULT_CONFIG",
        6 => "DYNAMIC_BROKER_LOGGER_CONFIG",
        _ => "UNKNOWN",
    }
}
