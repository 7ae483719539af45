//! DescribeConfigs (read-only for now): topic configs (the topic's own values over the broker defaults) and the
//! broker's configs, with their sources.

use std::rc::Rc;

use kafka_protocol::messages::describe_configs_request::DescribeConfigsRequest;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResponse, DescribeConfigsResult,
};
use kafka_protocol::protocol::StrBytes;

use pinlog_engine::{CleanupPolicy, LogConfig, TimestampType};

use crate::codes;
use crate::context::ShardContext;

const RESOURCE_TOPIC: i8 = 2;
const RESOURCE_BROKER: i8 = 4;
const SOURCE_DYNAMIC_TOPIC: i8 = 1;
const SOURCE_STATIC_BROKER: i8 = 4;
const SOURCE_DEFAULT: i8 = 5;

/// Applies one topic config to a partition's log settings. The same function validates CreateTopics configs
/// (on a scratch copy) and builds a partition's `LogConfig`, so what is accepted is exactly what takes effect.
/// The error says what is wrong (answered as INVALID_CONFIG).
pub fn apply_topic_config(cfg: &mut LogConfig, key: &str, value: &str) -> Result<(), String> {
    let int = || {
        value
            .parse::<i64>()
            .map_err(|_| format!("{key} = {value:?} is not a number"))
    };
    let positive = || {
        int().and_then(|v| {
            if v > 0 {
                Ok(v)
            } else {
                Err(format!("{key} = {v} must be > 0"))
            }
        })
    };
    match key {
        "retention.ms" => cfg.retention_ms = int()?,
        "retention.bytes" => cfg.retention_bytes = int()?,
        "segment.bytes" => cfg.segment_bytes = positive()? as u64,
        "segment.ms" => cfg.segment_ms = positive()? as u64,
        "max.message.bytes" => cfg.max_batch_bytes = positive()? as usize,
        "delete.retention.ms" => cfg.delete_retention_ms = int()?,
        "producer.id.expiration.ms" => cfg.producer_id_expiration_ms = positive()?,
        "min.cleanable.dirty.ratio" => {
            cfg.min_cleanable_dirty_ratio = value
                .parse::<f64>()
                .ok()
                .filter(|r| (0.0..=1.0).contains(r))
                .ok_or_else(|| format!("{key} = {value:?} must be a number from 0 to 1"))?
        }
        "message.timestamp.type" => {
            cfg.timestamp_type = match value {
                "CreateTime" => TimestampType::CreateTime,
                "LogAppendTime" => TimestampType::LogAppendTime,
                _ => {
                    return Err(format!(
                        "{key} = {value:?} must be CreateTime or LogAppendTime"
                    ))
                }
            }
        }
        "cleanup.policy" => {
            cfg.cleanup_policy = match value.replace(' ', "").as_str() {
                "delete" => CleanupPolicy::Delete,
                "compact" => CleanupPolicy::Compact,
                "compact,delete" | "delete,compact" => CleanupPolicy::CompactDelete,
                _ => {
                    return Err(format!(
                        "{key} = {value:?} must be delete, compact or compact,delete"
                    ))
                }
            }
        }
        // Accepted and shown for tools; on one node batches pass through as produced and there is one replica.
        "compression.type" => {
            if !["producer", "uncompressed", "gzip", "snappy", "lz4", "zstd"].contains(&value) {
                return Err(format!("{key} = {value:?} is not a known codec"));
            }
        }
        "min.insync.replicas" => {
            positive()?;
        }
        _ => return Err(format!("unknown topic config {key}")),
    }
    Ok(())
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
        ("delete.retention.ms", d.delete_retention_ms.to_string()),
        (
            "min.cleanable.dirty.ratio",
            d.min_cleanable_dirty_ratio.to_string(),
        ),
        (
            "producer.id.expiration.ms",
            d.producer_id_expiration_ms.to_string(),
        ),
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
