//! The raft shard on its own executor thread, with data shards on two more glommio executors, talking only
//! through the links `spawn` returns.

use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use glommio::{LocalExecutorBuilder, Placement};
use pinlog_raft_shard::{
    spawn, CommandOutcome, MetadataClient, MetadataCommand, MetadataSnapshot, NewTopic,
    ProposeError, RaftShardConfig, ShardLink,
};

const WAIT: Duration = Duration::from_secs(5);

fn config(dir: &Path) -> RaftShardConfig {
    RaftShardConfig {
        node_id: 1,
        dir: dir.to_owned(),
        cpu: None,
        shard_count: 2,
        tick_ms: 100,
        advertised_host: "127.0.0.1".into(),
        advertised_port: 9092,
        channel_capacity: 16,
        snapshot_every_entries: 1000,
    }
}

fn test_dir() -> tempfile::TempDir {
    let base = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    tempfile::Builder::new()
        .prefix("raft-shard-spawn-")
        .tempdir_in(base)
        .expect("temp dir")
}

/// Runs `f` with a connected client on a fresh glommio executor and returns its result.
fn on_shard<T, F, Fut>(name: &str, link: ShardLink, f: F) -> std::thread::JoinHandle<T>
where
    T: Send + 'static,
    F: FnOnce(std::rc::Rc<MetadataClient>) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = T> + 'static,
{
    let handle = LocalExecutorBuilder::new(Placement::Unbound)
        .name(name)
        .io_memory(0)
        .spawn(move || async move { f(MetadataClient::connect(link).await).await })
        .expect("shard executor");
    std::thread::spawn(move || handle.join().expect("shard executor ran"))
}

/// Waits (bounded) until the client's snapshot satisfies `done`.
async fn wait_for(
    client: &MetadataClient,
    done: impl Fn(&MetadataSnapshot) -> bool,
) -> Arc<MetadataSnapshot> {
    let deadline = Instant::now() + WAIT;
    let mut snapshot = client.current();
    while !done(&snapshot) {
        let left = deadline
            .checked_duration_since(Instant::now())
            .expect("metadata condition within the wait");
        snapshot =
            glommio::timer::timeout(left, async { Ok(client.changed(snapshot.version).await) })
                .await
                .expect("a newer snapshot within the wait");
    }
    snapshot
}

fn topics(names: &[&str]) -> MetadataCommand {
    let topics = names
        .iter()
        .map(|n| NewTopic {
            name: (*n).into(),
            partitions: 4,
            replication_factor: 1,
            configs: Default::default(),
        })
        .collect();
    MetadataCommand::CreateTopics {
        topics,
        validate_only: false,
    }
}

#[test]
fn topics_created_on_one_shard_reach_both_and_survive_a_restart() {
    let dir = test_dir();
    let started = Instant::now();
    let (raft, mut links) = spawn(config(dir.path())).expect("spawn");
    let link1 = links.pop().expect("link 1");
    let link0 = links.pop().expect("link 0");

    let proposer = on_shard("shard-0", link0, move |client| async move {
        let elected = wait_for(&client, |s| s.controller_id == 1 && !s.brokers.is_empty()).await;
        let elected_after = started.elapsed();
        let outcome = client
            .propose(topics(&["orders", "payments", "bad/name"]), WAIT)
            .await;
        // The snapshot of the apply arrived before the outcome.
        (elected, elected_after, outcome, client.current())
    });
    let watcher = on_shard("shard-1", link1, |client| async move {
        wait_for(&client, |s| {
            s.topic("orders").is_some() && s.topic("payments").is_some()
        })
        .await
    });
    let (elected, elected_after, outcome, after_propose) = proposer.join().expect("shard 0");
    let seen_by_1 = watcher.join().expect("shard 1");

    assert!(
        elected_after < Duration::from_secs(1),
        "controller known after {elected_after:?}"
    );
    assert_eq!(elected.brokers[0].port, 9092);
    assert_eq!(elected.brokers[0].shard_count, 2);
    let Ok(CommandOutcome::Topics(outcomes)) = outcome else {
        panic!("topic outcomes, got {outcome:?}")
    };
    assert_eq!(
        outcomes.iter().map(|o| o.error_code).collect::<Vec<_>>(),
        vec![0, 0, 17]
    );
    let orders = after_propose
        .topic("orders")
        .expect("visible when propose returns");
    assert_eq!(orders.topic_id, outcomes[0].topic_id);
    assert_eq!(seen_by_1.topic("orders"), Some(orders));
    assert_eq!(seen_by_1.topic("payments"), after_propose.topic("payments"));
    raft.shutdown().expect("clean shutdown");

    let (raft, mut links) = spawn(config(dir.path())).expect("respawn");
    let link0 = links.remove(0);
    let recovered = on_shard(
        "shard-0-again",
        link0,
        |client| async move { client.current() },
    )
    .join()
    .expect("shard 0 again");
    assert_eq!(recovered.cluster_id, after_propose.cluster_id);
    assert_eq!(
        recovered.topics, after_propose.topics,
        "same topics, partitions and topic ids"
    );
    assert_eq!(recovered.brokers, after_propose.brokers);
    assert!(recovered.version >= after_propose.version);
    raft.shutdown().expect("clean shutdown");
}

#[test]
fn proposals_time_out_once_the_raft_shard_is_gone() {
    let dir = test_dir();
    let (raft, links) = spawn(config(dir.path())).expect("spawn");
    let (connected_tx, connected_rx) = mpsc::channel();
    let (stopped_tx, stopped_rx) = mpsc::channel::<()>();
    let mut links = links.into_iter();
    let link0 = links.next().expect("link 0");
    let shard = on_shard("shard-0", link0, move |client| async move {
        wait_for(&client, |s| s.controller_id == 1).await;
        connected_tx.send(()).expect("signal");
        // Blocking this test executor is fine: nothing else runs on it until the raft shard is gone.
        stopped_rx.recv().expect("raft stopped");
        let timeout = Duration::from_secs(3);
        let started = Instant::now();
        let first = client.propose(topics(&["late"]), timeout).await;
        let second = client.propose(topics(&["later"]), timeout).await;
        (first, second, started.elapsed(), timeout)
    });
    connected_rx
        .recv_timeout(WAIT)
        .expect("shard connected and saw a controller");
    raft.shutdown().expect("clean shutdown");
    drop(links);
    stopped_tx.send(()).expect("signal");
    let (first, second, elapsed, timeout) = shard.join().expect("shard");
    assert!(matches!(first, Err(ProposeError::Timeout(_))), "{first:?}");
    assert!(
        matches!(second, Err(ProposeError::Timeout(_))),
        "{second:?}"
    );
    // The closed link ends both at once, not at their timeouts.
    assert!(elapsed < timeout, "ended after {elapsed:?}");
}
