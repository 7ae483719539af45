"""The Prometheus endpoint shows what an operator watches on the write path: after acks=all produces from
confluent-kafka, the group commit's write and commit latency histograms and the bytes written have counted every
partition's commits. Under the default flush policy a segment is written O_DSYNC, so no commit takes a separate
fdatasync. The tails' memory per shard stays within `tail_cache_shard_bytes`."""

from __future__ import annotations

from clients import (confluent_consume, confluent_create_topic, confluent_producer, metric_sum, metric_values,
                     produce_all)
from conftest import free_port

PARTITIONS = 4
RECORDS = 2_000
VALUE = b"m" * 1024


def test_storage_metrics_count_the_group_commits(pinlog_factory):
    node = pinlog_factory(metrics_listen=f"127.0.0.1:{free_port()}")
    address = node.flags["metrics_listen"]
    assert metric_sum(address, "pinlog_storage_commit_latency_seconds_count") == 0, "no commit before a produce"
    confluent_create_topic(node.bootstrap, "metered", PARTITIONS)
    acked = []
    producer = confluent_producer(node.bootstrap, **{"partitioner": "murmur2_random"})
    items = ((str(i).encode(), VALUE) for i in range(RECORDS))
    produce_all(producer, "metered", items, lambda err, msg: err is None and acked.append(msg.partition()))
    assert len(acked) == RECORDS
    assert set(acked) == set(range(PARTITIONS)), "the keys spread over every partition"

    commits = metric_sum(address, "pinlog_storage_commit_latency_seconds_count")
    writes = metric_sum(address, "pinlog_storage_write_latency_seconds_count")
    # acks=all: every acknowledged record was committed, at least once per partition, one write per commit.
    assert commits >= PARTITIONS, f"{commits} commits for {PARTITIONS} partitions"
    assert writes == commits, f"{writes} writes for {commits} commits"
    assert metric_sum(address, "pinlog_storage_commit_latency_seconds_sum") > 0
    assert metric_sum(address, "pinlog_storage_fdatasync_latency_seconds_count") == 0, "the O_DSYNC write is the sync"
    written = metric_sum(address, "pinlog_storage_written_bytes_total")
    assert written >= RECORDS * len(VALUE), f"{written} bytes written for {RECORDS} records of {len(VALUE)} B"
    assert metric_sum(address, "pinlog_requests_total") > 0


SHARD_TAIL_BYTES = 1 << 20
TAIL_PARTITIONS = 16
TAIL_RECORDS = 6_000


def test_the_shards_tails_stay_within_their_bound_and_shed_records_read_back_from_disk(pinlog_factory):
    """`tail_cache_shard_bytes` bounds the written records all of a shard's partitions keep in memory: 6 MB acked
    into 16 partitions leave at most 1 MiB per shard in the tails (`pinlog_storage_tail_cache_bytes`), the rest is
    counted as shed, and a consumer from the beginning reads every record back, from disk where it was shed."""
    node = pinlog_factory(metrics_listen=f"127.0.0.1:{free_port()}", tail_cache_shard_bytes=SHARD_TAIL_BYTES)
    address = node.flags["metrics_listen"]
    confluent_create_topic(node.bootstrap, "bounded", TAIL_PARTITIONS)
    acked: dict[int, int] = {}
    producer = confluent_producer(node.bootstrap, **{"partitioner": "murmur2_random", "linger.ms": 5})
    value_of = lambda i: str(i).encode().ljust(1024, b".")  # noqa: E731
    items = ((str(i).encode(), value_of(i)) for i in range(TAIL_RECORDS))

    def on_delivery(err, msg):
        assert err is None, f"produce failed: {err}"
        acked[msg.partition()] = acked.get(msg.partition(), 0) + 1

    produce_all(producer, "bounded", items, on_delivery)
    assert sum(acked.values()) == TAIL_RECORDS
    assert len(acked) == TAIL_PARTITIONS, f"records in {len(acked)} of {TAIL_PARTITIONS} partitions"

    held = metric_values(address, "pinlog_storage_tail_cache_bytes")
    assert held, "one tail gauge per shard"
    # acks=all: every acked record is written, so nothing unwritten counts beside the bound.
    for shard, value in held.items():
        assert value <= SHARD_TAIL_BYTES, f"shard {shard} holds {value:.0f} tail bytes, bound {SHARD_TAIL_BYTES}"
    shed = metric_sum(address, "pinlog_storage_tail_cache_shed_bytes_total")
    produced = TAIL_RECORDS * 1024
    assert shed >= produced - len(held) * SHARD_TAIL_BYTES, f"{shed:.0f} bytes shed of {produced} produced"

    read = confluent_consume(node.bootstrap, "bounded", acked)
    for partition, records in read.items():
        assert [offset for offset, _, _ in records] == list(range(acked[partition])), f"partition {partition}"
        for _, key, value in records:
            assert value == value_of(int(key)), f"partition {partition}: key {key!r} read back another value"
