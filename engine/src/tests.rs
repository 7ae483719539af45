//! Behaviour tests: each runs a real glommio executor on a disk directory (O_DIRECT does not
//! work on tmpfs).

use crate::batch::{build_batch, patch, validate, validate_stored};
use crate::segment::{index_path, log_path};
use crate::{FlushPolicy, LogConfig, PartitionLog, ReadError, ShardStorage};
use glommio::{LocalExecutorBuilder, Placement};
use std::future::Future;
use std::path::Path;
use std::rc::Rc;
use std::time::Duration;

pub(crate) fn run<F: Future<Output = ()> + 'static>(f: impl FnOnce() -> F + Send + 'static) {
    LocalExecutorBuilder::new(Placement::Unbound)
        .io_memory(0)
        .spawn(move || async move { f().await })
        .expect("executor")
        .join()
        .expect("executor thread");
}

pub(crate) fn temp_dir() -> tempfile::TempDir {
    let base = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/tmp");
    std::fs::create_dir_all(&base).unwrap();
    tempfile::TempDir::new_in(base).unwrap()
}

/// 16 KiB segments, no retention by time (test batches carry timestamps near 0, which any time limit has passed;
/// a roll applies retention), and no segment size jitter: these tests know where a segment rolls.
pub(crate) fn small_config() -> LogConfig {
    LogConfig {
        segment_bytes: 16 << 10,
        segment_jitter_percent: 0,
        retention_ms: -1,
        index_interval_bytes: 1024,
        tail_cache_bytes: 0,
        ..LogConfig::default()
    }
}

/// [`small_config`] with a 1 MiB tail cache: recent batches are read from memory.
pub(crate) fn tail_cached_config() -> LogConfig {
    LogConfig {
        tail_cache_bytes: 1 << 20,
        ..small_config()
    }
}

/// The batch as the engine stores it after assigning `base`.
pub(crate) fn stored(mut b: Vec<u8>, base: i64) -> Vec<u8> {
    patch(&mut b, base, 0);
    b
}

/// Read every batch from `from` one at a time, returning their base offsets and bytes.
pub(crate) async fn read_all(log: &PartitionLog, from: i64) -> Vec<(i64, Vec<u8>)> {
    let mut out = Vec::new();
    let mut offset = from;
    while offset < log.high_watermark() {
        let r = log.read(offset, 1).await.unwrap().records.into_contiguous();
        let h = validate_stored(&r).expect("reads return valid whole batches");
        assert_eq!(
            h.total_bytes,
            r.len(),
            "max_bytes 1 returns exactly one batch"
        );
        assert!(
            offset <= h.last_offset(),
            "the batch holding offset, or the next one after compaction"
        );
        out.push((h.base_offset, r.to_vec()));
        offset = h.last_offset() + 1;
    }
    out
}

pub(crate) async fn timeout<T>(f: impl Future<Output = T>) -> T {
    let limit = async {
        glommio::timer::sleep(Duration::from_secs(10)).await;
        panic!("test wait timed out");
    };
    futures_lite::future::or(f, limit).await
}

#[test]
fn append_read_roundtrip_across_rolls_and_reopen() {
    run(|| async {
        let dir = temp_dir();
        let log = PartitionLog::open(dir.path(), small_config())
            .await
            .unwrap();
        let mut expected = Vec::new();
        for i in 0..60 {
            let b = build_batch(2 + i % 3, 300, 1000 + i as i64);
            let out = log.append_slice(&b, 0, 0).unwrap();
            assert_eq!(out.base_offset, log.log_end_offset() - 2 - i64::from(i % 3));
            expected.push((out.base_offset, stored(b, out.base_offset)));
            if i % 7 == 0 {
                timeout(log.wait_durable(out.last_offset)).await.unwrap();
            }
        }
        timeout(log.wait_durable(log.log_end_offset() - 1))
            .await
            .unwrap();
        assert_eq!(log.high_watermark(), log.log_end_offset());
        assert!(log.inner.borrow().segments.len() > 3, "segments rolled");
        assert_eq!(read_all(&log, 0).await, expected);
        // A read starting in the middle of a batch returns that whole batch.
        let mid = expected[10].0 + 1;
        assert_eq!(
            log.read(mid, 1)
                .await
                .unwrap()
                .records
                .into_contiguous()
                .to_vec(),
            expected[10].1
        );
        let leo = log.log_end_offset();
        log.close().await.unwrap();
        let refused = log.append_slice(&build_batch(1, 10, 5), 0, 0);
        assert!(
            matches!(refused, Err(crate::AppendError::Closed)),
            "closed log refuses appends: {refused:?}"
        );
        assert_eq!(
            crate::AppendError::Closed.kafka_code(),
            6,
            "NOT_LEADER_OR_FOLLOWER"
        );

        let log = PartitionLog::open(dir.path(), small_config())
            .await
            .unwrap();
        assert_eq!(log.log_end_offset(), leo);
        assert_eq!(log.high_watermark(), leo);
        assert_eq!(read_all(&log, 0).await, expected);
        let out = log.append_slice(&build_batch(1, 10, 5), 3, 0).unwrap();
        assert_eq!(out.base_offset, log.log_end_offset() - 1);
        timeout(log.wait_durable(out.last_offset)).await.unwrap();
        log.close().await.unwrap();
    });
}

#[test]
fn each_partition_rolls_at_its_own_share_of_the_jitter_and_keeps_it_across_reopen() {
    run(|| async {
        let dir = temp_dir();
        let segment_bytes = 1 << 20;
        let config = LogConfig {
            segment_bytes,
            segment_jitter_percent: 5,
            ..small_config()
        };
        let mut sizes = Vec::new();
        for partition in 0..16 {
            let path = dir.path().join(format!("topic-{partition}"));
            let log = PartitionLog::open(&path, config).await.unwrap();
            let size = log.segment_bytes_max();
            assert!(
                segment_bytes - segment_bytes * 5 / 100 <= size && size <= segment_bytes,
                "a share of at most 5 %: {size}"
            );
            if partition == 0 {
                // The roll comes at this partition's size: the first segment ends within one batch of it.
                let batch = build_batch(4, 1000, 1);
                while log.inner.borrow().segments.len() < 2 {
                    log.append_slice(&batch, 0, 0).unwrap();
                }
                let first = log.inner.borrow().segments[0].state.borrow().size;
                assert!(
                    first <= size && size - first < batch.len() as u64,
                    "rolled at {first}, size {size}"
                );
                timeout(log.wait_durable(log.log_end_offset() - 1))
                    .await
                    .unwrap();
            }
            log.set_config(LogConfig {
                segment_jitter_percent: 0,
                ..config
            });
            assert_eq!(log.segment_bytes_max(), segment_bytes, "0 turns it off");
            log.close().await.unwrap();
            let reopened = PartitionLog::open(&path, config).await.unwrap();
            assert_eq!(
                reopened.segment_bytes_max(),
                size,
                "the same share after a restart"
            );
            reopened.close().await.unwrap();
            sizes.push(size);
        }
        let (min, max) = (sizes.iter().min().unwrap(), sizes.iter().max().unwrap());
        assert!(
            max - min > segment_bytes * 5 / 100 / 4,
            "16 partitions spread over more than a quarter of the jitter: {sizes:?}"
        );
    });
}

#[test]
fn kip74_first_batch_whole_and_max_bytes() {
    run(|| async {
        let dir = temp_dir();
        let log = PartitionLog::open(dir.path(), tail_cached_config())
            .await
            .unwrap();
        let big = build_batch(1, 3000, 1);
        let small = build_batch(1, 100, 2);
        let mut request = big.clone();
        request.extend_from_slice(&small);
        request.extend_from_slice(&small);
        let out = log.append_slice(&request, 0, 0).unwrap();
        assert_eq!((out.base_offset, out.last_offset), (0, 2));
        timeout(log.wait_durable(2)).await.unwrap();
        // From the tail cache.
        assert_eq!(log.read(0, 10).await.unwrap().records.len(), big.len());
        assert_eq!(
            log.read(0, big.len() + small.len())
                .await
                .unwrap()
                .records
                .len(),
            big.len() + small.len()
        );
        assert_eq!(
            log.read(0, 1 << 20).await.unwrap().records.len(),
            request.len()
        );
        assert_eq!(
            log.read(1, 1 << 20).await.unwrap().records.len(),
            2 * small.len()
        );
        // offset == hw: empty; beyond: out of range.
        let r = log.read(3, 100).await.unwrap();
        assert!(r.records.is_empty());
        assert_eq!(r.high_watermark, 3);
        assert!(matches!(
            log.read(4, 100).await,
            Err(ReadError::OffsetOutOfRange { .. })
        ));
        log.close().await.unwrap();
        // Same answers from disk.
        let log = PartitionLog::open(dir.path(), small_config())
            .await
            .unwrap();
        assert_eq!(log.read(0, 10).await.unwrap().records.len(), big.len());
        assert_eq!(
            log.read(0, big.len() + small.len())
                .await
                .unwrap()
                .records
                .len(),
            big.len() + small.len()
        );
        assert_eq!(
            log.read(0, 1 << 20).await.unwrap().records.len(),
            request.len()
        );
        let err = log.read(-1, 100).await.unwrap_err();
        assert_eq!(err.kafka_code(), 1);
        log.close().await.unwrap();
    });
}

/// A tailing read is answered without a task (the fetch path's fast path): memory answers the end of the log, the
/// tail cache and offsets out of range, and only records on disk alone are left to `read`, with the same answers.
#[test]
fn memory_answers_what_it_holds_and_leaves_the_disk_to_read() {
    run(|| async {
        let dir = temp_dir();
        let log = PartitionLog::open(dir.path(), tail_cached_config())
            .await
            .unwrap();
        let batches: Vec<u8> = [build_batch(2, 500, 1), build_batch(1, 300, 2)].concat();
        log.append_slice(&batches, 0, 0).unwrap();
        timeout(log.wait_durable(2)).await.unwrap();
        let from_memory = log.read_in_memory(0, 1 << 20).expect("in the tail cache");
        let from_memory = from_memory.unwrap().records.into_contiguous();
        assert_eq!(from_memory.len(), batches.len());
        let at_end = log.read_in_memory(3, 100).expect("the end").unwrap();
        assert!(at_end.records.is_empty());
        assert_eq!((at_end.high_watermark, at_end.log_start_offset), (3, 0));
        for beyond in [-1, 4] {
            let refused = log.read_in_memory(beyond, 100).expect("out of range");
            assert!(matches!(refused, Err(ReadError::OffsetOutOfRange { .. })));
        }
        log.close().await.unwrap();

        // Reopened without a tail cache: the records are on disk only.
        let log = PartitionLog::open(dir.path(), small_config())
            .await
            .unwrap();
        assert!(log.read_in_memory(0, 1 << 20).is_none());
        assert!(log.read_in_memory(2, 1 << 20).is_none());
        let from_disk = log.read(0, 1 << 20).await.unwrap();
        assert!(
            from_disk.records.into_contiguous() == from_memory,
            "the same bytes from the disk"
        );
        let at_end = log
            .read_in_memory(3, 100)
            .expect("the end needs no disk")
            .unwrap();
        assert!(at_end.records.is_empty() && at_end.high_watermark == 3);
        log.close().await.unwrap();
    });
}

#[test]
fn bad_batches_rejected_and_nothing_appended() {
    run(|| async {
        let dir = temp_dir();
        let log = PartitionLog::open(dir.path(), small_config())
            .await
            .unwrap();
        log.append_slice(&build_batch(1, 10, 1), 0, 0).unwrap();
        let good = build_batch(2, 10, 1);
        let mut bad_crc = good.clone();
        *bad_crc.last_mut().unwrap() ^= 1;
        let mut magic1 = good.clone();
        magic1[16] = 1;
        let truncated = good[..good.len() - 3].to_vec();
        for (bad, code) in [(bad_crc, 2), (magic1, 43), (truncated, 2), (vec![0; 5], 2)] {
            let mut request = good.clone();
            request.extend_from_slice(&bad);
            let err = log.append_slice(&request, 0, 0).expect_err("rejected");
            assert_eq!(err.kafka_code(), code, "{err}");
            assert_eq!(log.log_end_offset(), 1, "nothing appended");
        }
        assert_eq!(log.append_slice(&[], 0, 0).unwrap_err().kafka_code(), 2);
        let err = log
            .append_slice(&build_batch(1, 2 << 20, 1), 0, 0)
            .unwrap_err();
        assert_eq!(err.kafka_code(), 10);
        assert_eq!(log.log_end_offset(), 1);
        timeout(log.wait_durable(0)).await.unwrap();
        assert_eq!(read_all(&log, 0).await.len(), 1);
        log.close().await.unwrap();
    });
}

#[test]
fn group_commit_batches_appends_into_few_commits() {
    run(|| async {
        let dir = temp_dir();
        let log = PartitionLog::open(dir.path(), LogConfig::default())
            .await
            .unwrap();
        let producers = 20;
        let rounds = 10;
        let mut tasks = Vec::new();
        for _ in 0..producers {
            let log = log.clone();
            tasks.push(glommio::spawn_local(async move {
                for _ in 0..rounds {
                    let out = log.append_slice(&build_batch(1, 100, 1), 0, 0).unwrap();
                    log.wait_durable(out.last_offset).await.unwrap();
                    assert!(log.high_watermark() > out.last_offset);
                }
            }));
        }
        for t in tasks {
            timeout(t).await;
        }
        let appends = producers * rounds;
        assert_eq!(log.high_watermark(), appends as i64);
        let commits = log.commit_count();
        assert!(
            commits > 0 && commits <= (appends / 4) as u64,
            "{commits} group commits for {appends} appends"
        );
        log.close().await.unwrap();
    });
}

/// How a commit becomes durable follows how the active segment's file was opened, not the policy of the moment: a
/// file opened under the durable policy is written O_DSYNC and takes no fdatasync per commit; a file opened under
/// another policy keeps an fdatasync per commit after the policy turns durable; and reopening the log under the
/// durable policy opens its active segment for durable writes again.
#[test]
fn commits_become_durable_the_way_the_active_segment_was_opened() {
    run(|| async {
        let dir = temp_dir();
        let never = LogConfig {
            flush: FlushPolicy::Never,
            ..LogConfig::default()
        };
        let log = PartitionLog::open(dir.path(), never).await.unwrap();
        log.append_slice(&build_batch(1, 10, 1), 0, 0).unwrap();
        log.close().await.unwrap();

        // Reopened under `never`: the active segment's file is a plain one.
        let metrics = std::sync::Arc::new(crate::StorageMetrics::default());
        let log = PartitionLog::open_in_shard(
            dir.path(),
            never,
            metrics.clone(),
            crate::TailBudget::unlimited(metrics.clone()),
        )
        .await
        .unwrap();
        log.set_config(LogConfig::default());
        let out = log.append_slice(&build_batch(1, 10, 1), 0, 0).unwrap();
        timeout(log.wait_durable(out.last_offset)).await.unwrap();
        assert!(log.commit_count() >= 1);
        assert_eq!(
            metrics.fdatasync_latency.count(),
            log.commit_count(),
            "a plain file needs an fdatasync per commit"
        );
        log.close().await.unwrap();

        // Reopened under the durable policy: the active segment is written durably, with no fdatasync.
        let metrics = std::sync::Arc::new(crate::StorageMetrics::default());
        let log = PartitionLog::open_in_shard(
            dir.path(),
            LogConfig::default(),
            metrics.clone(),
            crate::TailBudget::unlimited(metrics.clone()),
        )
        .await
        .unwrap();
        let out = log.append_slice(&build_batch(1, 10, 1), 0, 0).unwrap();
        timeout(log.wait_durable(out.last_offset)).await.unwrap();
        assert!(log.commit_count() >= 1);
        assert_eq!(metrics.commit_latency.count(), log.commit_count());
        assert_eq!(
            metrics.fdatasync_latency.count(),
            0,
            "the write was the sync"
        );
        assert_eq!(log.high_watermark(), 3);
        log.close().await.unwrap();
    });
}

#[test]
fn sequential_disk_reads_are_served_by_read_ahead() {
    run(|| async {
        let dir = temp_dir();
        let config = LogConfig {
            tail_cache_bytes: 0,
            ..LogConfig::default()
        };
        let log = PartitionLog::open(dir.path(), config).await.unwrap();
        let mut expected = Vec::new();
        for i in 0..48 {
            let b = build_batch(4, 16 << 10, i);
            let out = log.append_slice(&b, 0, 0).unwrap();
            expected.extend(stored(b, out.base_offset));
        }
        timeout(log.wait_durable(log.log_end_offset() - 1))
            .await
            .unwrap();
        // A random read first: it starts no window.
        log.read(100, 64 << 10).await.unwrap();
        assert_eq!(log.readahead.borrow().hits(), 0);
        let mut read = Vec::new();
        let mut offset = 0;
        while offset < log.high_watermark() {
            let r = log
                .read(offset, 256 << 10)
                .await
                .unwrap()
                .records
                .into_contiguous();
            let mut pos = 0;
            while pos < r.len() {
                let h = validate_stored(&r[pos..]).expect("whole valid batches");
                offset = h.last_offset() + 1;
                pos += h.total_bytes;
            }
            read.extend_from_slice(&r);
        }
        assert!(
            read == expected,
            "sequential reads return the log byte for byte"
        );
        assert!(
            log.readahead.borrow().hits() >= 3,
            "{} reads served by read-ahead",
            log.readahead.borrow().hits()
        );
        log.close().await.unwrap();
    });
}

#[test]
fn wait_for_data_any_is_woken_by_an_append_to_any_log() {
    run(|| async {
        let (dir_a, dir_b) = (temp_dir(), temp_dir());
        let a = PartitionLog::open(dir_a.path(), LogConfig::default())
            .await
            .unwrap();
        let b = PartitionLog::open(dir_b.path(), LogConfig::default())
            .await
            .unwrap();
        let waiter = {
            let waits = vec![(a.clone(), 0), (b.clone(), 0)];
            glommio::spawn_local(async move {
                PartitionLog::wait_for_data_any(&waits).await;
                (waits[0].0.high_watermark(), waits[1].0.high_watermark())
            })
        };
        glommio::yield_if_needed().await;
        glommio::timer::sleep(Duration::from_millis(5)).await;
        assert_eq!((a.high_watermark(), b.high_watermark()), (0, 0));
        let batch = build_batch(3, 50, 1);
        b.append_slice(&batch, 0, 0).unwrap();
        assert_eq!(timeout(waiter).await, (0, 3), "woken by the second log");
        // Already past the offset: resolves at once. A dropped waiter leaves no trace (bounded wait lists).
        PartitionLog::wait_for_data_any(&[(a.clone(), 0), (b.clone(), 2)]).await;
        let gone = futures_lite::future::or(
            async {
                PartitionLog::wait_for_data_any(&[(a.clone(), 10), (b.clone(), 10)]).await;
                true
            },
            async { false },
        );
        assert!(!gone.await);
        a.close().await.unwrap();
        b.close().await.unwrap();
    });
}

#[test]
fn interval_policy_acks_at_once_and_close_flushes() {
    run(|| async {
        let dir = temp_dir();
        let config = LogConfig {
            flush: FlushPolicy::Interval {
                interval_ms: 60_000,
            },
            ..small_config()
        };
        let log = PartitionLog::open(dir.path(), config).await.unwrap();
        let out = log.append_slice(&build_batch(2, 10, 1), 0, 0).unwrap();
        assert_eq!(
            log.high_watermark(),
            2,
            "non-durable policies expose the log end"
        );
        timeout(log.wait_durable(out.last_offset)).await.unwrap();
        assert_eq!(
            log.read(0, 100).await.unwrap().records.len(),
            build_batch(2, 10, 1).len()
        );
        timeout(log.close()).await.unwrap();
        let log = PartitionLog::open(dir.path(), config).await.unwrap();
        assert_eq!(log.log_end_offset(), 2);
        log.close().await.unwrap();
    });
}

/// Append `n` single-record batches durably; returns the logical end position of segment 0.
/// A log with [`small_config`] and 200 batches: several closed segments (retention off while it fills: a roll
/// applies retention too).
pub(crate) async fn filled_small_log(dir: &Path) -> Rc<PartitionLog> {
    let log = PartitionLog::open(dir, small_config()).await.unwrap();
    fill(&log, 200).await;
    log
}

pub(crate) async fn fill(log: &PartitionLog, n: usize) -> u64 {
    for _ in 0..n {
        let out = log.append_slice(&build_batch(1, 200, 1), 0, 0).unwrap();
        timeout(log.wait_durable(out.last_offset)).await.unwrap();
    }
    // Rolled segments are finalized (indexes persisted) off the commit path.
    log.after_roll_done().await;
    let end = log.inner.borrow().segments[0].state.borrow().size;
    end
}

fn write_at(path: &Path, pos: u64, bytes: &[u8]) {
    use std::os::unix::fs::FileExt;
    let f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    f.write_all_at(bytes, pos).unwrap();
    f.sync_all().unwrap();
}

#[test]
fn recovery_truncates_torn_and_garbage_tails_without_resurrection() {
    run(|| async {
        let dir = temp_dir();
        let config = LogConfig::default();
        let log = PartitionLog::open(dir.path(), config).await.unwrap();
        let end = fill(&log, 5).await;
        log.close().await.unwrap();
        let path = log_path(dir.path(), 0);

        // A torn half batch with the right next offset, then garbage over several blocks.
        let next = stored(build_batch(1, 200, 1), 5);
        write_at(&path, end, &next[..next.len() / 2]);
        write_at(&path, end + next.len() as u64 / 2, &[0xAB; 10_000]);
        let log = PartitionLog::open(dir.path(), config).await.unwrap();
        assert_eq!(log.log_end_offset(), 5);
        let out = log.append_slice(&build_batch(1, 20, 9), 0, 0).unwrap();
        assert_eq!(out.base_offset, 5);
        timeout(log.wait_durable(5)).await.unwrap();
        log.close().await.unwrap();

        // A complete valid batch with a non-contiguous offset is cut as well.
        let log = PartitionLog::open(dir.path(), config).await.unwrap();
        assert_eq!(
            log.log_end_offset(),
            6,
            "garbage past the new batch stayed dead"
        );
        let end = log.inner.borrow().segments[0].state.borrow().size;
        log.close().await.unwrap();
        write_at(&path, end, &stored(build_batch(1, 30, 1), 42));
        let log = PartitionLog::open(dir.path(), config).await.unwrap();
        assert_eq!(log.log_end_offset(), 6);
        let batches = read_all(&log, 0).await;
        assert_eq!(batches.len(), 6);
        assert_eq!(batches[5].1, stored(build_batch(1, 20, 9), 5));
        log.close().await.unwrap();
        let log = PartitionLog::open(dir.path(), config).await.unwrap();
        assert_eq!(log.log_end_offset(), 6);
        log.close().await.unwrap();
    });
}

#[test]
fn recovery_cuts_a_corrupt_crc_in_the_middle() {
    run(|| async {
        let dir = temp_dir();
        let log = PartitionLog::open(dir.path(), LogConfig::default())
            .await
            .unwrap();
        fill(&log, 4).await;
        let second = log.inner.borrow().segments[0].state.borrow().size / 4;
        log.close().await.unwrap();
        write_at(&log_path(dir.path(), 0), second * 2 + 100, &[0xFF; 4]);
        let log = PartitionLog::open(dir.path(), LogConfig::default())
            .await
            .unwrap();
        assert_eq!(
            log.log_end_offset(),
            2,
            "stops at the first batch with a bad CRC"
        );
        log.close().await.unwrap();
    });
}

#[test]
fn index_rebuilt_when_deleted() {
    run(|| async {
        let dir = temp_dir();
        let log = filled_small_log(dir.path()).await;
        let expected = read_all(&log, 0).await;
        let first_index = std::fs::read(index_path(dir.path(), 0)).expect("index written at roll");
        assert!(first_index.len() >= 16, "sparse index has several entries");
        log.close().await.unwrap();
        std::fs::remove_file(index_path(dir.path(), 0)).unwrap();
        let log = PartitionLog::open(dir.path(), small_config())
            .await
            .unwrap();
        assert_eq!(
            std::fs::read(index_path(dir.path(), 0)).unwrap(),
            first_index
        );
        assert_eq!(read_all(&log, 0).await, expected);
        for offset in [0, 37, 63, 150, 199] {
            let r = log.read(offset, 1).await.unwrap().records.into_contiguous();
            assert_eq!(validate(&r, usize::MAX).unwrap().base_offset, offset);
        }
        log.close().await.unwrap();
    });
}

/// Kafka's retention.bytes keeps at least that much: a segment goes only if the log without it still holds
/// retention.bytes. (Deleting while the log was over the limit left a consumer at the end of the only closed segment
/// out of range as soon as the active one had a byte.)
#[test]
fn retention_by_bytes_keeps_at_least_the_limit() {
    run(|| async {
        let dir = temp_dir();
        let mut config = small_config();
        let log = filled_small_log(dir.path()).await;
        let (total, oldest) = {
            let inner = log.inner.borrow();
            assert!(inner.segments.len() >= 3);
            let oldest = inner.segments[0].state.borrow().size;
            (PartitionLog::segments_bytes(&inner), oldest)
        };

        config.retention_bytes = (total - oldest + 1) as i64;
        log.set_config(config);
        assert_eq!(
            log.enforce_retention(0).await.unwrap(),
            0,
            "without its oldest segment the log would hold less than retention.bytes"
        );

        config.retention_bytes = (total - oldest) as i64;
        log.set_config(config);
        assert_eq!(log.enforce_retention(0).await.unwrap(), 1);
        assert_eq!(
            PartitionLog::segments_bytes(&log.inner.borrow()),
            total - oldest
        );
        log.close().await.unwrap();
    });
}

#[test]
fn retention_by_bytes_and_time_deletes_closed_segments_only() {
    run(|| async {
        let dir = temp_dir();
        // Filled with retention off, then limited to nothing.
        let mut config = small_config();
        let log = filled_small_log(dir.path()).await;
        config.retention_bytes = 0;
        log.set_config(config);
        let segments = log.inner.borrow().segments.len();
        assert!(segments >= 3);
        let deleted = log.enforce_retention(0).await.unwrap();
        assert_eq!(deleted, segments - 1, "everything but the active segment");
        let active_base = log.inner.borrow().segments[0].base_offset;
        assert_eq!(log.log_start_offset(), active_base);
        assert!(!log_path(dir.path(), 0).exists());
        assert!(matches!(
            log.read(0, 10).await,
            Err(ReadError::OffsetOutOfRange { .. })
        ));
        assert_eq!(
            read_all(&log, active_base).await.len() as i64,
            200 - active_base
        );
        log.close().await.unwrap();

        let dir = temp_dir();
        config.retention_bytes = -1;
        let log = PartitionLog::open(dir.path(), config).await.unwrap();
        for i in 0..200 {
            let ts = if i < 100 { 1_000 } else { 50_000 };
            log.append_slice(&build_batch(1, 200, ts), 0, 0).unwrap();
        }
        timeout(log.wait_durable(199)).await.unwrap();
        log.after_roll_done().await;
        config.retention_ms = 1000;
        log.set_config(config);
        let deleted = log.enforce_retention(10_000).await.unwrap();
        assert!(deleted >= 1);
        let start = log.log_start_offset();
        assert!(
            start > 0 && start <= 100,
            "only segments of old batches go: {start}"
        );
        assert_eq!(log.enforce_retention(10_000).await.unwrap(), 0);
        let closed = log.inner.borrow().segments.len() - 1;
        assert_eq!(log.enforce_retention(1_000_000).await.unwrap(), closed);
        assert_eq!(
            log.inner.borrow().segments.len(),
            1,
            "the active segment is never deleted"
        );
        log.close().await.unwrap();
    });
}

#[test]
fn offset_for_timestamp_finds_first_batch_at_or_after() {
    run(|| async {
        let dir = temp_dir();
        let log = PartitionLog::open(dir.path(), small_config())
            .await
            .unwrap();
        for (i, ts) in [100, 300, 200, 400, 500].into_iter().enumerate() {
            log.append_slice(&build_batch(2, 500, ts), 0, 0).unwrap();
            assert_eq!(log.log_end_offset(), 2 * (i as i64 + 1));
        }
        timeout(log.wait_durable(9)).await.unwrap();
        assert_eq!(log.offset_for_timestamp(0).await.unwrap(), Some((0, 100)));
        assert_eq!(log.offset_for_timestamp(150).await.unwrap(), Some((2, 300)));
        assert_eq!(log.offset_for_timestamp(301).await.unwrap(), Some((6, 400)));
        assert_eq!(log.offset_for_timestamp(500).await.unwrap(), Some((8, 500)));
        assert_eq!(log.offset_for_timestamp(501).await.unwrap(), None);
        log.close().await.unwrap();
    });
}

/// With an I/O arena (`shard_io_memory_bytes`) the group commit's buffers come from it; without one they come from
/// the heap, and the metric an operator sizes the arena by counts each of them.
#[test]
fn group_commit_buffers_come_from_the_io_arena_and_heap_ones_are_counted() {
    for (io_memory, from_heap) in [(8 << 20, false), (0, true)] {
        LocalExecutorBuilder::new(Placement::Unbound)
            .io_memory(io_memory)
            .spawn(move || async move {
                let dir = temp_dir();
                let metrics = std::sync::Arc::new(crate::StorageMetrics::default());
                let storage =
                    ShardStorage::new(dir.path().to_path_buf(), metrics.clone(), usize::MAX);
                let log = storage
                    .open_partition("t", 0, LogConfig::default())
                    .await
                    .unwrap();
                for round in 0..3 {
                    // Three 900 KiB batches appended before the commit task runs: one buffer near the 4 MiB
                    // maximum, the size the arena must hold.
                    for _ in 0..3 {
                        log.append_slice(&build_batch(3, 300 << 10, 1), 0, 0)
                            .unwrap();
                    }
                    timeout(log.wait_durable(round * 9 + 8)).await.unwrap();
                }
                let outside = metrics
                    .write_buffers_outside_arena_total
                    .load(std::sync::atomic::Ordering::Relaxed);
                let expected = if from_heap { log.commit_count() } else { 0 };
                assert!(log.commit_count() >= 3, "one commit per durable wait");
                assert_eq!(outside, expected, "io_memory {io_memory}");
                log.close().await.unwrap();
            })
            .expect("executor")
            .join()
            .expect("executor thread");
    }
}

#[test]
fn shard_storage_single_flight_open_and_delete() {
    run(|| async {
        let dir = temp_dir();
        let metrics = std::sync::Arc::new(crate::StorageMetrics::default());
        let storage = ShardStorage::new(dir.path().to_path_buf(), metrics.clone(), usize::MAX);
        let (a, b) = futures::join!(
            storage.open_partition("t", 0, LogConfig::default()),
            storage.open_partition("t", 0, LogConfig::default())
        );
        let (a, b) = (a.unwrap(), b.unwrap());
        assert!(Rc::ptr_eq(&a, &b));
        assert!(Rc::ptr_eq(&storage.get("t", 0).unwrap(), &a));
        a.append_slice(&build_batch(1, 10, 1), 0, 0).unwrap();
        timeout(a.wait_durable(0)).await.unwrap();
        // The partition's group commit records into the shard's metrics.
        assert_eq!(metrics.write_latency.count(), a.commit_count());
        assert_eq!(metrics.commit_latency.count(), a.commit_count());
        // The default policy opens segments for durable writes: the write is the sync.
        assert_eq!(metrics.fdatasync_latency.count(), 0);
        assert!(a.commit_count() >= 1);
        let written = metrics
            .written_bytes_total
            .load(std::sync::atomic::Ordering::Relaxed);
        let batch_bytes = build_batch(1, 10, 1).len() as u64;
        assert!(written >= batch_bytes, "{written} bytes written");
        storage
            .open_partition("t", 1, LogConfig::default())
            .await
            .unwrap();
        assert_eq!(storage.partitions().len(), 2);
        storage.delete_partition("t", 0).await.unwrap();
        assert!(storage.get("t", 0).is_none());
        assert!(!dir.path().join("t-0").exists());
        assert!(dir.path().join("t-1").exists());
        // A failed open is forgotten, so the next caller opens again.
        std::fs::write(dir.path().join("u-0"), b"not a directory").unwrap();
        assert!(storage
            .open_partition("u", 0, LogConfig::default())
            .await
            .is_err());
        assert!(storage.get("u", 0).is_none());
        std::fs::remove_file(dir.path().join("u-0")).unwrap();
        storage
            .open_partition("u", 0, LogConfig::default())
            .await
            .unwrap();
        assert_eq!(storage.partitions().len(), 2);
        storage.close_all().await;
        assert!(storage.partitions().is_empty());
    });
}

#[test]
fn shard_storage_close_awaits_opens_under_way_and_refuses_new_ones() {
    run(|| async {
        let dir = temp_dir();
        let storage = ShardStorage::new(
            dir.path().to_path_buf(),
            std::sync::Arc::new(crate::StorageMetrics::default()),
            usize::MAX,
        );
        storage
            .open_partition("t", 0, LogConfig::default())
            .await
            .unwrap();
        // The open starts first and is still recovering when the close begins.
        let (opening, ()) = futures::join!(
            storage.open_partition("t", 1, LogConfig::default()),
            storage.close_all()
        );
        let late = opening.expect("an open under way finishes");
        assert!(
            late.append_slice(&build_batch(1, 10, 1), 0, 0).is_err(),
            "the close closed the log whose open was under way"
        );
        assert!(storage.partitions().is_empty());
        let refused = storage.open_partition("t", 2, LogConfig::default()).await;
        assert!(
            matches!(refused, Err(crate::EngineError::Stopping { ref topic, partition: 2 }) if topic == "t"),
            "{:?}",
            refused.err()
        );
        assert!(
            !dir.path().join("t-2").exists(),
            "a refused open creates nothing"
        );
    });
}

#[test]
fn never_policy_and_age_based_roll() {
    run(|| async {
        let dir = temp_dir();
        let config = LogConfig {
            flush: FlushPolicy::Never,
            segment_ms: 1000,
            retention_ms: -1,
            ..LogConfig::default()
        };
        let log = PartitionLog::open(dir.path(), config).await.unwrap();
        log.append_slice(&build_batch(1, 10, 1), 0, 0).unwrap();
        log.append_slice(&build_batch(1, 10, 1), 0, 999).unwrap();
        assert_eq!(log.inner.borrow().segments.len(), 1);
        log.append_slice(&build_batch(1, 10, 1), 0, 1000).unwrap();
        assert_eq!(log.inner.borrow().segments.len(), 2, "rolled by age");
        assert_eq!(log.high_watermark(), 3, "acknowledged at once");
        assert_eq!(read_all(&log, 0).await.len(), 3);
        timeout(log.wait_durable(2)).await.unwrap();
        log.close().await.unwrap();
        let log = PartitionLog::open(dir.path(), config).await.unwrap();
        assert_eq!(log.log_end_offset(), 3);
        assert_eq!(read_all(&log, 0).await.len(), 3);
        log.close().await.unwrap();
    });
}

#[test]
fn stale_index_is_detected_and_rebuilt() {
    run(|| async {
        let dir = temp_dir();
        let log = PartitionLog::open(dir.path(), small_config())
            .await
            .unwrap();
        fill(&log, 100).await;
        let expected = read_all(&log, 0).await;
        log.close().await.unwrap();
        let good = std::fs::read(index_path(dir.path(), 0)).unwrap();
        // Well-formed but wrong: the last entry points into the middle of a batch.
        let mut stale = good[..8].to_vec();
        stale.extend_from_slice(&[0, 0, 0, 3, 0, 0, 1, 7]);
        std::fs::write(index_path(dir.path(), 0), stale).unwrap();
        let log = PartitionLog::open(dir.path(), small_config())
            .await
            .unwrap();
        assert_eq!(std::fs::read(index_path(dir.path(), 0)).unwrap(), good);
        assert_eq!(read_all(&log, 0).await, expected);
        log.close().await.unwrap();
    });
}

/// Copy the partition directory as it is right now: what a crash at this instant would leave. A file renamed
/// while the copy runs (a rename the kernel completes meanwhile) is missing from the image under both names; the
/// renames the log does then (a retired or pooled file, a new segment's file before its first write, an index
/// file) leave nothing acknowledged behind, so the image is still one a crash may leave as far as recovery goes.
pub(crate) fn crash_image(from: &Path) -> tempfile::TempDir {
    let image = temp_dir();
    for entry in std::fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        match std::fs::copy(&path, image.path().join(path.file_name().unwrap())) {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => panic!("copying {}: {e}", path.display()),
        }
    }
    image
}

/// Seeded schedule of appends, durability waits and crash images taken at arbitrary moments
/// (including with a commit in flight): every image must recover to a prefix of the appended
/// batches that contains everything acknowledged, and keep accepting appends.
#[test]
fn seeded_crash_images_never_lose_acknowledged_data() {
    run(|| async {
        for seed in [1u64, 7, 42] {
            let mut rng = seed;
            let mut next_rand = move |n: u64| {
                rng = rng
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                (rng >> 33) % n
            };
            let dir = temp_dir();
            let config = small_config();
            let log = PartitionLog::open(dir.path(), config).await.unwrap();
            let mut expected: Vec<Vec<u8>> = Vec::new();
            let mut acked = 0i64;
            for _ in 0..40 {
                let records = 1 + next_rand(3) as i32;
                let b = build_batch(
                    records,
                    1 + next_rand(1500) as usize,
                    next_rand(1000) as i64,
                );
                let out = log.append_slice(&b, 0, 0).unwrap();
                expected.push(stored(b, out.base_offset));
                match next_rand(4) {
                    0 => {
                        timeout(log.wait_durable(out.last_offset)).await.unwrap();
                        acked = out.last_offset + 1;
                    }
                    1 => glommio::yield_if_needed().await,
                    2 => {
                        let image = crash_image(dir.path());
                        let recovered = PartitionLog::open(image.path(), config).await.unwrap();
                        let leo = recovered.log_end_offset();
                        assert!(
                            leo >= acked,
                            "seed {seed}: lost acknowledged data ({leo} < {acked})"
                        );
                        let batches = read_all(&recovered, 0).await;
                        assert_eq!(
                            batches.iter().map(|b| b.1.clone()).collect::<Vec<_>>(),
                            expected[..batches.len()]
                        );
                        let more = recovered
                            .append_slice(&build_batch(1, 10, 1), 0, 0)
                            .unwrap();
                        assert_eq!(more.base_offset, leo);
                        timeout(recovered.wait_durable(more.last_offset))
                            .await
                            .unwrap();
                        recovered.close().await.unwrap();
                    }
                    _ => {}
                }
            }
            log.close().await.unwrap();
        }
    });
}

#[test]
fn set_config_takes_effect_on_the_next_append_and_keeps_the_high_watermark() {
    run(|| async {
        let dir = temp_dir();
        let never = LogConfig {
            flush: FlushPolicy::Never,
            ..small_config()
        };
        let log = PartitionLog::open(dir.path(), never).await.unwrap();
        log.append_slice(&build_batch(2, 100, 1), 0, 0).unwrap();
        assert_eq!(log.high_watermark(), 2);

        // Lower max.message.bytes: the same batch is now too large.
        log.set_config(LogConfig {
            max_batch_bytes: 64,
            ..never
        });
        let err = log.append_slice(&build_batch(2, 100, 1), 0, 0).unwrap_err();
        assert_eq!(err.kafka_code(), 10, "MESSAGE_TOO_LARGE");
        assert_eq!(log.config().max_batch_bytes, 64);

        // Never -> Durable: what was visible stays visible; new records wait for their fdatasync.
        log.set_config(small_config());
        assert_eq!(
            log.high_watermark(),
            2,
            "the high watermark never goes back"
        );
        let out = log.append_slice(&build_batch(1, 100, 1), 0, 0).unwrap();
        timeout(log.wait_durable(out.last_offset)).await.unwrap();
        assert_eq!(log.high_watermark(), 3);

        // Durable -> Never releases a producer waiting for an fdatasync that will not come.
        let waiter = {
            let log = log.clone();
            glommio::spawn_local(async move { log.wait_durable(1_000).await })
        };
        glommio::yield_if_needed().await;
        log.set_config(never);
        timeout(waiter).await.unwrap();
        log.close().await.unwrap();
    });
}

/// A shard's tails together keep at most `tail_cache_shard_bytes` of written batches: past it, the partitions whose
/// last commit is oldest shed first, and their records are read from the segment files, unchanged.
#[test]
fn shard_tail_budget_sheds_the_partitions_written_longest_ago_first() {
    run(|| async {
        use std::sync::atomic::Ordering::Relaxed;
        let dir = temp_dir();
        let metrics = std::sync::Arc::new(crate::StorageMetrics::default());
        let batch = build_batch(4, 1000, 1);
        let per_partition = 4 * batch.len();
        // Room for two partitions' batches; each partition alone may keep all of its own.
        let storage =
            ShardStorage::new(dir.path().to_path_buf(), metrics.clone(), 2 * per_partition);
        let config = LogConfig {
            tail_cache_bytes: 1 << 20,
            ..small_config()
        };
        let mut logs = Vec::new();
        for p in 0..4 {
            let log = storage.open_partition("t", p, config).await.unwrap();
            let mut last = 0;
            for _ in 0..4 {
                last = log.append_slice(&batch, 0, 0).unwrap().last_offset;
            }
            timeout(log.wait_durable(last)).await.unwrap();
            logs.push(log);
        }
        let held = metrics.tail_cache_bytes.load(Relaxed) as usize;
        assert!(held <= 2 * per_partition, "{held} bytes held");
        let shed = metrics.tail_cache_shed_bytes_total.load(Relaxed) as usize;
        assert_eq!(held + shed, 4 * per_partition, "every byte held or shed");
        // The partition written last keeps its tail; the first one written has given all of its up.
        let from_memory = |log: &PartitionLog| log.read_in_memory(0, 1).is_some();
        assert!(from_memory(&logs[3]));
        assert!(!from_memory(&logs[0]));
        for log in &logs {
            let read = read_all(log, 0).await;
            assert_eq!(read.len(), 4);
            for (i, (base, bytes)) in read.into_iter().enumerate() {
                assert_eq!(base, 4 * i as i64);
                assert_eq!(bytes, stored(batch.clone(), base));
            }
        }
        // Deleting a partition gives its tail back to the shard, and takes it out of the order.
        assert!(logs[3].tail_stamp.get().is_some());
        storage.delete_partition("t", 3).await.unwrap();
        assert!(logs[3].tail_stamp.get().is_none());
        drop(logs);
        let after = metrics.tail_cache_bytes.load(Relaxed) as usize;
        assert!(
            after < held,
            "{after} bytes held after a delete, {held} before"
        );
        storage.close_all().await;
    });
}
