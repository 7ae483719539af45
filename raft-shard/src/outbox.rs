//! What the raft shard still has to deliver to one data shard.
//!
//! The raft loop never waits for a shard: it pushes events here and a delivery task drains them into the shard's
//! bounded channel at the shard's pace. Two rules keep the outbox bounded without breaking the order a shard
//! relies on (the Metadata of an apply arrives before its Applied):
//! - at most one Metadata event is queued: a newer snapshot replaces the queued one in place, so every reply
//!   queued behind it is still preceded by a snapshot at least as new as its apply;
//! - at most `replies_max` replies are queued: past that the oldest reply is dropped (with a warning), and its
//!   proposer's bounded wait ends in a timeout instead of the raft loop stalling behind a stuck shard.

use std::collections::VecDeque;
use std::sync::Arc;

use crate::channels::RaftEvent;
use crate::state::MetadataSnapshot;

pub(crate) struct Outbox {
    queue: VecDeque<RaftEvent>,
    replies: usize,
    replies_max: usize,
}

impl Outbox {
    pub fn new(replies_max: usize) -> Outbox {
        assert!(replies_max > 0, "an outbox must hold at least one reply");
        Outbox {
            queue: VecDeque::new(),
            replies: 0,
            replies_max,
        }
    }

    pub fn push_metadata(&mut self, snapshot: Arc<MetadataSnapshot>) {
        match self
            .queue
            .iter_mut()
            .find(|e| matches!(e, RaftEvent::Metadata(_)))
        {
            Some(queued) => *queued = RaftEvent::Metadata(snapshot),
            None => self.queue.push_back(RaftEvent::Metadata(snapshot)),
        }
    }

    /// Queues an Applied or Rejected event; returns the proposal id of a reply dropped to make room.
    pub fn push_reply(&mut self, reply: RaftEvent) -> Option<u64> {
        assert!(
            !matches!(reply, RaftEvent::Metadata(_)),
            "metadata goes through push_metadata"
        );
        let mut dropped = None;
        if self.replies == self.replies_max {
            let oldest = self
                .queue
                .iter()
                .position(|e| !matches!(e, RaftEvent::Metadata(_)));
            if let Some(RaftEvent::Applied { id, .. } | RaftEvent::Rejected { id, .. }) =
                oldest.and_then(|at| self.queue.remove(at))
            {
                dropped = Some(id);
            }
            self.replies -= 1;
        }
        self.queue.push_back(reply);
        self.replies += 1;
        dropped
    }

    pub fn pop(&mut self) -> Option<RaftEvent> {
        let event = self.queue.pop_front()?;
        if !matches!(event, RaftEvent::Metadata(_)) {
            self.replies -= 1;
        }
        Some(event)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::CommandOutcome;

    fn snapshot(version: u64) -> Arc<MetadataSnapshot> {
        Arc::new(MetadataSnapshot {
            version,
            cluster_id: String::new(),
            controller_id: -1,
            brokers: vec![],
            topics: Default::default(),
            broker_configs: Default::default(),
        })
    }

    fn describe(event: RaftEvent) -> String {
        match event {
            RaftEvent::Metadata(s) => format!("M{}", s.version),
            RaftEvent::Applied { id, .. } => format!("A{id}"),
            RaftEvent::Rejected { id, .. } => format!("R{id}"),
        }
    }

    fn drain(outbox: &mut Outbox) -> Vec<String> {
        std::iter::from_fn(|| outbox.pop()).map(describe).collect()
    }

    #[test]
    fn a_newer_snapshot_replaces_the_queued_one_in_place() {
        let mut outbox = Outbox::new(8);
        outbox.push_metadata(snapshot(5));
        outbox.push_reply(RaftEvent::Applied {
            id: 1,
            outcome: CommandOutcome::Done,
        });
        outbox.push_metadata(snapshot(6));
        outbox.push_reply(RaftEvent::Applied {
            id: 2,
            outcome: CommandOutcome::Done,
        });
        assert_eq!(drain(&mut outbox), vec!["M6", "A1", "A2"]);
        outbox.push_reply(RaftEvent::Rejected {
            id: 3,
            reason: "x".into(),
        });
        outbox.push_metadata(snapshot(7));
        assert_eq!(drain(&mut outbox), vec!["R3", "M7"]);
    }

    #[test]
    fn replies_past_the_limit_drop_the_oldest() {
        let mut outbox = Outbox::new(2);
        outbox.push_metadata(snapshot(1));
        assert_eq!(
            outbox.push_reply(RaftEvent::Applied {
                id: 1,
                outcome: CommandOutcome::Done
            }),
            None
        );
        assert_eq!(
            outbox.push_reply(RaftEvent::Applied {
                id: 2,
                outcome: CommandOutcome::Done
            }),
            None
        );
        assert_eq!(
            outbox.push_reply(RaftEvent::Applied {
                id: 3,
                outcome: CommandOutcome::Done
            }),
            Some(1)
        );
        assert_eq!(drain(&mut outbox), vec!["M1", "A2", "A3"]);
        assert_eq!(
            outbox.push_reply(RaftEvent::Applied {
                id: 4,
                outcome: CommandOutcome::Done
            }),
            None
        );
    }
}
