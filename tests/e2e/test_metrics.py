"""The Prometheus endpoint shows what an operator watches on the write path: after acks=all produces from
confluent-kafka, the group commit's write and commit latency histograms and the bytes written have counted every
partition's commits. Under the default flush policy a segment is written O_DSYNC, so no commit takes a separate
fdatasync."""

from __future__ import annotations

from clients import confluent_create_topic, confluent_producer, metric_sum, produce_all
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
