//! Idempotent producer state of one partition: for every producer id, its epoch and the last
//! `PRODUCER_BATCHES_KEPT` batches it appended (first/last sequence, base/last offset), so a
//! retried batch is answered with its original offsets instead of being written twice.
//!
//! Rules for a batch with producerId >= 0 and baseSequence >= 0, checked before anything of
//! the request is appended:
//! - epoch older than the stored one: INVALID_PRODUCER_EPOCH (a fenced zombie producer);
//! - epoch newer than the stored one: the producer restarted, its sequence must start at 0;
//! - same first and last sequence as one of the kept batches: a duplicate (answered, not
//!   appended);
//! - otherwise the first sequence must be the last stored sequence + 1 (wrapping to 0 after
//!   i32::MAX): OUT_OF_ORDER_SEQUENCE_NUMBER;
//! - a producer id without state is accepted with any sequence: Kafka >= 2.5 does the same
//!   once a producer's state was removed (expiry, DeleteRecords, compaction), since refusing
//!   would make the producer fail for good.
//!
//! The state is rebuilt at open from the newest snapshot (`producer_snapshot.rs`) plus the
//! batches after it.

use crate::batch::{sequence_add, BatchHeader};
use crate::error::AppendError;
use std::collections::{HashMap, VecDeque};

/// Batches remembered per producer: Kafka's max.in.flight.requests.per.connection for
/// idempotence.
pub const PRODUCER_BATCHES_KEPT: usize = 5;

/// One appended batch of a producer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchMeta {
    pub first_seq: i32,
    pub last_seq: i32,
    pub base_offset: i64,
    pub last_offset: i64,
    /// The batch's maxTimestamp (the log append time on LogAppendTime topics).
    pub max_timestamp: i64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProducerEntry {
    pub epoch: i16,
    /// Oldest first, at most `PRODUCER_BATCHES_KEPT`, never empty.
    pub batches: VecDeque<BatchMeta>,
    /// maxTimestamp of the producer's last batch; drives expiry.
    pub last_timestamp: i64,
}

/// What to do with an idempotent batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Append,
    /// Already appended: answer with these offsets, append nothing.
    Duplicate(BatchMeta),
}

/// The last accepted (epoch, last sequence) of a producer earlier in the same request.
#[derive(Clone, Copy, Debug)]
pub struct Staged {
    pub producer_id: i64,
    pub epoch: i16,
    pub last_seq: i32,
}

#[derive(Default, Debug, PartialEq, Eq)]
pub struct ProducerStateMap {
    pub(crate) producers: HashMap<i64, ProducerEntry>,
}

impl ProducerStateMap {
    /// Check an idempotent batch; `staged` is the same producer's previous batch in this
    /// request, if any (it supersedes the stored state).
    pub fn check(&self, h: &BatchHeader, staged: Option<Staged>) -> Result<Verdict, AppendError> {
        let first_seq = h.base_sequence;
        let last_seq = h.last_sequence();
        let (epoch, last) = match (staged, self.producers.get(&h.producer_id)) {
            (Some(s), _) => (s.epoch, s.last_seq),
            (None, Some(entry)) => {
                let last = entry.batches.back().expect("entries are never empty");
                if h.producer_epoch == entry.epoch {
                    if let Some(dup) = entry
                        .batches
                        .iter()
                        .find(|b| b.first_seq == first_seq && b.last_seq == last_seq)
                    {
                        return Ok(Verdict::Duplicate(*dup));
                    }
                }
                (entry.epoch, last.last_seq)
            }
            (None, None) => return Ok(Verdict::Append),
        };
        if h.producer_epoch < epoch {
            return Err(AppendError::InvalidProducerEpoch {
                producer_id: h.producer_id,
                current: epoch,
                got: h.producer_epoch,
            });
        }
        let expected = if h.producer_epoch > epoch {
            0
        } else {
            sequence_add(last, 1)
        };
        if first_seq != expected {
            return Err(AppendError::OutOfOrderSequence {
                expected,
                got: first_seq,
            });
        }
        Ok(Verdict::Append)
    }

    /// Record an appended (or replayed) idempotent batch.
    pub fn record(&mut self, h: &BatchHeader) {
        let meta = BatchMeta {
            first_seq: h.base_sequence,
            last_seq: h.last_sequence(),
            base_offset: h.base_offset,
            last_offset: h.last_offset(),
            max_timestamp: h.max_timestamp,
        };
        let entry = self
            .producers
            .entry(h.producer_id)
            .or_insert_with(|| ProducerEntry {
                epoch: h.producer_epoch,
                batches: VecDeque::with_capacity(PRODUCER_BATCHES_KEPT),
                last_timestamp: h.max_timestamp,
            });
        if h.producer_epoch != entry.epoch {
            entry.epoch = h.producer_epoch;
            entry.batches.clear();
        }
        if entry.batches.len() == PRODUCER_BATCHES_KEPT {
            entry.batches.pop_front();
        }
        entry.batches.push_back(meta);
        entry.last_timestamp = entry.last_timestamp.max(h.max_timestamp);
    }

    /// Forget producers whose last batch is older than `max_idle_ms`; returns how many.
    pub fn expire(&mut self, now_ms: i64, max_idle_ms: i64) -> usize {
        let before = self.producers.len();
        let horizon = now_ms.saturating_sub(max_idle_ms);
        self.producers.retain(|_, e| e.last_timestamp >= horizon);
        before - self.producers.len()
    }

    pub fn len(&self) -> usize {
        self.producers.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::{build_batch, peek, set_producer};

    fn header(pid: i64, epoch: i16, seq: i32, count: i32, base_offset: i64) -> BatchHeader {
        let mut b = build_batch(count, 4, 1000);
        set_producer(&mut b, pid, epoch, seq);
        BatchHeader {
            base_offset,
            ..peek(&b).unwrap()
        }
    }

    #[test]
    fn sequence_epoch_and_duplicate_rules() {
        let mut m = ProducerStateMap::default();
        let first = header(7, 0, 5, 2, 0);
        assert_eq!(
            m.check(&first, None).unwrap(),
            Verdict::Append,
            "unknown producer, any seq"
        );
        m.record(&first);
        let dup = m.check(&header(7, 0, 5, 2, 99), None).unwrap();
        assert_eq!(
            dup,
            Verdict::Duplicate(BatchMeta {
                first_seq: 5,
                last_seq: 6,
                base_offset: 0,
                last_offset: 1,
                max_timestamp: 1000
            })
        );
        let gap = m.check(&header(7, 0, 8, 1, 2), None).unwrap_err();
        assert_eq!(
            (gap.kafka_code(), gap.to_string().contains("expected 7")),
            (45, true)
        );
        assert_eq!(
            m.check(&header(7, 0, 7, 1, 2), None).unwrap(),
            Verdict::Append
        );
        let staged = Staged {
            producer_id: 7,
            epoch: 0,
            last_seq: 7,
        };
        assert_eq!(
            m.check(&header(7, 0, 8, 1, 3), Some(staged)).unwrap(),
            Verdict::Append
        );
        assert_eq!(
            m.check(&header(7, 0, 7, 1, 3), Some(staged))
                .unwrap_err()
                .kafka_code(),
            45
        );
        // A newer epoch must start at 0 and resets the state; the old epoch is fenced.
        assert_eq!(
            m.check(&header(7, 1, 3, 1, 2), None)
                .unwrap_err()
                .kafka_code(),
            45
        );
        let bumped = header(7, 1, 0, 1, 2);
        assert_eq!(m.check(&bumped, None).unwrap(), Verdict::Append);
        m.record(&bumped);
        assert_eq!(
            m.check(&header(7, 0, 7, 1, 3), None)
                .unwrap_err()
                .kafka_code(),
            47
        );
        assert_eq!(m.producers[&7].batches.len(), 1);
        // Only the last five batches are remembered.
        for i in 1..=6 {
            m.record(&header(7, 1, i, 1, 2 + i64::from(i)));
        }
        assert_eq!(m.producers[&7].batches.len(), PRODUCER_BATCHES_KEPT);
        assert_eq!(
            m.check(&header(7, 1, 1, 1, 0), None)
                .unwrap_err()
                .kafka_code(),
            45
        );
        assert!(matches!(
            m.check(&header(7, 1, 2, 1, 0), None).unwrap(),
            Verdict::Duplicate(_)
        ));
    }

    #[test]
    fn sequence_wraps_and_idle_producers_expire() {
        let mut m = ProducerStateMap::default();
        m.record(&header(1, 0, i32::MAX - 1, 2, 0));
        assert_eq!(
            m.check(&header(1, 0, 0, 1, 2), None).unwrap(),
            Verdict::Append
        );
        m.record(&header(2, 0, 0, 1, 3));
        m.producers.get_mut(&2).unwrap().last_timestamp = 50_000;
        assert_eq!(m.expire(60_000, 20_000), 1, "producer 1 idle since 1000");
        assert_eq!(m.len(), 1);
        assert!(m.producers.contains_key(&2));
    }
}
