//! InitProducerId for idempotent producers: ids come from blocks the metadata Raft group hands this shard
//! (`AllocateProducerIds`, one entry per block, never one per producer), so most calls cost no consensus at all.
//! Transactions are not supported: a transactional id gets COORDINATOR_NOT_AVAILABLE, as FindCoordinator does.

use std::cell::Cell;
use std::rc::Rc;

use kafka_protocol::messages::init_producer_id_request::InitProducerIdRequest;
use kafka_protocol::messages::init_producer_id_response::InitProducerIdResponse;
use kafka_protocol::messages::ProducerId;
use pinlog_raft_shard::{CommandOutcome, MetadataCommand};

use crate::codes;
use crate::context::ShardContext;

/// Producer ids a shard asks for at a time.
pub const PRODUCER_ID_BLOCK_SIZE: u32 = 1000;
const COORDINATOR_NOT_AVAILABLE: i16 = 15;

/// The shard's unused producer ids: `next .. end`.
#[derive(Default)]
pub struct ProducerIdBlock {
    next: Cell<i64>,
    end: Cell<i64>,
}

impl ProducerIdBlock {
    fn take(&self) -> Option<i64> {
        let id = self.next.get();
        (id < self.end.get()).then(|| {
            self.next.set(id + 1);
            id
        })
    }

    fn refill(&self, first: i64, count: u32) {
        self.next.set(first);
        self.end.set(first + i64::from(count));
    }
}

pub async fn init(ctx: Rc<ShardContext>, request: InitProducerIdRequest) -> InitProducerIdResponse {
    let answer = InitProducerIdResponse::default()
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1);
    if request.transactional_id.is_some() {
        return answer.with_error_code(COORDINATOR_NOT_AVAILABLE);
    }
    // KIP-360: an idempotent producer that lost track of its sequence numbers bumps its own epoch; the partitions
    // accept the new epoch and reset its sequences.
    if request.producer_id.0 >= 0 && (0..i16::MAX - 1).contains(&request.producer_epoch) {
        return answer
            .with_producer_id(request.producer_id)
            .with_producer_epoch(request.producer_epoch + 1);
    }
    match next_producer_id(&ctx).await {
        Ok(id) => answer
            .with_error_code(codes::NONE)
            .with_producer_id(ProducerId(id))
            .with_producer_epoch(0),
        Err(code) => answer.with_error_code(code),
    }
}

async fn next_producer_id(ctx: &ShardContext) -> Result<i64, i16> {
    if let Some(id) = ctx.producer_ids.take() {
        return Ok(id);
    }
    let command = MetadataCommand::AllocateProducerIds {
        count: PRODUCER_ID_BLOCK_SIZE,
    };
    match ctx
        .metadata
        .propose(command, ctx.config.request_timeout)
        .await
    {
        Ok(CommandOutcome::ProducerIds { first, count }) => {
            tracing::debug!(
                shard = ctx.shard_id,
                first,
                count,
                "producer id block allocated"
            );
            ctx.producer_ids.refill(first, count);
            ctx.producer_ids.take().ok_or(codes::UNKNOWN_SERVER_ERROR)
        }
        Ok(other) => {
            tracing::error!(?other, "AllocateProducerIds answered with another outcome");
            Err(codes::UNKNOWN_SERVER_ERROR)
        }
        Err(err) => {
            tracing::warn!(%err, "producer id block allocation failed");
            Err(codes::REQUEST_TIMED_OUT)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_block_hands_out_each_id_once() {
        let block = ProducerIdBlock::default();
        assert_eq!(block.take(), None, "empty until refilled");
        block.refill(1000, 2);
        assert_eq!(
            (block.take(), block.take(), block.take()),
            (Some(1000), Some(1001), None)
        );
    }
}
