//! DescribeConfigs: a topic's configs (its own values over the dynamic broker configs over the static ones) and
//! the broker's, each with its source, read-only flag, type and, when asked, its synonyms.

use std::collections::BTreeMap;
use std::rc::Rc;

use kafka_protocol::messages::describe_configs_request::DescribeConfigsRequest;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResponse, DescribeConfigsResult,
    DescribeConfigsSynonym,
};
use kafka_protocol::protocol::StrBytes;

use crate::codes;
use crate::config_keys::{self, config_type, TopicKey, TOPIC_KEYS};
use crate::context::ShardContext;

pub const RESOURCE_TOPIC: i8 = 2;
pub const RESOURCE_BROKER: i8 = 4;

/// Kafka's `ConfigSource`.
mod source {
    pub const DYNAMIC_TOPIC_CONFIG: i8 = 1;
    pub const DYNAMIC_BROKER_CONFIG: i8 = 2;
    pub const STATIC_BROKER_CONFIG: i8 = 4;
    pub const DEFAULT_CONFIG: i8 = 5;
}

/// One value of a config with where it came from; a config's synonyms are its values at every layer, the
/// effective one first.
struct Layered {
    name: String,
    value: String,
    source: i8,
}

/// A config as DescribeConfigs shows it.
struct Shown {
    name: String,
    read_only: bool,
    config_type: i8,
    /// Effective value first.
    layers: Vec<Layered>,
}

/// Whether a broker resource name means this broker: its node id, or "" (Kafka's cluster-wide default).
pub fn is_this_broker(ctx: &ShardContext, name: &str) -> bool {
    name.is_empty() || name == ctx.config.node_id.to_string()
}

/// The layers of a topic key below the topic: the dynamic broker config, then the static one.
fn broker_layers(
    ctx: &ShardContext,
    broker_configs: &BTreeMap<String, String>,
    key: &TopicKey,
    name: &str,
) -> Vec<Layered> {
    let mut layers = Vec::with_capacity(2);
    if let Some(value) = broker_configs.get(key.broker_synonym) {
        layers.push(Layered {
            name: name.to_owned(),
            value: value.clone(),
            source: source::DYNAMIC_BROKER_CONFIG,
        });
    }
    layers.push(Layered {
        name: name.to_owned(),
        value: config_keys::static_value(&ctx.config.log_defaults, key),
        source: if config_keys::set_by_static_config(key) {
            source::STATIC_BROKER_CONFIG
        } else {
            source::DEFAULT_CONFIG
        },
    });
    layers
}

fn topic_configs(
    ctx: &ShardContext,
    broker_configs: &BTreeMap<String, String>,
    topic_configs: &BTreeMap<String, String>,
) -> Vec<Shown> {
    TOPIC_KEYS
        .iter()
        .map(|key| {
            let mut layers = Vec::with_capacity(3);
            if let Some(value) = topic_configs.get(key.name) {
                layers.push(Layered {
                    name: key.name.to_owned(),
                    value: value.clone(),
                    source: source::DYNAMIC_TOPIC_CONFIG,
                });
            }
            layers.extend(broker_layers(ctx, broker_configs, key, key.broker_synonym));
            Shown {
                name: key.name.to_owned(),
                read_only: false,
                config_type: key.config_type,
                layers,
            }
        })
        .collect()
}

/// Broker configs that only a restart with a new `pinlog.toml` changes.
fn static_broker_configs(ctx: &ShardContext) -> Vec<(&'static str, String, i8, i8)> {
    use config_type::{BOOLEAN, INT, LIST, LONG, STRING};
    let c = &ctx.config;
    let fixed = source::DEFAULT_CONFIG;
    let file = source::STATIC_BROKER_CONFIG;
    vec![
        (
            "advertised.listeners",
            format!("PLAINTEXT://{}:{}", c.advertise_host, c.advertise_port),
            file,
            LIST,
        ),
        (
            "auto.create.topics.enable",
            c.auto_create_topics.to_string(),
            file,
            BOOLEAN,
        ),
        ("broker.id", c.node_id.to_string(), file, INT),
        ("default.replication.factor", "1".into(), fixed, INT),
        (
            "group.initial.rebalance.delay.ms",
            c.group_initial_rebalance_delay.as_millis().to_string(),
            file,
            INT,
        ),
        (
            "group.max.session.timeout.ms",
            c.group_max_session_timeout.as_millis().to_string(),
            file,
            INT,
        ),
        (
            "group.min.session.timeout.ms",
            c.group_min_session_timeout.as_millis().to_string(),
            file,
            INT,
        ),
        ("listeners", format!("PLAINTEXT://{}", c.listen), file, LIST),
        ("log.dirs", c.data_dir.display().to_string(), file, STRING),
        (
            "log.retention.check.interval.ms",
            c.retention_check_interval.as_millis().to_string(),
            file,
            LONG,
        ),
        ("node.id", c.node_id.to_string(), file, INT),
        (
            "num.partitions",
            c.default_partitions.to_string(),
            file,
            INT,
        ),
        (
            "offsets.topic.num.partitions",
            c.offsets_topic_partitions.to_string(),
            file,
            INT,
        ),
        ("offsets.topic.replication.factor", "1".into(), fixed, INT),
        (
            "socket.request.max.bytes",
            c.max_request_bytes.to_string(),
            file,
            INT,
        ),
        (
            "transaction.state.log.replication.factor",
            "1".into(),
            fixed,
            INT,
        ),
    ]
}

fn broker_configs(ctx: &ShardContext, dynamic: &BTreeMap<String, String>) -> Vec<Shown> {
    let mut shown: Vec<Shown> = static_broker_configs(ctx)
        .into_iter()
        .map(|(name, value, source, config_type)| Shown {
            name: name.to_owned(),
            read_only: true,
            config_type,
            layers: vec![Layered {
                name: name.to_owned(),
                value,
                source,
            }],
        })
        .collect();
    shown.extend(TOPIC_KEYS.iter().map(|key| Shown {
        name: key.broker_synonym.to_owned(),
        read_only: false,
        config_type: key.config_type,
        layers: broker_layers(ctx, dynamic, key, key.broker_synonym),
    }));
    shown.sort_by(|a, b| a.name.cmp(&b.name));
    shown
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
            let result = DescribeConfigsResult::default()
                .with_resource_type(resource.resource_type)
                .with_resource_name(resource.resource_name.clone());
            let shown = match resource.resource_type {
                RESOURCE_TOPIC => match snapshot.topic(&name) {
                    Some(topic) => topic_configs(&ctx, &snapshot.broker_configs, &topic.configs),
                    None => {
                        return result
                            .with_error_code(codes::UNKNOWN_TOPIC_OR_PARTITION)
                            .with_error_message(Some(StrBytes::from_string(format!(
                                "topic '{name}' does not exist"
                            ))))
                    }
                },
                RESOURCE_BROKER if is_this_broker(&ctx, &name) => {
                    broker_configs(&ctx, &snapshot.broker_configs)
                }
                RESOURCE_BROKER => {
                    return result
                        .with_error_code(codes::INVALID_REQUEST)
                        .with_error_message(Some(StrBytes::from_string(format!(
                            "broker '{name}' is not this broker ({})",
                            ctx.config.node_id
                        ))))
                }
                other => {
                    return result
                        .with_error_code(codes::INVALID_REQUEST)
                        .with_error_message(Some(StrBytes::from_string(format!(
                            "resource type {other} is not supported"
                        ))))
                }
            };
            let wanted = |key: &str| {
                resource
                    .configuration_keys
                    .as_ref()
                    .is_none_or(|keys| keys.iter().any(|k| k.as_str() == key))
            };
            let configs = shown
                .into_iter()
                .filter(|s| wanted(&s.name))
                .map(|s| to_result(s, request.include_synonyms))
                .collect();
            result.with_configs(configs)
        })
        .collect();
    DescribeConfigsResponse::default().with_results(results)
}

fn to_result(shown: Shown, include_synonyms: bool) -> DescribeConfigsResourceResult {
    let effective = &shown.layers[0];
    let mut result = DescribeConfigsResourceResult::default()
        .with_name(StrBytes::from_string(shown.name.clone()))
        .with_value(Some(StrBytes::from_string(effective.value.clone())))
        .with_read_only(shown.read_only)
        .with_config_source(effective.source)
        .with_config_type(shown.config_type);
    if include_synonyms {
        result.synonyms = shown
            .layers
            .into_iter()
            .map(|l| {
                DescribeConfigsSynonym::default()
                    .with_name(StrBytes::from_string(l.name))
                    .with_value(Some(StrBytes::from_string(l.value)))
                    .with_source(l.source)
            })
            .collect();
    }
    result
}
