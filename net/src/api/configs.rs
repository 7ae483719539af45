//! DescribeConfigs (read-only for now): topic configs (the topic's own values over the broker defaults) and the
//! broker's configs, with their sources.

use std::rc::Rc;

use kafka_protocol::messages::describe_configs_request::DescribeConfigsRequest;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResponse, DescribeConfigsResult,
};
use kafka_protocol::protocol::StrBytes;

use crate::codes;
use crate::context::ShardContext;

const RESOURCE_TOPIC: i8 = 2;
const RESOURCE_BROKER: i8 = 4;
const SOURCE_DYNAMIC_TOPIC: i8 = 1;
const SOURCE_STATIC_BROKER: i8 = 4;
const SOURCE_DEFAULT: i8 = 5;

/// Topic config keys pinlog knows, and whether the value is a number.
const TOPIC_KEYS: &[(&str, bool)] = &[
    ("cleanup.policy", false),
    ("compression.type", false),
    ("max.message.bytes", true),
    ("message.timestamp.type", false),
    ("min.insync.replicas", true),
    ("retention.bytes", true),
    ("retention.ms", true),
    ("segment.bytes", true),
    ("segment.ms", true),
];

/// Refuses unknown topic config keys and non-numeric values for numeric keys (INVALID_CONFIG).
pub fn validate_topic_config(key: &str, value: &str) -> Result<(), String> {
    match TOPIC_KEYS.iter().find(|(k, _)| *k == key) {
        None => Err(format!("unknown topic config {key}")),
        Some((_, true)) if value.parse::<i64>().is_err() => {
            Err(format!("{key} = {value:?} is not a number"))
        }
        Some(_) => Ok(()),
    }
}

fn topic_defaults(ctx: &ShardContext) -> Vec<(&'static str, String)> {
    let d = &ctx.config.log_defaults;
    vec![
        ("cleanup.policy", "delete".into()),
        ("compression.type", "producer".into()),
        ("max.message.bytes", d.max_batch_bytes.to_string()),
        ("message.timestamp.type", "CreateTime".into()),
        ("min.insync.replicas", "1".into()),
        ("retention.bytes", d.retention_bytes.to_string()),
        ("retention.ms", d.retention_ms.to_string()),
        ("segment.bytes", d.segment_bytes.to_string()),
        ("segment.ms", d.segment_ms.to_string()),
    ]
}

fn broker_configs(ctx: &ShardContext) -> Vec<(&'static str, String)> {
    let c = &ctx.config;
    let d = &c.log_defaults;
    vec![
        (
            "advertised.listeners",
            format!("PLAINTEXT://{}:{}", c.advertise_host, c.advertise_port),
        ),
        (
            "auto.create.topics.enable",
            c.auto_create_topics.to_string(),
        ),
        ("broker.id", c.node_id.to_string()),
        ("default.replication.factor", "1".into()),
        ("listeners", format!("PLAINTEXT://{}", c.listen)),
        ("log.retention.bytes", d.retention_bytes.to_string()),
        ("log.retention.ms", d.retention_ms.to_string()),
        ("log.roll.ms", d.segment_ms.to_string()),
        ("log.segment.bytes", d.segment_bytes.to_string()),
        ("message.max.bytes", d.max_batch_bytes.to_string()),
        ("min.insync.replicas", "1".into()),
        ("num.partitions", c.default_partitions.to_string()),
        ("socket.request.max.bytes", c.max_request_bytes.to_string()),
    ]
}

pub async fn describe(
    ctx: Rc<ShardContext>,
    _version: i16,
    request: DescribeConfigsRequest,
) -> DescribeConfigsResponse {
    let snapshot = ctx.snapshot();
    let results = request
        .resources
        .into_iter()
        .map(|resource| {
            let name = resource.resource_name.to_string();
            let wanted = |key: &str| {
                resource
                    .configuration_keys
                    .as_ref()
                    .is_none_or(|keys| keys.iter().any(|k| k.as_str() == key))
            };
            let result = DescribeConfigsResult::default()
                .with_resource_type(resource.resource_type)
                .with_resource_name(resource.resource_name.clone());
            let entries: Vec<(&str, String, i8, bool)> = match resource.resource_type {
                RESOURCE_TOPIC => match snapshot.topic(&name) {
                    Some(topic) => topic_defaults(&ctx)
                        .into_iter()
                        .map(|(k, default)| match topic.configs.get(k) {
                            Some(v) => (k, v.clone(), SOURCE_DYNAMIC_TOPIC, false),
                            None => (k, default, SOURCE_DEFAULT, false),
                        })
                        .collect(),
                    None => return result.with_error_code(codes::UNKNOWN_TOPIC_OR_PARTITION),
                },
                RESOURCE_BROKER if name.is_empty() || name == ctx.config.node_id.to_string() => {
                    broker_configs(&ctx)
                        .into_iter()
                        .map(|(k, v)| (k, v, SOURCE_STATIC_BROKER, true))
                        .collect()
                }
                RESOURCE_BROKER => return result.with_error_code(codes::INVALID_REQUEST),
                _ => return result.with_error_code(codes::INVALID_REQUEST),
            };
            let configs = entries
                .into_iter()
                .filter(|(k, ..)| wanted(k))
                .map(|(k, v, source, read_only)| {
                    DescribeConfigsResourceResult::default()
                        .with_name(StrBytes::from_static_str(k))
                        .with_value(Some(StrBytes::from_string(v)))
                        .with_read_only(read_only)
                        .with_config_source(source)
                })
                .collect();
            result.with_configs(configs)
        })
        .collect();
    DescribeConfigsResponse::default().with_results(results)
}
