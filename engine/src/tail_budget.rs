//! The shard's bound on the tail cache (`tail_cache_shard_bytes`). Each partition's tail keeps up to
//! `tail_cache_bytes` of written batches, so a shard leading many partitions would keep partitions × that: 1,000
//! partitions at the default 8 MiB are 8 GiB. Past the shard's bound, the partitions whose last commit is oldest give
//! up their written batches first; their readers go to the disk. Unwritten batches are never dropped (the group commit
//! copies them from the tail); the request byte budget of the produce path bounds those.
//!
//! One per shard, shared by its partitions' tails (`Rc`, the shard's thread only). Its work is per commit and per
//! batch pushed, never per record.

use crate::log::PartitionLog;
use crate::metrics::StorageMetrics;
use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::rc::{Rc, Weak};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

pub struct TailBudget {
    /// Bytes every tail of the shard may hold together, past which written batches are shed.
    limit: usize,
    /// Bytes the shard's tails hold, unwritten included.
    used: Cell<usize>,
    /// Partitions holding written tail bytes, by the stamp of their last commit: the first is the one written
    /// longest ago. A partition knows its own stamp (`PartitionLog::tail_stamp`).
    by_last_commit: RefCell<BTreeMap<u64, Weak<PartitionLog>>>,
    next_stamp: Cell<u64>,
    metrics: Arc<StorageMetrics>,
}

impl TailBudget {
    pub fn new(limit: usize, metrics: Arc<StorageMetrics>) -> Rc<TailBudget> {
        Rc::new(TailBudget {
            limit,
            used: Cell::new(0),
            by_last_commit: RefCell::new(BTreeMap::new()),
            next_stamp: Cell::new(0),
            metrics,
        })
    }

    /// No shard bound: each tail is held to `tail_cache_bytes` alone (a partition opened outside a shard).
    pub fn unlimited(metrics: Arc<StorageMetrics>) -> Rc<TailBudget> {
        TailBudget::new(usize::MAX, metrics)
    }

    pub(crate) fn add(&self, bytes: usize) {
        self.set_used(self.used.get() + bytes);
    }

    pub(crate) fn sub(&self, bytes: usize) {
        let used = self.used.get();
        assert!(
            bytes <= used,
            "tail budget: {bytes} bytes freed, {used} held"
        );
        self.set_used(used - bytes);
    }

    fn set_used(&self, used: usize) {
        self.used.set(used);
        self.metrics.tail_cache_bytes.store(used as u64, Relaxed);
    }

    /// `log` is closing: it leaves the order, so a shard that deletes many partitions keeps no entry for each.
    pub(crate) fn forget(&self, log: &PartitionLog) {
        if let Some(stamp) = log.tail_stamp.take() {
            self.by_last_commit.borrow_mut().remove(&stamp);
        }
    }

    /// After a commit of `log` (no borrow of its state held): it is now the partition written last, if its tail
    /// still holds written bytes. Then, while the shard is over its bound, the partitions written longest ago shed
    /// written batches, oldest first.
    pub(crate) fn committed(&self, log: &PartitionLog) {
        let mut order = self.by_last_commit.borrow_mut();
        if let Some(old) = log.tail_stamp.take() {
            order.remove(&old);
        }
        if log.tail_holds_written() {
            let stamp = self.next_stamp.get();
            self.next_stamp.set(stamp + 1);
            order.insert(stamp, log.me.clone());
            log.tail_stamp.set(Some(stamp));
        }
        while self.used.get() > self.limit {
            let Some((stamp, weak)) = order.pop_first() else {
                break;
            };
            let Some(oldest) = weak.upgrade() else {
                continue;
            };
            oldest.tail_stamp.set(None);
            let shed = oldest.shed_written_tail(self.used.get() - self.limit);
            self.metrics
                .tail_cache_shed_bytes_total
                .fetch_add(shed as u64, Relaxed);
            if oldest.tail_holds_written() {
                // It had more than the shard needed: it keeps its place.
                order.insert(stamp, weak);
                oldest.tail_stamp.set(Some(stamp));
            }
        }
    }
}
