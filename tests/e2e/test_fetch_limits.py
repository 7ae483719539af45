"""Fetch (v11) limits and long polling.

- partition_max_bytes and max_bytes are honoured: the records of a partition never exceed partition_max_bytes and
  the whole answer never exceeds max_bytes, except that the first batch of the first non-empty partition comes
  whole even when it is larger (KIP-74), so a consumer always makes progress.
- A fetch with max_wait 5000 and nothing to read returns as soon as a record is produced (well under 5 s), on
  whichever of its partitions and shards, and after about max_wait when nothing comes.
"""

from __future__ import annotations

import threading
import time

import pytest

import kafka_wire
from kafka_wire import NONE

PARTITIONS = 2
BATCHES = 30
RECORDS_PER_BATCH = 8
VALUE_BYTES = 1000


@pytest.fixture
def loaded(pinlog):
    """A 2-partition topic with 30 batches of 8 x 1000-byte records per partition; yields (node, batch sizes)."""
    kafka_wire.create_topic(pinlog.bootstrap, "limits", PARTITIONS)
    with pinlog.wire() as c:
        for b in range(BATCHES):
            for p in range(PARTITIONS):
                values = [bytes([b, p, i]) * (VALUE_BYTES // 3) for i in range(RECORDS_PER_BATCH)]
                res = c.produce("limits", {p: kafka_wire.build_batch([(None, v) for v in values])}, acks=1)
                assert res[p] == (NONE, b * RECORDS_PER_BATCH), f"produce -> {res}"
    return pinlog


def records_len(part: dict) -> int:
    return len(part["records"] or b"")


def check_limits(answer: dict, order: list[int], max_bytes: int, partition_max_bytes: int) -> None:
    assert answer["error_code"] == NONE
    total = 0
    first_nonempty_seen = False
    for p in order:
        part = answer["partitions"][p]
        assert part["error_code"] == NONE, f"partition {p} -> error {part['error_code']}"
        n = records_len(part)
        batches = kafka_wire.parse_batches(part["records"])
        for b in batches:
            assert b.crc_ok, f"partition {p}: batch at {b.base_offset} has a bad CRC"
        if n > partition_max_bytes:
            assert not first_nonempty_seen, f"partition {p}: {n} bytes > partition_max_bytes {partition_max_bytes}"
            assert len(batches) == 1 and batches[0].size == n, \
                f"partition {p}: {n} bytes > partition_max_bytes {partition_max_bytes} and not one whole batch"
        if n:
            first_nonempty_seen = True
        total += n
    if total > max_bytes:
        first = next(answer["partitions"][p] for p in order if records_len(answer["partitions"][p]))
        only_first = records_len(first) == total
        batches = kafka_wire.parse_batches(first["records"])
        assert only_first and len(batches) == 1 and batches[0].size == total, \
            f"answer holds {total} record bytes > max_bytes {max_bytes}, and not as one whole first batch"


@pytest.mark.parametrize("partition_max_bytes", [20000, 50000, 100])
def test_partition_max_bytes(loaded, partition_max_bytes):
    with loaded.wire() as c:
        answer = c.fetch("limits", {p: (0, partition_max_bytes) for p in range(PARTITIONS)})
    check_limits(answer, [0, 1], 50 * 1024 * 1024, partition_max_bytes)
    first = kafka_wire.parse_batches(answer["partitions"][0]["records"])
    assert first and first[0].base_offset == 0, "the first partition made no progress"
    if partition_max_bytes >= 2 * first[0].size:
        assert len(first) >= 2, f"only {len(first)} batch for partition_max_bytes {partition_max_bytes}"


@pytest.mark.parametrize("max_bytes", [30000, 9000, 1])
def test_max_bytes(loaded, max_bytes):
    with loaded.wire() as c:
        answer = c.fetch("limits", {p: (0, 10 << 20) for p in range(PARTITIONS)}, max_bytes=max_bytes)
    check_limits(answer, [0, 1], max_bytes, 10 << 20)
    got = [b for p in range(PARTITIONS) for b in kafka_wire.parse_batches(answer["partitions"][p]["records"])]
    assert got, f"max_bytes {max_bytes}: no whole batch, the consumer cannot make progress"


def test_reading_everything_with_tiny_limits(loaded):
    """One whole batch per fetch still walks the whole log, in order, without gaps."""
    for p in range(PARTITIONS):
        recs = kafka_wire.read_partition(loaded.bootstrap, "limits", p, partition_max_bytes=1)
        assert [r.offset for r in recs] == list(range(BATCHES * RECORDS_PER_BATCH))
        for r in recs:
            b, i = divmod(r.offset, RECORDS_PER_BATCH)
            assert r.value == bytes([b, p, i]) * (VALUE_BYTES // 3)


def test_long_poll_returns_when_a_record_arrives(pinlog):
    kafka_wire.create_topic(pinlog.bootstrap, "poll", 1)
    produce_delay_s = 1.0
    produced_at = {}

    def produce_later():
        time.sleep(produce_delay_s)
        with pinlog.wire() as c:
            produced_at["t"] = time.monotonic()
            produced_at["res"] = c.produce("poll", {0: kafka_wire.build_batch([(b"k", b"wake up")])}, acks=1)

    with pinlog.wire() as c:
        t = threading.Thread(target=produce_later, daemon=True)
        started = time.monotonic()
        t.start()
        answer = c.fetch("poll", {0: (0, 1 << 20)}, max_wait_ms=5000, min_bytes=1)
        returned = time.monotonic()
    t.join(10)
    assert produced_at.get("res") == {0: (NONE, 0)}, f"produce -> {produced_at.get('res')}"
    part = answer["partitions"][0]
    assert part["error_code"] == NONE
    values = [r.value for b in kafka_wire.parse_batches(part["records"]) for r in b.records]
    assert values == [b"wake up"], f"long poll returned {values} after {returned - started:.2f} s"
    wake_latency = returned - produced_at["t"]
    print(f"\nlong poll woke {wake_latency * 1000:.0f} ms after the produce")
    assert returned - started < 3.5, f"long poll took {returned - started:.2f} s although a record came after 1 s"
    assert wake_latency < 1.0, f"long poll woke {wake_latency:.2f} s after the produce"


def test_long_poll_over_many_partitions_wakes_on_any_of_them(pinlog):
    """One long poll over 8 partitions (placed on both shards: the waits on the other shard go there as one call):
    a record produced to any one of them answers it, with that record and nothing else."""
    partitions = 8
    kafka_wire.create_topic(pinlog.bootstrap, "poll-many", partitions)
    for target in range(partitions):
        def produce_later(p=target):
            time.sleep(0.3)
            with pinlog.wire() as c:
                res = c.produce("poll-many", {p: kafka_wire.build_batch([(None, b"to %d" % p)])}, acks=1)
                assert res == {p: (NONE, 0)}, f"produce to {p} -> {res}"

        with pinlog.wire() as c:
            t = threading.Thread(target=produce_later, daemon=True)
            started = time.monotonic()
            t.start()
            at_end = {p: (1 if p < target else 0, 1 << 20) for p in range(partitions)}  # one record per done one
            answer = c.fetch("poll-many", at_end, max_wait_ms=5000)
            elapsed = time.monotonic() - started
        t.join(10)
        assert answer["error_code"] == NONE
        got = {p: [r.value for b in kafka_wire.parse_batches(part["records"]) for r in b.records]
               for p, part in answer["partitions"].items()}
        assert got[target] == [b"to %d" % target], f"partition {target}: {got}"
        assert all(not v for p, v in got.items() if p != target), f"only partition {target} has data: {got}"
        assert elapsed < 3.0, f"long poll woken by partition {target} took {elapsed:.2f} s"


def test_long_poll_waits_about_max_wait_when_nothing_comes(pinlog):
    kafka_wire.create_topic(pinlog.bootstrap, "idle", 2)
    with pinlog.wire(timeout=20) as c:
        started = time.monotonic()
        answer = c.fetch("idle", {0: (0, 1 << 20), 1: (0, 1 << 20)}, max_wait_ms=5000, min_bytes=1)
        elapsed = time.monotonic() - started
    assert answer["error_code"] == NONE
    for p in range(2):
        part = answer["partitions"][p]
        assert part["error_code"] == NONE and not part["records"], f"partition {p}: {part}"
        assert part["high_watermark"] == 0
    assert 4.5 <= elapsed <= 7.0, f"empty long poll with max_wait 5000 returned after {elapsed:.2f} s"


def test_fetch_past_high_watermark_is_offset_out_of_range(loaded):
    with loaded.wire() as c:
        answer = c.fetch("limits", {0: (BATCHES * RECORDS_PER_BATCH + 1000, 1 << 20)})
    assert answer["partitions"][0]["error_code"] == kafka_wire.OFFSET_OUT_OF_RANGE
