//! CreateTopics, DeleteTopics and auto-creation: each request is ONE metadata proposal (never one per topic or
//! partition), awaited with a deadline that maps to REQUEST_TIMED_OUT.

use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::Duration;

use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreateTopicsRequest};
use kafka_protocol::messages::create_topics_response::{
    CreatableTopicResult, CreateTopicsResponse,
};
use kafka_protocol::messages::delete_topics_request::DeleteTopicsRequest;
use kafka_protocol::messages::delete_topics_response::{
    DeletableTopicResult, DeleteTopicsResponse,
};
use kafka_protocol::messages::TopicName;
use kafka_protocol::protocol::StrBytes;
use pinlog_raft_shard::{CommandOutcome, MetadataCommand, NewTopic, ProposeError, TopicOutcome};

use crate::codes;
use crate::context::ShardContext;

pub async fn create(ctx: Rc<ShardContext>, request: CreateTopicsRequest) -> CreateTopicsResponse {
    let mut rejected = Vec::new();
    let mut topics = Vec::new();
    for topic in request.topics {
        match new_topic(&ctx, topic) {
            Ok(t) => topics.push(t),
            Err(outcome) => rejected.push(outcome),
        }
    }
    let timeout = bounded_timeout(&ctx, request.timeout_ms);
    let names: Vec<String> = topics.iter().map(|t| t.name.clone()).collect();
    let mut outcomes = if topics.is_empty() {
        Vec::new()
    } else {
        let command = MetadataCommand::CreateTopics {
            topics,
            validate_only: request.validate_only,
        };
        topic_outcomes(ctx.metadata.propose(command, timeout).await, &names)
    };
    outcomes.extend(rejected);
    for o in outcomes.iter().filter(|o| o.error_code == codes::NONE) {
        tracing::info!(topic = %o.name, partitions = o.partitions, validate_only = request.validate_only, "topic created");
    }
    let results = outcomes
        .into_iter()
        .map(|o| {
            CreatableTopicResult::default()
                .with_name(TopicName(StrBytes::from_string(o.name)))
                .with_topic_id(uuid::Uuid::from_bytes(o.topic_id))
                .with_error_code(o.error_code)
                .with_error_message(o.message.map(StrBytes::from_string))
                .with_num_partitions(o.partitions)
                .with_replication_factor(1)
        })
        .collect();
    CreateTopicsResponse::default().with_topics(results)
}

/// Checks what the proposal cannot (configs) and fills in defaults (-1 partitions / replication factor).
fn new_topic(ctx: &ShardContext, topic: CreatableTopic) -> Result<NewTopic, TopicOutcome> {
    let name = topic.name.0.to_string();
    let fail = |error_code, message: String| TopicOutcome {
        name: name.clone(),
        error_code,
        message: Some(message),
        topic_id: [0; 16],
        partitions: -1,
    };
    if !topic.assignments.is_empty() {
        return Err(fail(
            codes::INVALID_REQUEST,
            "manual replica assignment is not supported".into(),
        ));
    }
    let mut configs = BTreeMap::new();
    for c in topic.configs {
        let key = c.name.to_string();
        let value = c.value.map(|v| v.to_string()).unwrap_or_default();
        let mut scratch = ctx.config.log_defaults;
        crate::config_keys::apply_topic_config(&mut scratch, &key, &value)
            .map_err(|m| fail(codes::INVALID_CONFIG, m))?;
        configs.insert(key, value);
    }
    let partitions = if topic.num_partitions == -1 {
        ctx.config.default_partitions
    } else {
        topic.num_partitions
    };
    Ok(NewTopic {
        name,
        partitions,
        replication_factor: topic.replication_factor,
        configs,
    })
}

/// Creates `names` with the default partition count (Metadata or Produce for an unknown topic).
pub async fn auto_create(ctx: &ShardContext, names: Vec<String>) {
    let topics = names
        .iter()
        .map(|name| NewTopic {
            name: name.clone(),
            partitions: ctx.config.default_partitions,
            replication_factor: -1,
            configs: BTreeMap::new(),
        })
        .collect();
    let command = MetadataCommand::CreateTopics {
        topics,
        validate_only: false,
    };
    for o in topic_outcomes(
        ctx.metadata
            .propose(command, ctx.config.request_timeout)
            .await,
        &names,
    ) {
        match o.error_code {
            codes::NONE => {
                tracing::info!(topic = %o.name, partitions = o.partitions, "topic auto-created")
            }
            // Two clients racing to create the same topic is normal.
            36 => {}
            code => tracing::debug!(topic = %o.name, code, "auto-creation refused"),
        }
    }
}

pub async fn delete(ctx: Rc<ShardContext>, request: DeleteTopicsRequest) -> DeleteTopicsResponse {
    let mut names: Vec<String> = request
        .topic_names
        .iter()
        .map(|n| n.0.to_string())
        .collect();
    let snapshot = ctx.snapshot();
    let mut unknown_ids = Vec::new();
    for state in &request.topics {
        match (
            &state.name,
            snapshot.topic_by_id(*state.topic_id.as_bytes()),
        ) {
            (Some(name), _) => names.push(name.0.to_string()),
            (None, Some(topic)) => names.push(topic.name.clone()),
            (None, None) => unknown_ids.push(state.topic_id),
        }
    }
    let timeout = bounded_timeout(&ctx, request.timeout_ms);
    let outcomes = if names.is_empty() {
        Vec::new()
    } else {
        topic_outcomes(
            ctx.metadata
                .propose(
                    MetadataCommand::DeleteTopics {
                        names: names.clone(),
                    },
                    timeout,
                )
                .await,
            &names,
        )
    };
    let mut responses: Vec<DeletableTopicResult> = outcomes
        .into_iter()
        .map(|o| {
            if o.error_code == codes::NONE {
                tracing::info!(topic = %o.name, "topic deleted");
            }
            let id = snapshot
                .topic(&o.name)
                .map(|t| t.topic_id)
                .unwrap_or([0; 16]);
            DeletableTopicResult::default()
                .with_name(Some(TopicName(StrBytes::from_string(o.name))))
                .with_topic_id(uuid::Uuid::from_bytes(id))
                .with_error_code(o.error_code)
                .with_error_message(o.message.map(StrBytes::from_string))
        })
        .collect();
    responses.extend(unknown_ids.into_iter().map(|id| {
        DeletableTopicResult::default()
            .with_topic_id(id)
            .with_error_code(100) // UNKNOWN_TOPIC_ID
    }));
    DeleteTopicsResponse::default().with_responses(responses)
}

/// A request's own timeout, capped by the broker's request timeout; 0 or negative means the broker's.
pub(crate) fn bounded_timeout(ctx: &ShardContext, timeout_ms: i32) -> Duration {
    let broker = ctx.config.request_timeout;
    if timeout_ms <= 0 {
        broker
    } else {
        broker.min(Duration::from_millis(timeout_ms as u64))
    }
}

/// Per-topic outcomes of a proposal; a proposal that failed as a whole gives every topic the same error.
pub(crate) fn topic_outcomes(
    result: Result<CommandOutcome, ProposeError>,
    names: &[String],
) -> Vec<TopicOutcome> {
    let (error_code, message) = match result {
        Ok(CommandOutcome::Topics(outcomes)) => return outcomes,
        Ok(other) => (
            codes::UNKNOWN_SERVER_ERROR,
            format!("unexpected outcome {other:?}"),
        ),
        Err(ProposeError::Timeout(..)) => (
            codes::REQUEST_TIMED_OUT,
            "metadata change timed out".to_owned(),
        ),
        Err(err) => (codes::NOT_CONTROLLER, err.to_string()),
    };
    names
        .iter()
        .map(|name| TopicOutcome {
            name: name.clone(),
            error_code,
            message: Some(message.clone()),
            topic_id: [0; 16],
            partitions: -1,
        })
        .collect()
}
