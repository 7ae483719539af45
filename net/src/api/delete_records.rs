//! DeleteRecords: moves each partition's log start (low watermark) on its owner shard, all partitions in
//! parallel; consumers below it get OFFSET_OUT_OF_RANGE and ListOffsets earliest returns it.

use std::rc::Rc;
use std::time::Duration;

use kafka_protocol::messages::delete_records_request::DeleteRecordsRequest;
use kafka_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsResponse, DeleteRecordsTopicResult,
};

use crate::codes;
use crate::context::ShardContext;
use crate::partition_ops::{PartitionOp, PartitionReply};
use crate::route;

pub async fn handle(ctx: Rc<ShardContext>, request: DeleteRecordsRequest) -> DeleteRecordsResponse {
    let timeout = if request.timeout_ms > 0 {
        ctx.config
            .request_timeout
            .min(Duration::from_millis(request.timeout_ms as u64))
    } else {
        ctx.config.request_timeout
    };
    let ops = request
        .topics
        .iter()
        .map(|t| {
            let partitions = t.partitions.iter();
            let ops = partitions.map(|p| {
                (
                    p.partition_index,
                    PartitionOp::DeleteRecords {
                        offset: p.offset,
                        timeout,
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
                let (error_code, low_watermark) = match reply {
                    PartitionReply::Deleted { error_code, low_watermark } => (error_code, low_watermark),
                    other => unreachable!("DeleteRecords answered with {other:?}"),
                };
                if error_code == codes::NONE {
                    tracing::info!(topic = %topic.name.0, partition = index, low_watermark, "records deleted");
                }
                DeleteRecordsPartitionResult::default()
                    .with_partition_index(index)
                    .with_error_code(error_code)
                    .with_low_watermark(low_watermark)
            });
            let partitions = partitions.collect();
            DeleteRecordsTopicResult::default().with_name(topic.name).with_partitions(partitions)
        })
        .collect();
    DeleteRecordsResponse::default().with_topics(topics)
}
