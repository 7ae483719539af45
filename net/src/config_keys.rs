//! The topic config keys pinlog knows, their broker-level synonyms and how each one changes a partition's
//! `LogConfig`. One table serves CreateTopics, AlterConfigs, IncrementalAlterConfigs, DescribeConfigs and the
//! shards applying configs, so what is accepted is exactly what takes effect and what is shown.
//!
//! A partition's settings are layered like Kafka's: the static broker config (`pinlog.toml`), then the dynamic
//! broker configs (the broker synonyms below, set through AlterConfigs on the broker and kept in the metadata
//! raft group), then the topic's own configs.

use std::collections::BTreeMap;

use pinlog_engine::{CleanupPolicy, FlushPolicy, LogConfig, TimestampType};

/// Kafka's `ConfigType` as DescribeConfigs v3+ reports it.
pub mod config_type {
    pub const BOOLEAN: i8 = 1;
    pub const STRING: i8 = 2;
    pub const INT: i8 = 3;
    pub const LONG: i8 = 5;
    pub const DOUBLE: i8 = 6;
    pub const LIST: i8 = 7;
}

pub struct TopicKey {
    pub name: &'static str,
    /// The broker config that sets the default for every topic (and is dynamically alterable).
    pub broker_synonym: &'static str,
    pub config_type: i8,
}

const fn key(name: &'static str, broker_synonym: &'static str, config_type: i8) -> TopicKey {
    TopicKey {
        name,
        broker_synonym,
        config_type,
    }
}

/// Sorted by name. `flush.ms` sorts after `flush.messages`, so when both are set, `flush.ms` decides.
pub const TOPIC_KEYS: &[TopicKey] = &[
    key("cleanup.policy", "log.cleanup.policy", config_type::LIST),
    key("compression.type", "compression.type", config_type::STRING),
    key(
        "delete.retention.ms",
        "log.cleaner.delete.retention.ms",
        config_type::LONG,
    ),
    key(
        "flush.messages",
        "log.flush.interval.messages",
        config_type::LONG,
    ),
    key("flush.ms", "log.flush.interval.ms", config_type::LONG),
    key("max.message.bytes", "message.max.bytes", config_type::INT),
    key(
        "message.timestamp.type",
        "log.message.timestamp.type",
        config_type::STRING,
    ),
    key(
        "min.cleanable.dirty.ratio",
        "log.cleaner.min.cleanable.ratio",
        config_type::DOUBLE,
    ),
    key(
        "min.insync.replicas",
        "min.insync.replicas",
        config_type::INT,
    ),
    key(
        "producer.id.expiration.ms",
        "producer.id.expiration.ms",
        config_type::INT,
    ),
    key("retention.bytes", "log.retention.bytes", config_type::LONG),
    key("retention.ms", "log.retention.ms", config_type::LONG),
    key("segment.bytes", "log.segment.bytes", config_type::INT),
    key("segment.ms", "log.roll.ms", config_type::LONG),
];

pub fn topic_key(name: &str) -> Option<&'static TopicKey> {
    TOPIC_KEYS.iter().find(|k| k.name == name)
}

/// The topic key a dynamic broker config stands for (`log.retention.ms` → `retention.ms`).
pub fn topic_key_of_broker(broker_key: &str) -> Option<&'static TopicKey> {
    TOPIC_KEYS.iter().find(|k| k.broker_synonym == broker_key)
}

/// Applies one topic config to a partition's log settings. The error says what is wrong (answered as
/// INVALID_CONFIG).
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
            let list = policy_list(value);
            cfg.cleanup_policy = match (list.contains(&"compact"), list.contains(&"delete")) {
                _ if list.iter().any(|p| !matches!(*p, "compact" | "delete"))
                    || list.is_empty() =>
                {
                    return Err(format!(
                        "{key} = {value:?} must be delete, compact or compact,delete"
                    ))
                }
                (true, true) => CleanupPolicy::CompactDelete,
                (true, false) => CleanupPolicy::Compact,
                _ => CleanupPolicy::Delete,
            }
        }
        // Kafka forces an fdatasync every `flush.messages` records; pinlog flushes by time or before every
        // acknowledgement, so only the two ends of the range mean something here.
        "flush.messages" => {
            cfg.flush = match int()? {
                1 => FlushPolicy::Durable,
                i64::MAX => FlushPolicy::Never,
                _ => {
                    return Err(format!(
                "{key} = {value:?}: pinlog supports 1 (fdatasync before every acknowledgement) or \
                         {} (never force one); use flush.ms for a time bound",
                i64::MAX
            ))
                }
            }
        }
        "flush.ms" => {
            cfg.flush = match int()? {
                0 => FlushPolicy::Durable,
                i64::MAX => FlushPolicy::Never,
                ms if ms > 0 => FlushPolicy::Interval {
                    interval_ms: ms as u64,
                },
                _ => return Err(format!("{key} = {value:?} must be >= 0")),
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

/// The items of a list config (`cleanup.policy = "compact, delete"`), trimmed, empties dropped.
pub fn policy_list(value: &str) -> Vec<&str> {
    value
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .collect()
}

/// A partition's settings: static defaults, then the dynamic broker configs, then the topic's configs. Every
/// value was validated when it was set; one that no longer parses is logged and skipped.
pub fn layered_log_config(
    defaults: &LogConfig,
    broker_configs: &BTreeMap<String, String>,
    topic_configs: &BTreeMap<String, String>,
) -> LogConfig {
    let mut cfg = *defaults;
    let broker = broker_configs
        .iter()
        .filter_map(|(k, v)| Some((topic_key_of_broker(k)?.name, v)));
    for (key, value) in broker.chain(topic_configs.iter().map(|(k, v)| (k.as_str(), v))) {
        if let Err(err) = apply_topic_config(&mut cfg, key, value) {
            tracing::warn!(%err, "config ignored");
        }
    }
    cfg
}

/// The static default of a topic key, as the static broker config (or the engine default) sets it.
pub fn static_value(defaults: &LogConfig, key: &TopicKey) -> String {
    let (flush_messages, flush_ms) = match defaults.flush {
        FlushPolicy::Durable => (1, 0),
        FlushPolicy::Interval { interval_ms } => (i64::MAX, interval_ms as i64),
        FlushPolicy::Never => (i64::MAX, i64::MAX),
    };
    match key.name {
        "cleanup.policy" => match defaults.cleanup_policy {
            CleanupPolicy::Delete => "delete".into(),
            CleanupPolicy::Compact => "compact".into(),
            CleanupPolicy::CompactDelete => "compact,delete".into(),
        },
        "compression.type" => "producer".into(),
        "delete.retention.ms" => defaults.delete_retention_ms.to_string(),
        "flush.messages" => flush_messages.to_string(),
        "flush.ms" => flush_ms.to_string(),
        "max.message.bytes" => defaults.max_batch_bytes.to_string(),
        "message.timestamp.type" => match defaults.timestamp_type {
            TimestampType::CreateTime => "CreateTime".into(),
            TimestampType::LogAppendTime => "LogAppendTime".into(),
        },
        "min.cleanable.dirty.ratio" => defaults.min_cleanable_dirty_ratio.to_string(),
        "min.insync.replicas" => "1".into(),
        "producer.id.expiration.ms" => defaults.producer_id_expiration_ms.to_string(),
        "retention.bytes" => defaults.retention_bytes.to_string(),
        "retention.ms" => defaults.retention_ms.to_string(),
        "segment.bytes" => defaults.segment_bytes.to_string(),
        "segment.ms" => defaults.segment_ms.to_string(),
        other => unreachable!("topic key {other} has no static value"),
    }
}

/// Whether `pinlog.toml` sets the key (a STATIC_BROKER_CONFIG) rather than a built-in default.
pub fn set_by_static_config(key: &TopicKey) -> bool {
    matches!(
        key.name,
        "flush.messages"
            | "flush.ms"
            | "max.message.bytes"
            | "retention.bytes"
            | "retention.ms"
            | "segment.bytes"
            | "segment.ms"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn every_key_has_a_static_value_that_applies_cleanly() {
        let defaults = LogConfig::default();
        for (i, key) in TOPIC_KEYS.iter().enumerate() {
            assert!(i == 0 || TOPIC_KEYS[i - 1].name < key.name, "sorted");
            let mut cfg = defaults;
            let value = static_value(&defaults, key);
            apply_topic_config(&mut cfg, key.name, &value).expect("static value is valid");
            assert_eq!(cfg, defaults, "{} = {value} round-trips", key.name);
            assert_eq!(
                topic_key_of_broker(key.broker_synonym).map(|k| k.name),
                Some(key.name)
            );
        }
    }

    #[test]
    fn layers_apply_static_then_dynamic_broker_then_topic() {
        let defaults = LogConfig::default();
        let broker = map(&[
            ("log.retention.ms", "1000"),
            ("message.max.bytes", "2000"),
            ("log.flush.interval.ms", "50"),
            ("not.a.synonym", "x"),
        ]);
        let topic = map(&[("retention.ms", "3000")]);
        let cfg = layered_log_config(&defaults, &broker, &topic);
        assert_eq!(cfg.retention_ms, 3000, "the topic wins");
        assert_eq!(
            cfg.max_batch_bytes, 2000,
            "the dynamic broker config beats static"
        );
        assert_eq!(cfg.flush, FlushPolicy::Interval { interval_ms: 50 });
        assert_eq!(cfg.segment_bytes, defaults.segment_bytes);
    }

    #[test]
    fn flush_keys_map_to_the_flush_policy() {
        let apply = |pairs: &[(&str, &str)]| {
            layered_log_config(&LogConfig::default(), &BTreeMap::new(), &map(pairs)).flush
        };
        assert_eq!(apply(&[("flush.messages", "1")]), FlushPolicy::Durable);
        assert_eq!(
            apply(&[("flush.messages", &i64::MAX.to_string())]),
            FlushPolicy::Never
        );
        assert_eq!(
            apply(&[("flush.messages", "1"), ("flush.ms", "250")]),
            FlushPolicy::Interval { interval_ms: 250 },
            "flush.ms decides when both are set"
        );
        let mut cfg = LogConfig::default();
        assert!(apply_topic_config(&mut cfg, "flush.messages", "100").is_err());
        assert!(apply_topic_config(&mut cfg, "flush.ms", "-1").is_err());
    }

    #[test]
    fn cleanup_policy_is_a_list_in_any_order() {
        let mut cfg = LogConfig::default();
        apply_topic_config(&mut cfg, "cleanup.policy", " delete , compact").unwrap();
        assert_eq!(cfg.cleanup_policy, CleanupPolicy::CompactDelete);
        for bad in ["", "compact,nope", "nope"] {
            assert!(
                apply_topic_config(&mut cfg, "cleanup.policy", bad).is_err(),
                "{bad:?}"
            );
        }
        assert!(apply_topic_config(&mut cfg, "retention.ms", "soon").is_err());
        assert!(apply_topic_config(&mut cfg, "no.such.key", "1").is_err());
    }
}
