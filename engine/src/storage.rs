//! `ShardStorage`: the partition table of one shard. Partitions live in
//! `<data_dir>/<topic>-<partition>/`. Opening is single-flight: concurrent callers for one
//! partition share one open (a `Shared` future), so there are never two `PartitionLog`s for
//! one directory. A shared open survives its first caller giving up (timeout): the next
//! caller keeps driving the same future.
//!
//! Closing is final: once `close_all` has begun, no partition opens any more, and the opens already under way are
//! awaited and closed with the rest. A shard stops while its connections still run, and a request served after the
//! close must not open (recover) a partition again: that log would never be closed, and a recovery still running
//! on glommio's blocking threads when the executor exits has nobody to answer to (glommio panics on that).

use crate::config::LogConfig;
use crate::doomed::DoomedDirs;
use crate::error::EngineError;
use crate::log::PartitionLog;
use crate::metrics::StorageMetrics;
use crate::tail_budget::TailBudget;
use foldhash::HashMap;
use futures::future::{FutureExt, LocalBoxFuture, Shared};
use std::cell::{Cell, RefCell};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

type OpenResult = Result<Rc<PartitionLog>, Rc<EngineError>>;

enum Slot {
    Open(Rc<PartitionLog>),
    Opening(Shared<LocalBoxFuture<'static, OpenResult>>),
}

pub struct ShardStorage {
    data_dir: PathBuf,
    metrics: Arc<StorageMetrics>,
    /// topic → partition → slot: nested so that `get` looks a partition up by `&str`, without allocating a key. Hashed
    /// with foldhash, not SipHash: a fetch of a session's partitions looks up every one of them.
    partitions: RefCell<HashMap<String, HashMap<i32, Slot>>>,
    /// Set by `close_all`: opens are refused from then on.
    closing: Cell<bool>,
    /// Deleted partitions' directories, freed in the background (`doomed.rs`).
    doomed: Rc<DoomedDirs>,
    /// The bound on all the shard's tails together (`tail_budget.rs`).
    tail_budget: Rc<TailBudget>,
}

/// Suffix of a partition directory whose delete was started (see [`ShardStorage::delete_partition`]).
const DELETING_SUFFIX: &str = "-delete";

/// Removes the partition directories whose delete a crash or a stop interrupted (`<topic>-<p>.<nanos>-delete`; a
/// stopping shard leaves what `doomed.rs` has not freed yet), and returns
/// how many it removed. Run once at start-up, before any shard opens the data dir: shards share the directory, so
/// no single shard may sweep it while the others run.
pub fn remove_interrupted_deletes(data_dir: &Path) -> Result<usize, EngineError> {
    let entries = std::fs::read_dir(data_dir)
        .map_err(|e| EngineError::io("listing data dir", data_dir, e))?;
    let mut removed = 0;
    for entry in entries {
        let entry = entry.map_err(|e| EngineError::io("listing data dir", data_dir, e))?;
        let path = entry.path();
        let doomed = path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.ends_with(DELETING_SUFFIX) && n.contains('.'));
        if doomed && path.is_dir() {
            std::fs::remove_dir_all(&path).map_err(|e| {
                EngineError::io("removing an interrupted partition delete", &path, e)
            })?;
            removed += 1;
        }
    }
    Ok(removed)
}

impl ShardStorage {
    /// The partitions of one shard under `data_dir`; their group commits record into `metrics`, and their tails
    /// together keep at most `tail_cache_shard_bytes` of written batches.
    pub fn new(
        data_dir: PathBuf,
        metrics: Arc<StorageMetrics>,
        tail_cache_shard_bytes: usize,
    ) -> ShardStorage {
        ShardStorage {
            data_dir,
            doomed: Rc::new(DoomedDirs::new(metrics.clone())),
            tail_budget: TailBudget::new(tail_cache_shard_bytes, metrics.clone()),
            metrics,
            partitions: RefCell::new(HashMap::default()),
            closing: Cell::new(false),
        }
    }

    fn partition_dir(&self, topic: &str, partition: i32) -> PathBuf {
        self.data_dir.join(format!("{topic}-{partition}"))
    }

    pub fn get(&self, topic: &str, partition: i32) -> Option<Rc<PartitionLog>> {
        match self.partitions.borrow().get(topic)?.get(&partition) {
            Some(Slot::Open(log)) => Some(log.clone()),
            _ => None,
        }
    }

    /// Takes the partition's slot out of the table (and the topic's entry with its last partition).
    fn remove_slot(&self, topic: &str, partition: i32) -> Option<Slot> {
        let mut parts = self.partitions.borrow_mut();
        let topic_parts = parts.get_mut(topic)?;
        let slot = topic_parts.remove(&partition);
        if topic_parts.is_empty() {
            parts.remove(topic);
        }
        slot
    }

    /// Open (recovering) or create the partition if not open yet (single-flight).
    pub async fn open_partition(
        &self,
        topic: &str,
        partition: i32,
        config: LogConfig,
    ) -> Result<Rc<PartitionLog>, EngineError> {
        if self.closing.get() {
            return Err(EngineError::Stopping {
                topic: topic.to_owned(),
                partition,
            });
        }
        let flight = {
            let mut parts = self.partitions.borrow_mut();
            let topic_parts = parts.entry(topic.to_string()).or_default();
            match topic_parts.get(&partition) {
                Some(Slot::Open(log)) => return Ok(log.clone()),
                Some(Slot::Opening(f)) => f.clone(),
                None => {
                    let dir = self.partition_dir(topic, partition);
                    let metrics = self.metrics.clone();
                    let tail_budget = self.tail_budget.clone();
                    let f = async move {
                        PartitionLog::open_in_shard(&dir, config, metrics, tail_budget)
                            .await
                            .map_err(Rc::new)
                    }
                    .boxed_local()
                    .shared();
                    topic_parts.insert(partition, Slot::Opening(f.clone()));
                    f
                }
            }
        };
        let result = flight.await;
        // Publish the open log, or learn that this failed open is still in the table (to forget it).
        let failed_open_listed = {
            let mut parts = self.partitions.borrow_mut();
            let slot = parts.get_mut(topic).and_then(|ps| ps.get_mut(&partition));
            match (slot, &result) {
                (Some(slot @ Slot::Opening(_)), Ok(log)) => {
                    *slot = Slot::Open(log.clone());
                    false
                }
                (Some(Slot::Opening(_)), Err(_)) => true,
                _ => false,
            }
        };
        if failed_open_listed {
            // Forget it, so the next caller tries again.
            self.remove_slot(topic, partition);
        }
        result.map_err(|e| e.duplicate())
    }

    /// Close and delete the partition's directory: renamed to `<dir>.<nanos>-delete` at once, so a crash mid-way
    /// never leaves a half-deleted partition that looks live, and freed in the background (`doomed.rs`).
    pub async fn delete_partition(&self, topic: &str, partition: i32) -> Result<(), EngineError> {
        let dir = self.partition_dir(topic, partition);
        let log = match self.remove_slot(topic, partition) {
            Some(Slot::Open(log)) => Some(log),
            Some(Slot::Opening(f)) => f.await.ok(),
            None => None,
        };
        if let Some(log) = log {
            log.close()
                .await
                .map_err(|e| EngineError::io("closing partition for delete", &dir, e))?;
        }
        if !dir.exists() {
            return Ok(());
        }
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let mut doomed = dir.clone().into_os_string();
        doomed.push(format!(".{nanos}{DELETING_SUFFIX}"));
        let doomed = PathBuf::from(doomed);
        glommio::io::rename(&dir, &doomed)
            .await
            .map_err(|e| EngineError::io("renaming partition dir for delete", &dir, e.into()))?;
        tracing::info!(topic, partition, doomed = %doomed.display(), "partition deleted; its files are freed in the background");
        self.doomed.free_later(doomed);
        Ok(())
    }

    pub fn partitions(&self) -> Vec<(String, i32, Rc<PartitionLog>)> {
        self.partitions
            .borrow()
            .iter()
            .flat_map(|(t, ps)| {
                ps.iter().filter_map(move |(p, slot)| match slot {
                    Slot::Open(log) => Some((t.clone(), *p, log.clone())),
                    Slot::Opening(_) => None,
                })
            })
            .collect()
    }

    /// Close every partition, concurrently, and refuse opens from now on. Opens under way are awaited and their
    /// logs closed too. Failures are logged (data acknowledged under the Durable policy is already safe).
    pub async fn close_all(&self) {
        self.closing.set(true);
        self.doomed.stop();
        let slots: Vec<Slot> = self
            .partitions
            .borrow_mut()
            .drain()
            .flat_map(|(_, ps)| ps.into_values())
            .collect();
        let closes = slots.into_iter().map(|slot| async move {
            let log = match slot {
                Slot::Open(log) => log,
                // Its error, if any, was reported to the caller that started the open.
                Slot::Opening(flight) => match flight.await {
                    Ok(log) => log,
                    Err(_) => return,
                },
            };
            if let Err(e) = log.close().await {
                tracing::error!(dir = %log.dir().display(), error = %e, "closing partition failed");
            }
        });
        futures::future::join_all(closes).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_up_sweep_removes_only_interrupted_deletes() {
        let dir = crate::tests::temp_dir();
        let doomed = dir.path().join("orders-3.1700000000000000000-delete");
        std::fs::create_dir_all(doomed.join("sub")).expect("mkdir");
        std::fs::write(doomed.join("00000000000000000000.log"), b"x").expect("write");
        // A live partition of a topic whose name merely ends in "-delete" stays.
        let live = dir.path().join("to-delete-0");
        std::fs::create_dir(&live).expect("mkdir");
        std::fs::create_dir(dir.path().join("raft")).expect("mkdir");
        assert_eq!(remove_interrupted_deletes(dir.path()).expect("sweep"), 1);
        assert!(!doomed.exists());
        assert!(live.exists());
        assert!(dir.path().join("raft").exists());
    }
}
