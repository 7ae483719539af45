//! CreatePartitions: grows topics, ONE metadata proposal per request. The new partitions are placed like a new
//! topic's and every shard opens those it owns when the metadata change reaches it (`runtime.rs`).

use std::rc::Rc;

use kafka_protocol::messages::create_partitions_request::{
    CreatePartitionsRequest, CreatePartitionsTopic,
};
use kafka_protocol::messages::create_partitions_response::{
    CreatePartitionsResponse, CreatePartitionsTopicResult,
};
use kafka_protocol::messages::TopicName;
use kafka_protocol::protocol::StrBytes;
use pinlog_raft_shard::{MetadataCommand, PartitionGrowth, TopicOutcome};

use super::topics::{bounded_timeout, topic_outcomes};
use crate::codes;
use crate::context::ShardContext;

pub async fn create(
    ctx: Rc<ShardContext>,
    request: CreatePartitionsRequest,
) -> CreatePartitionsResponse {
    let snapshot = ctx.snapshot();
    let mut rejected = Vec::new();
    let mut growths = Vec::new();
    for topic in request.topics {
        match check_assignments(&ctx, &snapshot, &topic) {
            Ok(()) => growths.push(PartitionGrowth {
                name: topic.name.0.to_string(),
                count: topic.count,
            }),
            Err(message) => rejected.push(TopicOutcome {
                name: topic.name.0.to_string(),
                error_code: codes::INVALID_REPLICA_ASSIGNMENT,
                message: Some(message),
                topic_id: [0; 16],
                partitions: -1,
            }),
        }
    }
    let names: Vec<String> = growths.iter().map(|g| g.name.clone()).collect();
    let mut outcomes = if growths.is_empty() {
        Vec::new()
    } else {
        let command = MetadataCommand::CreatePartitions {
            topics: growths,
            validate_only: request.validate_only,
        };
        let timeout = bounded_timeout(&ctx, request.timeout_ms);
        topic_outcomes(ctx.metadata.propose(command, timeout).await, &names)
    };
    outcomes.extend(rejected);
    let results = outcomes
        .into_iter()
        .map(|o| {
            if o.error_code == codes::NONE {
                tracing::info!(topic = %o.name, partitions = o.partitions, validate_only = request.validate_only, "partitions created");
            }
            CreatePartitionsTopicResult::default()
                .with_name(TopicName(StrBytes::from_string(o.name)))
                .with_error_code(o.error_code)
                .with_error_message(o.message.map(StrBytes::from_string))
        })
        .collect();
    CreatePartitionsResponse::default().with_results(results)
}

/// Explicit assignments must name one new partition each, on this broker (partition data is not replicated).
fn check_assignments(
    ctx: &ShardContext,
    snapshot: &pinlog_raft_shard::MetadataSnapshot,
    topic: &CreatePartitionsTopic,
) -> Result<(), String> {
    let Some(assignments) = &topic.assignments else {
        return Ok(());
    };
    let current = snapshot
        .topic(&topic.name.0)
        .map_or(0, |t| t.partitions.len() as i32);
    let new = topic.count - current;
    if assignments.len() as i32 != new {
        return Err(format!(
            "{} assignments for {new} new partitions",
            assignments.len()
        ));
    }
    let node = ctx.config.node_id;
    match assignments
        .iter()
        .find(|a| a.broker_ids.iter().map(|b| b.0).ne([node]))
    {
        Some(a) => Err(format!(
            "replicas {:?}: every partition has exactly one replica, on broker {node}",
            a.broker_ids.iter().map(|b| b.0).collect::<Vec<_>>()
        )),
        None => Ok(()),
    }
}
