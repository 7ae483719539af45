//! DeleteRecords: moves each partition's log start (low watermark) on its owner shard, all partitions in
//! parallel; consumers below it get OFFSET_OUT_OF_RANGE and ListOffsets earliest returns it.

use std::rc::Rc;
use std::time::Duration;

use futures::future::join_all;
use kafka_protocol::messages::delete_records_request::DeleteRecordsRequest;
use kafka_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsResponse, DeleteRecordsTopicResult,
};

use crate::context::ShardContext;
use crate::partition_ops::{PartitionOp, PartitionReply, PartitionRequest};
use crate::route;

pub async fn handle(ctx: Rc<ShardContext>, request: DeleteRecordsRequest) -> DeleteRecordsResponse {
    let timeout = if request.timeout_ms > 0 {
        ctx.config
            .request_timeout
            .min(Duration::from_millis(request.timeout_ms as u64))
    } else {
        ctx.config.request_timeout
    };
    let topics = join_all(request.topics.into_iter().map(|topic| {
        let ctx = ctx.clone();
        async move {
            let name = topic.name.0.to_string();
            let partitions = join_all(topic.partitions.into_iter().map(|p| {
                let request = PartitionRequest {
                    topic: name.clone(),
                    partition: p.partition_index,
                    op: PartitionOp::DeleteRecords { offset: p.offset, timeout },
                };
                let ctx = ctx.clone();
                let name = name.clone();
                async move {
                    let (error_code, low_watermark) = match route::execute(&ctx, request).await {
                        PartitionReply::Deleted { error_code, low_watermark } => (error_code, low_watermark),
                        other => unreachable!("DeleteRecords answered with {other:?}"),
                    };
                    if error_code == 0 {
                        tracing::info!(topic = %name, partition = p.partition_index, low_watermark, "records deleted");
                    }
                    DeleteRecordsPartitionResult::default()
                        .with_partition_index(p.partition_index)
                        .with_error_code(error_code)
                        .with_low_watermark(low_watermark)
                }
            }))
            .await;
            DeleteRecordsTopicResult::default().with_name(topic.name).with_partitions(partitions)
        }
    }))
    .await;
    DeleteRecordsResponse::default().with_topics(topics)
}
