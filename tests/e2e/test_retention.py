"""Retention by bytes and DeleteRecords free their segments' files on disk, in the background, while the records
above the new log start stay readable. Segments leave the log at once (retired as `<base>.log.deleted`); the
shard's housekeeping frees the files in paced steps (engine/src/reap.rs), except one per partition kept as
`<base>.log.free` for the next segment to write over (engine/src/recycle.rs). A partition at its retention writes
each new segment over the file of the one retention deleted at that roll, and a restart over such a file (old
batches past the new data) reads back exactly what was produced."""

from __future__ import annotations

import time
from pathlib import Path

from confluent_kafka import Producer, TopicPartition
from confluent_kafka.admin import AdminClient

import kafka_wire
from clients import metric_sum
from conftest import free_port

EARLIEST = -2
LATEST = -1
SEGMENT_BYTES = 1 << 20
DEADLINE_S = 30.0


def wait_until(predicate, what: str, deadline_s: float = DEADLINE_S) -> None:
    deadline = time.monotonic() + deadline_s
    while not predicate():
        assert time.monotonic() < deadline, f"{what} not within {deadline_s} s"
        time.sleep(0.2)


def segment_files(partition_dir: Path) -> tuple[list[str], list[str]]:
    """(live `.log` files, retired `.log.deleted` files) of a partition."""
    names = sorted(p.name for p in partition_dir.iterdir())
    return [n for n in names if n.endswith(".log")], [n for n in names if n.endswith(".log.deleted")]


def base_offset(segment_file: str) -> int:
    return int(segment_file.removesuffix(".log"))


def kept_files(partition_dir: Path) -> list[str]:
    """Files kept for the next segments to write over."""
    return sorted(p.name for p in partition_dir.iterdir() if p.name.endswith(".log.free"))


def produce(bootstrap: str, topic: str, count: int, size: int, first: int = 0) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5})
    failures = []
    for i in range(first, first + count):
        producer.produce(topic, value=f"{i:08d}".encode() + b"x" * (size - 8),
                         on_delivery=lambda err, _msg: err and failures.append(err))
        producer.poll(0)
    assert producer.flush(30) == 0, "records still unacknowledged after 30 s"
    assert not failures, failures[:3]


def test_retention_by_bytes_recycles_and_frees_old_segments_and_keeps_the_rest_readable(pinlog_factory):
    node = pinlog_factory(retention_check_interval_ms=300, metrics_listen=f"127.0.0.1:{free_port()}")
    topic = "retained"
    kafka_wire.create_topic(node.bootstrap, topic, 1, configs={
        "segment.bytes": str(SEGMENT_BYTES), "retention.bytes": str(3 * SEGMENT_BYTES)})
    part = node.partition_dir(topic, 0)
    # A segment's worth at a time. Once the partition is at its retention, wait after each chunk until retention
    # has caught up (as in Kafka, what is left is at least retention.bytes and less than a segment more: the oldest
    # segment goes only if the rest still holds retention.bytes), so the roll's task has pooled the file it retired
    # before the next roll asks for one, however slow this disk's fsyncs are against the producer. Waiting for a
    # kept file instead would hang whenever a roll found retention with nothing to delete yet: the roll took the
    # pooled file and nothing replaced it until more data came.
    chunk, chunks = 1_100, 12
    retained_max = 4 * SEGMENT_BYTES // 1000  # records of 1000 B (plus their framing) in retention.bytes + a segment

    def retained() -> int:
        with node.wire() as c:
            (_, start), (_, end) = c.list_offsets(topic, [0], EARLIEST)[0], c.list_offsets(topic, [0], LATEST)[0]
        return end - start

    for i in range(chunks):
        produce(node.bootstrap, topic, chunk, 1000, first=i * chunk)
        if i >= 4:
            wait_until(lambda: retained() <= retained_max, f"retention caught up after chunk {i}")
    count = chunk * chunks

    def freed() -> bool:
        # Not a count of live files: librdkafka's batches run up to 1 MB, so a segment may roll after a few records
        # and the log may hold more, smaller segments. What matters is that the live files hold no more than the
        # retained records: none of them lies wholly below the start.
        live, retired = segment_files(part)
        oldest_base = min(base_offset(name) for name in live)
        return not retired and count - oldest_base <= retained_max and len(kept_files(part)) <= 1

    wait_until(freed, f"old segments freed (files now: {segment_files(part)}, kept {kept_files(part)})")
    recycled = metric_sum(node.flags["metrics_listen"], "pinlog_storage_segments_recycled_total")
    assert recycled >= 4, f"{recycled} of ~12 rolls wrote over a deleted segment's file"

    def earliest() -> int:
        with node.wire() as c:
            code, start = c.list_offsets(topic, [0], EARLIEST)[0]
        assert code == kafka_wire.NONE and start > 0, (code, start)
        return start

    def check_reads(end: int) -> None:
        deadline = time.monotonic() + DEADLINE_S
        while True:
            start = earliest()
            try:
                records = kafka_wire.read_partition(node.bootstrap, topic, 0, start=start)
                break
            except AssertionError:
                # The last roll's retention may still run and move the start past a read in progress (the fetch
                # then answers OFFSET_OUT_OF_RANGE, as Kafka does): read again from the new start, like a consumer.
                # A failure with the start where it was is a real one.
                if earliest() == start or time.monotonic() > deadline:
                    raise
        assert [int(r.value[:8]) for r in records] == list(range(start, end)), "a gap or an old batch above the start"

    check_reads(count)
    # The active segment now writes over an old file: a restart must find its end, not the old batches after it.
    node.restart()
    check_reads(count)
    produce(node.bootstrap, topic, 3_000, 1000, first=count)
    check_reads(count + 3_000)
    assert "recovery truncated segment" not in node.log_text(), "a clean restart cut a recycled segment"
    # And after kill -9: every acknowledged record is back, nothing of the old files is.
    node.restart(graceful=False)
    check_reads(count + 3_000)
    assert node.log_text().count("panicked") == 0


def test_delete_records_frees_the_segments_below_the_new_start(pinlog_factory):
    node = pinlog_factory(retention_check_interval_ms=300)
    topic = "trimmed"
    kafka_wire.create_topic(node.bootstrap, topic, 1, configs={"segment.bytes": str(SEGMENT_BYTES)})
    count = 8_000
    produce(node.bootstrap, topic, count, 1000)
    part = node.partition_dir(topic, 0)
    live_before, _ = segment_files(part)
    assert len(live_before) >= 6, live_before
    admin = AdminClient({"bootstrap.servers": node.bootstrap})
    tp = TopicPartition(topic, 0, count // 2)
    assert admin.delete_records([tp], request_timeout=30)[tp].result(timeout=30).low_watermark == count // 2

    def freed() -> bool:
        # Only the segment holding the new start may begin below it. Not half the files: the segments need not be
        # even (a librdkafka batch runs up to 1 MB, so a segment may roll after a few records).
        live, retired = segment_files(part)
        return not retired and sum(base_offset(name) < count // 2 for name in live) <= 1

    wait_until(freed, f"segments below the start freed (files now: {segment_files(part)})")
    records = kafka_wire.read_partition(node.bootstrap, topic, 0, start=count // 2)
    assert [int(r.value[:8]) for r in records] == list(range(count // 2, count))
