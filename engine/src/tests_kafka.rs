//! Behaviour tests of the "full Kafka" storage features: idempotent producers, LogAppendTime,
//! DeleteRecords and compaction. Real executors on a disk directory, like `tests.rs`.

use crate::batch::{
    build_batch, build_keyed_batch, peek, set_producer, validate_stored, TestRecord,
};
use crate::producer_snapshot;
use crate::records::{records, records_area};
use crate::segment::{cleaned_path, index_path, log_path};
use crate::tests::{crash_image, read_all, run, small_config, temp_dir, timeout};
use crate::{CleanupPolicy, LogConfig, PartitionLog, ReadError, TimestampType};
use std::collections::BTreeMap;
use std::path::Path;
use std::rc::Rc;

fn producer_batch(pid: i64, epoch: i16, seq: i32, count: i32) -> Vec<u8> {
    let mut b = build_batch(count, 200, 1000);
    set_producer(&mut b, pid, epoch, seq);
    b
}

/// Producers never expire in these tests (their batches carry old timestamps).
fn producer_config() -> LogConfig {
    LogConfig {
        producer_id_expiration_ms: i64::MAX,
        ..small_config()
    }
}

async fn append_durably(log: &PartitionLog, b: &[u8]) -> crate::AppendOutcome {
    let out = log.append_slice(b, 0, 0).unwrap();
    timeout(log.wait_durable(out.last_offset)).await.unwrap();
    out
}

fn snapshot_files(dir: &Path) -> Vec<i64> {
    producer_snapshot::list(dir).unwrap()
}

#[test]
fn idempotent_duplicates_get_original_offsets_and_bad_sequences_are_refused() {
    run(|| async {
        let dir = temp_dir();
        let log = PartitionLog::open(dir.path(), producer_config())
            .await
            .unwrap();
        let first = producer_batch(5, 0, 0, 2);
        let out = append_durably(&log, &first).await;
        assert_eq!(
            (out.base_offset, out.last_offset, out.duplicate),
            (0, 1, false)
        );
        append_durably(&log, &producer_batch(5, 0, 2, 1)).await;
        let dup = log.append_slice(&first, 0, 0).unwrap();
        assert_eq!(
            (dup.base_offset, dup.last_offset, dup.duplicate),
            (0, 1, true)
        );
        assert_eq!(log.log_end_offset(), 3, "a duplicate is not appended");

        let err = log
            .append_slice(&producer_batch(5, 0, 5, 1), 0, 0)
            .unwrap_err();
        assert_eq!(err.kafka_code(), 45);
        assert!(err.to_string().contains("expected 3, got 5"), "{err}");
        assert_eq!(
            log.append_slice(&producer_batch(5, 1, 4, 1), 0, 0)
                .unwrap_err()
                .kafka_code(),
            45
        );
        assert_eq!(
            log.append_slice(&producer_batch(5, 1, 0, 1), 0, 0)
                .unwrap()
                .base_offset,
            3
        );
        assert_eq!(
            log.append_slice(&producer_batch(5, 0, 3, 1), 0, 0)
                .unwrap_err()
                .kafka_code(),
            47
        );
        // Unknown producer: any sequence is accepted (Kafka >= 2.5).
        assert_eq!(
            log.append_slice(&producer_batch(9, 0, 40, 1), 0, 0)
                .unwrap()
                .base_offset,
            4
        );

        // All-or-nothing across the batches of one request, checked against each other.
        let mut request = producer_batch(6, 0, 0, 1);
        request.extend_from_slice(&producer_batch(6, 0, 1, 2));
        assert_eq!(log.append_slice(&request, 0, 0).unwrap().last_offset, 7);
        let mut bad = producer_batch(6, 0, 3, 1);
        bad.extend_from_slice(&producer_batch(6, 0, 5, 1));
        assert_eq!(log.append_slice(&bad, 0, 0).unwrap_err().kafka_code(), 45);
        assert_eq!(
            log.log_end_offset(),
            8,
            "nothing of the refused request appended"
        );
        let retry = log.append_slice(&producer_batch(6, 0, 1, 2), 0, 0).unwrap();
        assert_eq!((retry.base_offset, retry.duplicate), (6, true));
        // A non-idempotent batch is unaffected.
        assert_eq!(
            log.append_slice(&build_batch(1, 5, 1), 0, 0)
                .unwrap()
                .base_offset,
            8
        );
        timeout(log.wait_durable(8)).await.unwrap();
        log.close().await.unwrap();

        // Survives reopen: from the snapshot written at close ...
        assert_eq!(snapshot_files(dir.path()), vec![9]);
        let log = PartitionLog::open(dir.path(), producer_config())
            .await
            .unwrap();
        let again = log.append_slice(&producer_batch(6, 0, 1, 2), 0, 0).unwrap();
        assert_eq!((again.base_offset, again.duplicate), (6, true));
        assert_eq!(
            log.append_slice(&producer_batch(5, 0, 3, 1), 0, 0)
                .unwrap_err()
                .kafka_code(),
            47
        );
        log.close().await.unwrap();

        // ... and without any snapshot, by replaying the whole log.
        for offset in snapshot_files(dir.path()) {
            std::fs::remove_file(producer_snapshot::snapshot_path(dir.path(), offset)).unwrap();
        }
        let log = PartitionLog::open(dir.path(), producer_config())
            .await
            .unwrap();
        let again = log.append_slice(&producer_batch(6, 0, 1, 2), 0, 0).unwrap();
        assert_eq!((again.base_offset, again.duplicate), (6, true));
        assert_eq!(
            log.append_slice(&producer_batch(5, 1, 2, 1), 0, 0)
                .unwrap_err()
                .kafka_code(),
            45
        );
        assert_eq!(
            log.append_slice(&producer_batch(5, 1, 1, 1), 0, 0)
                .unwrap()
                .base_offset,
            9
        );
        timeout(log.wait_durable(9)).await.unwrap();
        log.close().await.unwrap();
    });
}

#[test]
fn producer_state_after_a_crash_comes_from_roll_snapshots_plus_replay() {
    run(|| async {
        let dir = temp_dir();
        let log = PartitionLog::open(dir.path(), producer_config())
            .await
            .unwrap();
        let mut last = None;
        for seq in 0..120 {
            let b = producer_batch(77, 3, seq, 1);
            let _ = log.append_slice(&b, 0, 0).unwrap();
            last = Some(b);
        }
        timeout(log.wait_durable(119)).await.unwrap();
        // Let the rolls' tasks write the snapshots the rolls queued.
        timeout(log.after_roll_done()).await;
        let snapshots = snapshot_files(dir.path());
        assert!(
            !snapshots.is_empty() && snapshots.len() <= 2,
            "{snapshots:?}"
        );
        // Crash: no close, so the newest snapshot is older than the log end.
        let image = crash_image(dir.path());
        log.close().await.unwrap();
        let recovered = PartitionLog::open(image.path(), producer_config())
            .await
            .unwrap();
        assert!(*snapshots.last().unwrap() < 120);
        let dup = recovered
            .append_slice(last.as_ref().unwrap(), 0, 0)
            .unwrap();
        assert_eq!((dup.base_offset, dup.duplicate), (119, true));
        assert_eq!(
            recovered
                .append_slice(&producer_batch(77, 3, 121, 1), 0, 0)
                .unwrap_err()
                .kafka_code(),
            45
        );
        assert_eq!(
            recovered
                .append_slice(&producer_batch(77, 3, 120, 1), 0, 0)
                .unwrap()
                .base_offset,
            120
        );
        timeout(recovered.wait_durable(120)).await.unwrap();
        recovered.close().await.unwrap();

        // A snapshot beyond the recovered end (its data was lost) is deleted, never loaded.
        let stale = producer_snapshot::snapshot_path(image.path(), 5000);
        std::fs::copy(producer_snapshot::snapshot_path(image.path(), 121), &stale).unwrap();
        let reopened = PartitionLog::open(image.path(), producer_config())
            .await
            .unwrap();
        assert!(!stale.exists());
        reopened.close().await.unwrap();
    });
}

#[test]
fn idle_producers_expire_when_a_snapshot_is_written() {
    run(|| async {
        let dir = temp_dir();
        let config = LogConfig {
            producer_id_expiration_ms: 60_000,
            ..small_config()
        };
        let log = PartitionLog::open(dir.path(), config).await.unwrap();
        append_durably(&log, &producer_batch(1, 0, 0, 1)).await; // maxTimestamp 1000: long idle
        let mut fresh = producer_batch(2, 0, 0, 1);
        let now = crate::log::wall_clock_ms();
        fresh[35..43].copy_from_slice(&now.to_be_bytes());
        crate::batch::seal(&mut fresh);
        append_durably(&log, &fresh).await;
        assert_eq!(log.inner.borrow().producers.len(), 2);
        log.close().await.unwrap();
        let log = PartitionLog::open(dir.path(), config).await.unwrap();
        assert_eq!(
            log.inner.borrow().producers.len(),
            1,
            "producer 1 expired at close"
        );
        assert!(log.inner.borrow().producers.producers.contains_key(&2));
        // An expired producer is unknown again: any sequence is accepted.
        assert!(
            !log.append_slice(&producer_batch(1, 0, 0, 1), 0, 0)
                .unwrap()
                .duplicate
        );
        log.close().await.unwrap();
    });
}

#[test]
fn log_append_time_stamps_the_batch_and_reseals_the_crc() {
    run(|| async {
        let dir = temp_dir();
        let config = LogConfig {
            timestamp_type: TimestampType::LogAppendTime,
            ..small_config()
        };
        let log = PartitionLog::open(dir.path(), config).await.unwrap();
        let out = log
            .append_slice(&build_batch(3, 10, 5), 0, 777_000)
            .unwrap();
        assert_eq!(out.log_append_time_ms, 777_000);
        timeout(log.wait_durable(out.last_offset)).await.unwrap();
        log.close().await.unwrap();
        let log = PartitionLog::open(dir.path(), config).await.unwrap();
        let r = log
            .read(0, 1 << 20)
            .await
            .unwrap()
            .records
            .into_contiguous();
        let h = validate_stored(&r).expect("CRC valid after stamping");
        assert_eq!(h.max_timestamp, 777_000);
        assert_ne!(h.attributes & crate::batch::ATTR_LOG_APPEND_TIME, 0);
        assert_eq!(h.base_timestamp, 5, "baseTimestamp kept as produced");
        assert_eq!(
            log.offset_for_timestamp(700_000).await.unwrap(),
            Some((0, 777_000))
        );
        log.close().await.unwrap();

        let dir = temp_dir();
        let log = PartitionLog::open(dir.path(), small_config())
            .await
            .unwrap();
        let out = log
            .append_slice(&build_batch(1, 10, 5), 0, 777_000)
            .unwrap();
        assert_eq!(out.log_append_time_ms, -1, "CreateTime");
        timeout(log.wait_durable(0)).await.unwrap();
        assert_eq!(
            validate_stored(&log.read(0, 100).await.unwrap().records.into_contiguous())
                .unwrap()
                .max_timestamp,
            5
        );
        log.close().await.unwrap();
    });
}

#[test]
fn delete_records_moves_the_start_deletes_segments_and_survives_reopen() {
    run(|| async {
        let dir = temp_dir();
        let log = PartitionLog::open(dir.path(), small_config())
            .await
            .unwrap();
        for _ in 0..200 {
            log.append_slice(&build_batch(1, 200, 1), 0, 0).unwrap();
        }
        timeout(log.wait_durable(199)).await.unwrap();
        log.after_roll_done().await;
        assert_eq!(
            log.delete_records_before(201)
                .await
                .unwrap_err()
                .kafka_code(),
            1
        );
        assert_eq!(log.delete_records_before(150).await.unwrap(), 150);
        assert_eq!(log.log_start_offset(), 150);
        assert_eq!(
            log.delete_records_before(10).await.unwrap(),
            150,
            "never moves back"
        );
        assert!(
            !log_path(dir.path(), 0).exists(),
            "whole segments below the start deleted"
        );
        let first_base = log.inner.borrow().segments[0].base_offset;
        assert!(first_base <= 150);
        assert!(matches!(
            log.read(149, 10).await,
            Err(ReadError::OffsetOutOfRange { .. })
        ));
        assert_eq!(read_all(&log, 150).await.len(), 50);
        log.close().await.unwrap();

        let log = PartitionLog::open(dir.path(), small_config())
            .await
            .unwrap();
        assert_eq!(
            log.log_start_offset(),
            150,
            "from the checkpoint, inside a segment"
        );
        assert_eq!(log.read(149, 10).await.unwrap_err().kafka_code(), 1);
        assert_eq!(
            log.delete_records_before(-1).await.unwrap(),
            200,
            "-1 = high watermark"
        );
        log.append_slice(&build_batch(1, 10, 1), 0, 0).unwrap();
        timeout(log.wait_durable(200)).await.unwrap();
        assert_eq!(read_all(&log, 200).await.len(), 1);
        log.close().await.unwrap();
        let log = PartitionLog::open(dir.path(), small_config())
            .await
            .unwrap();
        assert_eq!((log.log_start_offset(), log.log_end_offset()), (200, 201));
        log.close().await.unwrap();
    });
}

fn compact_config() -> LogConfig {
    LogConfig {
        cleanup_policy: CleanupPolicy::Compact,
        segment_bytes: 2 << 10,
        min_cleanable_dirty_ratio: 0.0,
        delete_retention_ms: 1_000_000,
        ..small_config()
    }
}

/// (offset, key, tombstone) of every record the log serves, in order.
async fn all_records(log: &PartitionLog) -> Vec<(i64, Vec<u8>, bool)> {
    let mut out = Vec::new();
    for (_, bytes) in read_all(log, log.log_start_offset()).await {
        let h = peek(&bytes).unwrap();
        let area = records_area(&bytes, &h).unwrap();
        for r in records(&area, h.record_count) {
            let r = r.unwrap();
            out.push((
                h.base_offset + i64::from(r.offset_delta),
                r.key.unwrap().to_vec(),
                r.value_is_null,
            ));
        }
    }
    out
}

/// Append rounds of updates to keys k0..k7 (k7 deleted at the end); returns what was appended
/// as (offset, key, tombstone).
async fn fill_keys(log: &PartitionLog, codec: u8) -> Vec<(i64, Vec<u8>, bool)> {
    let mut appended = Vec::new();
    for round in 0..30 {
        let keys: Vec<Vec<u8>> = (0..3)
            .map(|i| format!("k{}", (round * 3 + i) % 8).into_bytes())
            .collect();
        let value = noise(40 + round, round as u64);
        // The last round deletes its first key (k7).
        let tomb = |k: &[u8]| round == 29 && k == b"k7";
        let recs: Vec<TestRecord<'_>> = keys
            .iter()
            .map(|k| (Some(&k[..]), (!tomb(k)).then_some(&value[..])))
            .collect();
        let out = log
            .append_slice(&build_keyed_batch(&recs, 1000, codec), 0, 0)
            .unwrap();
        for (i, k) in keys.iter().enumerate() {
            appended.push((out.base_offset + i as i64, k.clone(), tomb(k)));
        }
    }
    // Force the last round's segment closed: a few fresh keys in new segments.
    for i in 0..12 {
        let key = format!("z{i}").into_bytes();
        let value = noise(400, 1000 + i);
        let out = log
            .append_slice(
                &build_keyed_batch(&[(Some(&key[..]), Some(&value[..]))], 1000, codec),
                0,
                0,
            )
            .unwrap();
        appended.push((out.base_offset, key, false));
    }
    timeout(log.wait_durable(log.log_end_offset() - 1))
        .await
        .unwrap();
    // Rolled segments become compactable once their indexes are persisted, off the commit path.
    log.after_roll_done().await;
    appended
}

/// Incompressible bytes, so compressed batches still fill segments.
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn check_converged(
    log_records: &[(i64, Vec<u8>, bool)],
    appended: &[(i64, Vec<u8>, bool)],
    active_base: i64,
) {
    let original: BTreeMap<i64, (Vec<u8>, bool)> = appended
        .iter()
        .map(|(o, k, t)| (*o, (k.clone(), *t)))
        .collect();
    let mut latest: BTreeMap<Vec<u8>, i64> = BTreeMap::new();
    for (o, k, _) in appended {
        latest.insert(k.clone(), *o);
    }
    let mut prev = -1;
    for (o, k, t) in log_records {
        assert!(*o > prev, "offsets strictly increase");
        prev = *o;
        assert_eq!(original[o], (k.clone(), *t), "offset {o} keeps its record");
        assert!(
            latest[k] == *o || *o >= active_base,
            "superseded record at {o} survived compaction"
        );
    }
    for (k, o) in &latest {
        assert!(
            log_records.iter().any(|(lo, _, _)| lo == o),
            "last value of {k:?} kept"
        );
    }
}

fn compaction_roundtrip(codec: u8) {
    run(move || async move {
        let dir = temp_dir();
        let log = PartitionLog::open(dir.path(), compact_config())
            .await
            .unwrap();
        let keyless = build_keyed_batch(&[(Some(b"a"), Some(b"1")), (None, Some(b"2"))], 1, codec);
        assert_eq!(
            log.append_slice(&keyless, 0, 0).unwrap_err().kafka_code(),
            87
        );
        let appended = fill_keys(&log, codec).await;
        let before = all_records(&log).await;
        assert_eq!(before.len(), appended.len());
        let segments = log.inner.borrow().segments.len();
        assert!(segments >= 4, "{segments} segments");

        let stats = log.compact(2000).await.unwrap();
        assert!(
            stats.segments_cleaned >= 1 && stats.records_removed > 0,
            "{stats:?}"
        );
        assert!(stats.bytes_after < stats.bytes_before);
        let retired = log.inner.borrow().retired.len();
        assert_eq!(
            retired as u64, stats.segments_cleaned as u64,
            "each cleaned segment's old log waits for the reaper"
        );
        assert_eq!(log.reap_retired(&|| false).await.unwrap(), retired);
        let active_base = log.inner.borrow().segments.last().unwrap().base_offset;
        let after = all_records(&log).await;
        check_converged(&after, &appended, active_base);
        assert!(
            after.iter().any(|(_, k, t)| k == b"k7" && *t),
            "young tombstone kept"
        );
        // Every offset is still readable: a read in a removed range returns the next batch.
        for offset in 0..log.high_watermark() {
            let r = log.read(offset, 1).await.unwrap().records.into_contiguous();
            let h = validate_stored(&r).unwrap();
            assert!(h.last_offset() >= offset);
        }
        let first_base = log.inner.borrow().segments[0].base_offset;
        log.close().await.unwrap();

        // Reopen: recovery accepts the compacted segments (with and without their indexes).
        std::fs::remove_file(index_path(dir.path(), first_base)).unwrap();
        let log = PartitionLog::open(dir.path(), compact_config())
            .await
            .unwrap();
        assert_eq!(all_records(&log).await, after);
        // Old tombstones go on a later pass.
        let stats = log.compact(10_000_000).await.unwrap();
        assert!(stats.records_removed >= 1, "{stats:?}");
        let final_records = all_records(&log).await;
        assert!(!final_records
            .iter()
            .any(|(o, k, _)| k == b"k7" && *o < active_base));
        let out = log
            .append_slice(
                &build_keyed_batch(&[(Some(b"n"), Some(b"1"))], 1, codec),
                0,
                0,
            )
            .unwrap();
        assert_eq!(out.base_offset, appended.last().unwrap().0 + 1);
        timeout(log.wait_durable(out.last_offset)).await.unwrap();
        log.close().await.unwrap();
    });
}

#[test]
fn compaction_keeps_the_last_value_per_key_uncompressed() {
    compaction_roundtrip(0);
}

#[test]
fn compaction_keeps_the_last_value_per_key_compressed() {
    compaction_roundtrip(1);
    compaction_roundtrip(4);
}

#[test]
fn compaction_crash_states_recover_cleanly() {
    run(|| async {
        let dir = temp_dir();
        let log = PartitionLog::open(dir.path(), compact_config())
            .await
            .unwrap();
        let appended = fill_keys(&log, 0).await;
        let before = all_records(&log).await;
        // Crash before the rename: a half-written cleaned file next to the intact segment.
        let image = crash_image(dir.path());
        std::fs::write(cleaned_path(image.path(), 0), vec![0xAB; 5000]).unwrap();
        let recovered = PartitionLog::open(image.path(), compact_config())
            .await
            .unwrap();
        assert!(!cleaned_path(image.path(), 0).exists());
        assert_eq!(all_records(&recovered).await, before);
        recovered.close().await.unwrap();

        // Crash after the rename, before the new indexes: the indexes are rebuilt by scanning.
        log.compact(2000).await.unwrap();
        let after = all_records(&log).await;
        let image = crash_image(dir.path());
        for entry in std::fs::read_dir(image.path()).unwrap() {
            let path = entry.unwrap().path();
            if path
                .extension()
                .is_some_and(|e| e == "index" || e == "timeindex")
            {
                std::fs::remove_file(path).unwrap();
            }
        }
        let recovered = PartitionLog::open(image.path(), compact_config())
            .await
            .unwrap();
        assert_eq!(all_records(&recovered).await, after);
        let active_base = recovered
            .inner
            .borrow()
            .segments
            .last()
            .unwrap()
            .base_offset;
        check_converged(&after, &appended, active_base);
        recovered.close().await.unwrap();
        log.close().await.unwrap();
    });
}

#[test]
fn reads_and_appends_run_during_compaction() {
    run(|| async {
        let dir = temp_dir();
        let log = PartitionLog::open(dir.path(), compact_config())
            .await
            .unwrap();
        fill_keys(&log, 0).await;
        let compactor = {
            let log = Rc::clone(&log);
            glommio::spawn_local(async move { log.compact(2000).await.unwrap() })
        };
        let out = log
            .append_slice(
                &build_keyed_batch(&[(Some(b"live"), Some(b"1"))], 1, 0),
                0,
                0,
            )
            .unwrap();
        timeout(log.wait_durable(out.last_offset)).await.unwrap();
        assert!(!log.read(0, 1 << 20).await.unwrap().records.is_empty());
        assert_eq!(
            log.enforce_retention(i64::MAX).await.unwrap(),
            0,
            "compact only: no retention"
        );
        let stats = timeout(compactor).await;
        assert!(stats.segments_cleaned >= 1);
        let served = all_records(&log).await;
        log.compact(2000).await.unwrap();
        assert_eq!(
            all_records(&log).await,
            served,
            "a second pass changes nothing"
        );
        log.close().await.unwrap();
    });
}
