//! `ShardStorage`: the partition table of one shard. Partitions live in
//! `<data_dir>/<topic>-<partition>/`. Opening is single-flight: concurrent callers for one
//! partition share one open (a `Shared` future), so there are never two `PartitionLog`s for
//! one directory. A shared open survives its first caller giving up (timeout): the next
//! caller keeps driving the same future.

use crate::config::LogConfig;
use crate::error::EngineError;
use crate::log::PartitionLog;
use futures::future::{FutureExt, LocalBoxFuture, Shared};
use std::cell::RefCell;
use std::collections::HashMap;
use std::path::PathBuf;
use std::rc::Rc;
use std::time::{SystemTime, UNIX_EPOCH};

type OpenResult = Result<Rc<PartitionLog>, Rc<EngineError>>;

enum Slot {
    Open(Rc<PartitionLog>),
    Opening(Shared<LocalBoxFuture<'static, OpenResult>>),
}

pub struct ShardStorage {
    data_dir: PathBuf,
    partitions: RefCell<HashMap<(String, i32), Slot>>,
}

impl ShardStorage {
    pub fn new(data_dir: PathBuf) -> ShardStorage {
        ShardStorage {
            data_dir,
            partitions: RefCell::new(HashMap::new()),
        }
    }

    fn partition_dir(&self, topic: &str, partition: i32) -> PathBuf {
        self.data_dir.join(format!("{topic}-{partition}"))
    }

    pub fn get(&self, topic: &str, partition: i32) -> Option<Rc<PartitionLog>> {
        match self
            .partitions
            .borrow()
            .get(&(topic.to_string(), partition))
        {
            Some(Slot::Open(log)) => Some(log.clone()),
            _ => None,
        }
    }

    /// Open (recovering) or create the partition if not open yet (single-flight).
    pub async fn open_partition(
        &self,
        topic: &str,
        partition: i32,
        config: LogConfig,
    ) -> Result<Rc<PartitionLog>, EngineError> {
        let key = (topic.to_string(), partition);
        let flight = {
            let mut parts = self.partitions.borrow_mut();
            match parts.get(&key) {
                Some(Slot::Open(log)) => return Ok(log.clone()),
                Some(Slot::Opening(f)) => f.clone(),
                None => {
                    let dir = self.partition_dir(topic, partition);
                    let f = async move { PartitionLog::open(&dir, config).await.map_err(Rc::new) }
                        .boxed_local()
                        .shared();
                    parts.insert(key.clone(), Slot::Opening(f.clone()));
                    f
                }
            }
        };
        let result = flight.await;
        let mut parts = self.partitions.borrow_mut();
        let still_ours = matches!(parts.get(&key), Some(Slot::Opening(_)));
        match result {
            Ok(log) => {
                if still_ours {
                    parts.insert(key, Slot::Open(log.clone()));
                }
                Ok(log)
            }
            Err(e) => {
                if still_ours {
                    parts.remove(&key);
                }
                Err(e.duplicate())
            }
        }
    }

    /// Close and delete the partition's directory (renamed to `<dir>.<nanos>-delete` first, so
    /// a crash mid-way never leaves a half-deleted partition that looks live).
    pub async fn delete_partition(&self, topic: &str, partition: i32) -> Result<(), EngineError> {
        let dir = self.partition_dir(topic, partition);
        let slot = self
            .partitions
            .borrow_mut()
            .remove(&(topic.to_string(), partition));
        let log = match slot {
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
        doomed.push(format!(".{nanos}-delete"));
        let doomed = PathBuf::from(doomed);
        glommio::io::rename(&dir, &doomed)
            .await
            .map_err(|e| EngineError::io("renaming partition dir for delete", &dir, e.into()))?;
        let target = doomed.clone();
        glommio::executor()
            .spawn_blocking(move || std::fs::remove_dir_all(target))
            .await
            .map_err(|e| EngineError::io("removing partition dir", &doomed, e))?;
        tracing::info!(topic, partition, "partition deleted");
        Ok(())
    }

    pub fn partitions(&self) -> Vec<(String, i32, Rc<PartitionLog>)> {
        self.partitions
            .borrow()
            .iter()
            .filter_map(|((t, p), slot)| match slot {
                Slot::Open(log) => Some((t.clone(), *p, log.clone())),
                Slot::Opening(_) => None,
            })
            .collect()
    }

    /// Close every open partition, concurrently; failures are logged (data acknowledged under
    /// the Durable policy is already safe).
    pub async fn close_all(&self) {
        let logs: Vec<Rc<PartitionLog>> = self
            .partitions
            .borrow_mut()
            .drain()
            .filter_map(|(_, slot)| match slot {
                Slot::Open(log) => Some(log),
                Slot::Opening(_) => None,
            })
            .collect();
        let closes = logs.iter().map(|log| async move {
            if let Err(e) = log.close().await {
                tracing::error!(dir = %log.dir().display(), error = %e, "closing partition failed");
            }
        });
        futures::future::join_all(closes).await;
    }
}
