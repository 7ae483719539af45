//! AlterConfigs and IncrementalAlterConfigs for topics and for the broker's dynamic configs.
//!
//! Both become ONE metadata proposal per request (`MetadataCommand::AlterConfigs`), so a change is persisted in the
//! raft log, survives a restart and reaches every shard through the metadata snapshot, which re-applies the
//! partitions' settings at once (`runtime.rs`). Values are checked here with the same function that applies them
//! (`config_keys::apply_topic_config`), so what is accepted is what takes effect. APPEND / SUBTRACT are resolved
//! here against the current value: two concurrent appends to one list may lose one, as a read-modify-write.

use std::collections::BTreeMap;
use std::rc::Rc;

use kafka_protocol::messages::alter_configs_request::AlterConfigsRequest;
use kafka_protocol::messages::alter_configs_response::{self, AlterConfigsResponse};
use kafka_protocol::messages::incremental_alter_configs_request::IncrementalAlterConfigsRequest;
use kafka_protocol::messages::incremental_alter_configs_response::{
    self, IncrementalAlterConfigsResponse,
};
use kafka_protocol::protocol::StrBytes;
use pinlog_raft_shard::{
    ConfigChange, ConfigOp, ConfigResource, MetadataCommand, MetadataSnapshot,
};

use super::configs::{is_this_broker, RESOURCE_BROKER, RESOURCE_TOPIC};
use super::topics::topic_outcomes;
use crate::codes;
use crate::config_keys::{
    self, apply_topic_config, config_type, policy_list, topic_key, topic_key_of_broker,
};
use crate::context::ShardContext;

/// IncrementalAlterConfigs operations.
mod op {
    pub const SET: i8 = 0;
    pub const DELETE: i8 = 1;
    pub const APPEND: i8 = 2;
    pub const SUBTRACT: i8 = 3;
}

/// One resource of either request, before checking.
struct Requested {
    resource_type: i8,
    resource_name: String,
    /// AlterConfigs: the given configs are the whole set.
    replace_all: bool,
    /// (key, operation, value)
    configs: Vec<(String, i8, Option<String>)>,
}

/// A resource's change, or the Kafka error code and message that refuse it.
type Checked = Result<ConfigChange, (i16, String)>;

/// The answer for one resource, in request order.
struct Answer {
    resource_type: i8,
    resource_name: String,
    error_code: i16,
    message: Option<String>,
}

pub async fn alter(ctx: Rc<ShardContext>, request: AlterConfigsRequest) -> AlterConfigsResponse {
    let requested = request
        .resources
        .into_iter()
        .map(|r| Requested {
            resource_type: r.resource_type,
            resource_name: r.resource_name.to_string(),
            replace_all: true,
            configs: r
                .configs
                .into_iter()
                .map(|c| (c.name.to_string(), op::SET, c.value.map(|v| v.to_string())))
                .collect(),
        })
        .collect();
    let responses = run(&ctx, requested, request.validate_only)
        .await
        .into_iter()
        .map(|a| {
            alter_configs_response::AlterConfigsResourceResponse::default()
                .with_error_code(a.error_code)
                .with_error_message(a.message.map(StrBytes::from_string))
                .with_resource_type(a.resource_type)
                .with_resource_name(StrBytes::from_string(a.resource_name))
        })
        .collect();
    AlterConfigsResponse::default().with_responses(responses)
}

pub async fn incremental_alter(
    ctx: Rc<ShardContext>,
    request: IncrementalAlterConfigsRequest,
) -> IncrementalAlterConfigsResponse {
    let requested = request
        .resources
        .into_iter()
        .map(|r| Requested {
            resource_type: r.resource_type,
            resource_name: r.resource_name.to_string(),
            replace_all: false,
            configs: r
                .configs
                .into_iter()
                .map(|c| {
                    (
                        c.name.to_string(),
                        c.config_operation,
                        c.value.map(|v| v.to_string()),
                    )
                })
                .collect(),
        })
        .collect();
    let responses = run(&ctx, requested, request.validate_only)
        .await
        .into_iter()
        .map(|a| {
            incremental_alter_configs_response::AlterConfigsResourceResponse::default()
                .with_error_code(a.error_code)
                .with_error_message(a.message.map(StrBytes::from_string))
                .with_resource_type(a.resource_type)
                .with_resource_name(StrBytes::from_string(a.resource_name))
        })
        .collect();
    IncrementalAlterConfigsResponse::default().with_responses(responses)
}

/// Checks every resource, proposes the valid ones as one command and answers each in request order.
async fn run(ctx: &ShardContext, requested: Vec<Requested>, validate_only: bool) -> Vec<Answer> {
    let snapshot = ctx.snapshot();
    let checked: Vec<(Requested, Checked)> = requested
        .into_iter()
        .map(|r| {
            let change = check(ctx, &snapshot, &r);
            (r, change)
        })
        .collect();
    let changes: Vec<ConfigChange> = checked
        .iter()
        .filter_map(|(_, c)| c.as_ref().ok().cloned())
        .collect();
    let names: Vec<String> = changes.iter().map(|c| resource_name(&c.resource)).collect();
    let mut outcomes = if changes.is_empty() {
        Vec::new()
    } else {
        let command = MetadataCommand::AlterConfigs {
            changes,
            validate_only,
        };
        topic_outcomes(
            ctx.metadata
                .propose(command, ctx.config.request_timeout)
                .await,
            &names,
        )
    }
    .into_iter();
    checked
        .into_iter()
        .map(|(r, change)| {
            let (error_code, message) = match change {
                Err((code, message)) => (code, Some(message)),
                Ok(_) => match outcomes.next() {
                    Some(o) => (o.error_code, o.message),
                    None => (codes::UNKNOWN_SERVER_ERROR, Some("no outcome".to_owned())),
                },
            };
            if error_code == codes::NONE {
                tracing::info!(
                    resource_type = r.resource_type,
                    resource = %r.resource_name,
                    configs = ?r.configs.iter().map(|(k, ..)| k.as_str()).collect::<Vec<_>>(),
                    validate_only,
                    "configs altered"
                );
            }
            Answer {
                resource_type: r.resource_type,
                resource_name: r.resource_name,
                error_code,
                message,
            }
        })
        .collect()
}

fn resource_name(resource: &ConfigResource) -> String {
    match resource {
        ConfigResource::Topic(name) => name.clone(),
        ConfigResource::Broker => String::new(),
    }
}

/// The change a resource asks for, or the Kafka error that refuses it.
fn check(ctx: &ShardContext, snapshot: &MetadataSnapshot, requested: &Requested) -> Checked {
    let name = &requested.resource_name;
    let (resource, current): (ConfigResource, &BTreeMap<String, String>) =
        match requested.resource_type {
            RESOURCE_TOPIC => match snapshot.topic(name) {
                Some(topic) => (ConfigResource::Topic(name.clone()), &topic.configs),
                None => {
                    return Err((
                        codes::UNKNOWN_TOPIC_OR_PARTITION,
                        format!("topic '{name}' does not exist"),
                    ))
                }
            },
            RESOURCE_BROKER if is_this_broker(ctx, name) => {
                (ConfigResource::Broker, &snapshot.broker_configs)
            }
            RESOURCE_BROKER => {
                return Err((
                    codes::INVALID_REQUEST,
                    format!(
                        "broker '{name}' is not this broker ({})",
                        ctx.config.node_id
                    ),
                ))
            }
            other => {
                return Err((
                    codes::INVALID_REQUEST,
                    format!("resource type {other} is not supported"),
                ))
            }
        };
    let is_topic = matches!(resource, ConfigResource::Topic(_));
    let mut ops = Vec::with_capacity(requested.configs.len());
    for (key, operation, value) in &requested.configs {
        let invalid = |message: String| (codes::INVALID_CONFIG, message);
        let topic_key = if is_topic {
            topic_key(key).ok_or_else(|| invalid(format!("unknown topic config {key}")))?
        } else {
            topic_key_of_broker(key).ok_or_else(|| {
                invalid(format!(
                    "broker config {key} cannot be changed at run time (set it in pinlog.toml); the dynamic \
                     ones are the log defaults: {}",
                    config_keys::TOPIC_KEYS
                        .iter()
                        .map(|k| k.broker_synonym)
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
            })?
        };
        let new_value = match (*operation, value) {
            (op::DELETE, _) => None,
            (op::SET | op::APPEND | op::SUBTRACT, None) => {
                return Err((
                    codes::INVALID_REQUEST,
                    format!("a null value is not allowed for {key}"),
                ))
            }
            (op::SET, Some(v)) => Some(v.clone()),
            (op::APPEND | op::SUBTRACT, Some(_)) if topic_key.config_type != config_type::LIST => {
                return Err(invalid(format!(
                    "{key} is not a list: APPEND and SUBTRACT apply only to list configs"
                )))
            }
            (op::APPEND | op::SUBTRACT, Some(v)) => {
                // The value now: the resource's own, else (for a topic) the dynamic broker default, else static.
                let inherited = || {
                    is_topic
                        .then(|| snapshot.broker_configs.get(topic_key.broker_synonym))
                        .flatten()
                };
                let base = current
                    .get(key)
                    .or_else(inherited)
                    .cloned()
                    .unwrap_or_else(|| {
                        config_keys::static_value(&ctx.config.log_defaults, topic_key)
                    });
                let mut items: Vec<&str> = policy_list(&base);
                for item in policy_list(v) {
                    if *operation == op::APPEND && !items.contains(&item) {
                        items.push(item);
                    } else if *operation == op::SUBTRACT {
                        items.retain(|i| *i != item);
                    }
                }
                Some(items.join(","))
            }
            (other, _) => {
                return Err((
                    codes::INVALID_REQUEST,
                    format!("unknown config operation {other} for {key}"),
                ))
            }
        };
        if let Some(v) = &new_value {
            let mut scratch = ctx.config.log_defaults;
            apply_topic_config(&mut scratch, topic_key.name, v).map_err(invalid)?;
        }
        ops.push(ConfigOp {
            key: key.clone(),
            value: new_value,
        });
    }
    Ok(ConfigChange {
        resource,
        replace_all: requested.replace_all,
        ops,
    })
}
