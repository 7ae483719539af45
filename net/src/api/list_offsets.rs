//! ListOffsets: earliest (-2), latest (-1) or by timestamp, per partition on its owner shard, all in parallel.

use std::rc::Rc;

use kafka_protocol::messages::list_offsets_request::ListOffsetsRequest;
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsResponse, ListOffsetsTopicResponse,
};

use crate::context::ShardContext;
use crate::partition_ops::{PartitionOp, PartitionReply};
use crate::route;

pub async fn handle(
    ctx: Rc<ShardContext>,
    _version: i16,
    request: ListOffsetsRequest,
) -> ListOffsetsResponse {
    let ops = request
        .topics
        .iter()
        .map(|t| {
            let partitions = t.partitions.iter();
            let ops = partitions.map(|p| {
                (
                    p.partition_index,
                    PartitionOp::ListOffset {
                        timestamp: p.timestamp,
                    },
                )
            });
            (t.name.0.to_string(), ops.collect())
        })
        .collect();
    let replies = route::execute_all(&ctx, ops).await;
    let topics = request
        .topics
        .into_iter()
        .zip(replies)
        .map(|(topic, partitions)| {
            let partitions = partitions.into_iter().map(|(index, reply)| {
                let (error_code, offset, timestamp) = match reply {
                    PartitionReply::Offset {
                        error_code,
                        offset,
                        timestamp,
                    } => (error_code, offset, timestamp),
                    other => unreachable!("ListOffset answered with {other:?}"),
                };
                ListOffsetsPartitionResponse::default()
                    .with_partition_index(index)
                    .with_error_code(error_code)
                    .with_offset(offset)
                    .with_timestamp(timestamp)
                    .with_leader_epoch(-1)
            });
            ListOffsetsTopicResponse::default()
                .with_name(topic.name)
                .with_partitions(partitions.collect())
        })
        .collect();
    ListOffsetsResponse::default().with_topics(topics)
}
