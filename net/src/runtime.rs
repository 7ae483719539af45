//! One shard's life: connect to the metadata group and the other shards, open the partitions the metadata places
//! here, keep them in step with every new metadata version, apply retention, then accept connections.
//!
//! Start-up never waits on anything that runs only after start-up: the raft shard publishes the recovered metadata
//! before it even elects itself, so `MetadataClient::connect` returns at once.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;

use glommio::channels::shared_channel::SharedReceiver;
use glommio::net::TcpListener;
use pinlog_engine::ShardStorage;
use pinlog_raft_shard::{MetadataClient, MetadataSnapshot, ShardLink};

use crate::context::{NetConfig, ShardContext};
use crate::fetch_session::FetchSessions;
use crate::mesh::{serve_peer, Mesh, MeshEndpoints};
use crate::metrics::ShardMetrics;
use crate::route::open_local;
use crate::server::accept_loop;

pub struct ShardParams {
    pub shard_id: u32,
    pub shard_count: u32,
    pub config: NetConfig,
    pub data_dir: PathBuf,
    pub metadata_link: ShardLink,
    pub mesh: MeshEndpoints,
    /// A message (or the sender going away) asks the shard to stop: it stops accepting, flushes and closes its
    /// partitions, and returns.
    pub stop: SharedReceiver<()>,
    pub metrics: Arc<ShardMetrics>,
}

#[derive(Debug, thiserror::Error)]
pub enum ShardError {
    #[error("shard {shard}: cannot listen on {addr}: {source}")]
    Listen {
        shard: u32,
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
}

/// follow_metadata and apply_retention.
const HOUSEKEEPING_TASKS: u64 = 2;

pub async fn run_shard(params: ShardParams) -> Result<(), ShardError> {
    let shard_id = params.shard_id;
    let metadata = MetadataClient::connect(params.metadata_link).await;
    tracing::debug!(
        shard_id,
        version = metadata.current().version,
        "metadata connected"
    );
    // Connected together: each completes only when its other end (another thread) connects as well.
    let ((mesh, peers), stop) = futures::join!(
        Mesh::connect(params.mesh, params.metrics.clone()),
        params.stop.connect()
    );
    tracing::debug!(shard_id, "mesh connected");
    let request_bytes_budget = Rc::new(glommio::sync::Semaphore::new(
        params.config.inflight_request_bytes_max as u64,
    ));
    let groups = crate::group::Coordinator::new(&params.config);
    let storage = ShardStorage::new(
        params.data_dir,
        params.metrics.storage.clone(),
        params.config.tail_cache_shard_bytes,
    );
    let ctx = Rc::new(ShardContext {
        shard_id: params.shard_id,
        shard_count: params.shard_count,
        config: Rc::new(params.config),
        storage,
        metadata,
        mesh,
        connections: Cell::new(0),
        stopping: Cell::new(false),
        request_bytes_budget,
        producer_ids: Default::default(),
        metrics: params.metrics,
        groups,
        fetch_sessions: RefCell::new(FetchSessions::new(params.shard_id, params.shard_count)),
    });
    for (peer, receiver) in peers {
        glommio::spawn_local(serve_peer(Rc::downgrade(&ctx), peer, receiver)).detach();
    }
    let placement = Placement::default();
    placement.reconcile(&ctx, &ctx.snapshot()).await;
    // Background work that changes files holds a permit while it runs (one for following the metadata: opening
    // and deleting partitions, one for retention and compaction), so shutdown can wait for both by taking all:
    // a file operation still running on glommio's blocking threads when the executor exits has nobody to answer
    // to (glommio panics on that).
    let housekeeping = Rc::new(glommio::sync::Semaphore::new(HOUSEKEEPING_TASKS));
    glommio::spawn_local(follow_metadata(
        ctx.clone(),
        placement,
        housekeeping.clone(),
    ))
    .detach();
    glommio::spawn_local(apply_retention(ctx.clone(), housekeeping.clone())).detach();

    let addr = ctx.config.listen;
    let listener = TcpListener::bind(addr).map_err(|e| ShardError::Listen {
        shard: ctx.shard_id,
        addr,
        source: e.into(),
    })?;
    tracing::info!(shard = ctx.shard_id, %addr, partitions = ctx.storage.partitions().len(), "shard serving");
    let accepting = glommio::spawn_local(accept_loop(ctx.clone(), listener));
    let _ = stop.recv().await;
    ctx.stopping.set(true);
    accepting.cancel().await;
    let idle = glommio::timer::timeout(ctx.config.request_timeout, async {
        Ok(housekeeping.acquire_permit(HOUSEKEEPING_TASKS).await)
    })
    .await;
    if idle.is_err() {
        tracing::warn!(
            shard = ctx.shard_id,
            "background file work still running at shutdown; stopping anyway"
        );
    }
    housekeeping.close();
    ctx.storage.close_all().await;
    tracing::info!(shard = ctx.shard_id, "shard stopped");
    Ok(())
}

/// The topic ids of the partitions this shard has open, to notice a topic deleted and created again by name.
#[derive(Default)]
struct Placement {
    open: RefCell<HashMap<(String, i32), [u8; 16]>>,
}

impl Placement {
    async fn reconcile(&self, ctx: &ShardContext, snapshot: &Arc<MetadataSnapshot>) {
        let mut wanted = HashMap::new();
        for topic in snapshot.topics.values() {
            for p in &topic.partitions {
                if p.shard == ctx.shard_id && p.leader == ctx.config.node_id {
                    wanted.insert((topic.name.clone(), p.partition), topic.topic_id);
                }
            }
        }
        let stale: Vec<(String, i32)> = {
            let open = self.open.borrow();
            open.iter()
                .filter(|(key, id)| wanted.get(*key) != Some(*id))
                .map(|(key, _)| key.clone())
                .collect()
        };
        for (topic, partition) in stale {
            self.open.borrow_mut().remove(&(topic.clone(), partition));
            match ctx.storage.delete_partition(&topic, partition).await {
                Ok(()) => tracing::info!(%topic, partition, "partition removed"),
                Err(err) => {
                    tracing::error!(%topic, partition, %err, "cannot remove partition data")
                }
            }
        }
        for ((topic, partition), id) in wanted {
            if self.open.borrow().contains_key(&(topic.clone(), partition)) {
                continue;
            }
            if let Ok(log) = open_local(ctx, snapshot, &topic, partition).await {
                if topic == crate::group::OFFSETS_TOPIC {
                    let epoch =
                        crate::route::locate(snapshot, &topic, partition).map_or(0, |(_, e)| e);
                    let groups = ctx.groups.clone();
                    glommio::spawn_local(async move { groups.load(partition, log, epoch).await })
                        .detach();
                }
                self.open.borrow_mut().insert((topic, partition), id);
            }
        }
        apply_configs(ctx, snapshot);
        let open = ctx.storage.partitions().len() as u64;
        ctx.metrics
            .partitions_open
            .store(open, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Gives every open partition its topic's settings as the snapshot layers them, so AlterConfigs (topic or
/// dynamic broker configs) takes effect at once. Computed once per topic; a partition whose settings did not
/// change is not touched.
fn apply_configs(ctx: &ShardContext, snapshot: &MetadataSnapshot) {
    let mut per_topic: HashMap<String, pinlog_engine::LogConfig> = HashMap::new();
    for (topic, partition, log) in ctx.storage.partitions() {
        let Some(meta) = snapshot.topic(&topic) else {
            continue;
        };
        let config = *per_topic
            .entry(topic.clone())
            .or_insert_with(|| ctx.log_config(snapshot, &meta.configs));
        if log.config() != config {
            log.set_config(config);
            tracing::info!(%topic, partition, "partition settings changed");
        }
    }
}

async fn follow_metadata(
    ctx: Rc<ShardContext>,
    placement: Placement,
    housekeeping: Rc<glommio::sync::Semaphore>,
) {
    let mut seen = ctx.snapshot().version;
    loop {
        let snapshot = ctx.metadata.changed(seen).await;
        seen = snapshot.version;
        let Ok(_busy) = housekeeping.acquire_permit(1).await else {
            return; // shutting down
        };
        placement.reconcile(&ctx, &snapshot).await;
    }
}

/// Retention and compaction run once per `retention_check_interval` per shard (Kafka's log.retention.check.interval.ms), not per
/// partition, and deletes only whole closed segments. Partitions are visited in turn, so one partition's retired
/// files are freed at a time.
async fn apply_retention(ctx: Rc<ShardContext>, housekeeping: Rc<glommio::sync::Semaphore>) {
    loop {
        glommio::timer::sleep(ctx.config.retention_check_interval).await;
        let Ok(_busy) = housekeeping.acquire_permit(1).await else {
            return; // shutting down
        };
        let now = crate::partition_ops::now_ms();
        for (topic, partition, log) in ctx.storage.partitions() {
            match log.enforce_retention(now).await {
                Ok(0) => {}
                Ok(deleted) => {
                    tracing::info!(%topic, partition, deleted, "retention deleted segments")
                }
                Err(err) => tracing::error!(%topic, partition, %err, "retention failed"),
            }
            // Compaction rewrites closed segments of compacted topics only; it yields to requests as it goes.
            match log.compact(now).await {
                Ok(stats) if stats.segments_cleaned > 0 => tracing::info!(
                    %topic,
                    partition,
                    segments = stats.segments_cleaned,
                    records_removed = stats.records_removed,
                    bytes_before = stats.bytes_before,
                    bytes_after = stats.bytes_after,
                    "compacted"
                ),
                Ok(_) => {}
                Err(err) => tracing::error!(%topic, partition, %err, "compaction failed"),
            }
            // The files retention (or DeleteRecords since the last pass) retired, freed in paced steps.
            match log.reap_retired(&|| ctx.stopping.get()).await {
                Ok(0) => {}
                Ok(freed) => {
                    tracing::debug!(%topic, partition, freed, "retired segment files freed")
                }
                Err(err) => {
                    tracing::error!(%topic, partition, %err, "freeing retired segment files failed")
                }
            }
        }
    }
}
