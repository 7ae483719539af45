//! ListOffsets: earliest (-2), latest (-1) or by timestamp, per partition on its owner shard, all in parallel.

use std::rc::Rc;

use futures::future::join_all;
use kafka_protocol::messages::list_offsets_request::ListOffsetsRequest;
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsResponse, ListOffsetsTopicResponse,
};

use crate::context::ShardContext;
use crate::partition_ops::{PartitionOp, PartitionReply, PartitionRequest};
use crate::route;

pub async fn handle(
    ctx: Rc<ShardContext>,
    _version: i16,
    request: ListOffsetsRequest,
) -> ListOffsetsResponse {
    let topics = join_all(request.topics.into_iter().map(|topic| {
        let ctx = ctx.clone();
        async move {
            let name = topic.name.0.to_string();
            let partitions = join_all(topic.partitions.into_iter().map(|p| {
                let request = PartitionRequest {
                    topic: name.clone(),
                    partition: p.partition_index,
                    op: PartitionOp::ListOffset {
                        timestamp: p.timestamp,
                    },
                };
                let ctx = ctx.clone();
                async move {
                    let (error_code, offset, timestamp) = match route::execute(&ctx, request).await
                    {
                        PartitionReply::Offset {
                            error_code,
                            offset,
                            timestamp,
                        } => (error_code, offset, timestamp),
                        other => unreachable!("ListOffset answered with {other:?}"),
                    };
                    ListOffsetsPartitionResponse::default()
                        .with_partition_index(p.partition_index)
                        .with_error_code(error_code)
                        .with_offset(offset)
                        .with_timestamp(timestamp)
                        .with_leader_epoch(-1)
                }
            }))
            .await;
            ListOffsetsTopicResponse::default()
                .with_name(topic.name)
                .with_partitions(partitions)
        }
    }))
    .await;
    ListOffsetsResponse::default().with_topics(topics)
}
