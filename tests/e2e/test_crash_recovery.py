"""Crash safety.

1. kill -9 the node in the middle of an acks=all produce load; after a restart every acknowledged record is
   present at its acknowledged offset with the same value.
2. Then garbage at the logical end of the last segment (a torn half batch, then 100 random bytes), as a crash in
   the middle of a write leaves it: the restarted node truncates to the last valid batch (same high watermark),
   serves reads, takes new writes, and those new writes survive another restart.
3. A graceful stop in the middle of a produce load over many partitions closes every partition it opened, once,
   and opens none while it stops (requests still arrive then); after a restart every acknowledged record is there.

Segments are preallocated and zero-filled, so the "end" of a segment is found by walking the batch headers.
"""

from __future__ import annotations

import mmap
import os
import random
import struct
import time
from pathlib import Path

import pytest

import clients
import kafka_wire

PARTITIONS = 3
LOAD_SECONDS_BEFORE_KILL = float(os.environ.get("PINLOG_CRASH_LOAD_SECONDS", "4"))


def last_segment(partition_dir: Path) -> Path:
    segments = sorted(partition_dir.glob("*.log"), key=lambda p: int(p.stem))
    assert segments, f"no segment in {partition_dir}: {sorted(os.listdir(partition_dir))}"
    for s in segments:
        assert len(s.stem) == 20 and s.stem.isdigit(), f"segment name {s.name} is not a 20-digit base offset"
    return segments[-1]


def logical_end(segment: Path) -> tuple[int, int]:
    """(byte position after the last valid batch, next offset) of a segment: walks v2 headers, stops at a zero
    length, a length past the file, a non-v2 magic or a CRC mismatch."""
    pos = 0
    next_offset = int(segment.stem)
    with open(segment, "rb") as f:
        if os.fstat(f.fileno()).st_size == 0:
            return pos, next_offset
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
            while pos + 12 <= len(data):
                _base_offset, length = struct.unpack_from(">qi", data, pos)
                if length < kafka_wire.BATCH_LENGTH_MIN or pos + 12 + length > len(data):
                    break
                raw = data[pos : pos + 12 + length]
                if raw[16] != 2 or kafka_wire.crc32c(raw[21:]) != struct.unpack_from(">I", raw, 17)[0]:
                    break
                next_offset = kafka_wire.parse_batch(raw).last_offset + 1
                pos += 12 + length
    return pos, next_offset


def write_at(path: Path, pos: int, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY)
    try:
        os.pwrite(fd, data, pos)
        os.fsync(fd)
    finally:
        os.close(fd)


def read_all(bootstrap: str, topic: str) -> dict[int, list[kafka_wire.Record]]:
    return {p: kafka_wire.read_partition(bootstrap, topic, p) for p in range(PARTITIONS)}


def as_map(records: dict[int, list[kafka_wire.Record]]) -> dict[tuple[int, int], bytes]:
    return {(p, r.offset): r.value for p, recs in records.items() for r in recs}


@pytest.mark.timeout(300)
def test_kill9_during_load_then_torn_tail(pinlog):
    topic = "crash"
    kafka_wire.create_topic(pinlog.bootstrap, topic, PARTITIONS)

    # --- 1. kill -9 under load
    load = clients.AckedLoad(pinlog.bootstrap, topic, PARTITIONS)
    load.start()
    time.sleep(LOAD_SECONDS_BEFORE_KILL)
    load.wait_for_acks(1000)
    pinlog.kill9()
    acked_at_kill = len(load.acked)
    load.finish()
    print(f"\nacknowledged {len(load.acked)} records ({acked_at_kill} before the kill returned), "
          f"{load.failed} failed after the kill")

    pinlog.start()
    records = read_all(pinlog.bootstrap, topic)
    present = as_map(records)
    lost = [(p, o) for p, o, v in load.acked if present.get((p, o)) != v]
    assert not lost, f"{len(lost)} of {len(load.acked)} acknowledged records lost or changed, e.g. {lost[:5]}"
    for p, recs in records.items():
        assert [r.offset for r in recs] == list(range(len(recs))), f"partition {p}: offsets not contiguous from 0"

    # --- 2. garbage at the logical end of the last segment
    partition = 0
    before = kafka_wire.high_watermarks(pinlog.bootstrap, topic, PARTITIONS)
    before_records = as_map(records)
    rng = random.Random(11)
    torn = kafka_wire.build_batch([(b"torn", rng.randbytes(3000)) for _ in range(4)], base_offset=before[partition])
    garbage_kinds = [("torn half batch", torn[: len(torn) // 2]), ("100 random bytes", rng.randbytes(100))]
    for what, garbage in garbage_kinds:
        pinlog.stop()
        segment = last_segment(pinlog.partition_dir(topic, partition))
        end, next_offset = logical_end(segment)
        assert next_offset == before[partition], \
            f"segment {segment.name} ends at offset {next_offset}, high watermark was {before[partition]}"
        write_at(segment, end, garbage)

        pinlog.start()
        after = kafka_wire.high_watermarks(pinlog.bootstrap, topic, PARTITIONS)
        assert after == before, f"after {what}: high watermarks {after} != {before}"
        again = as_map(read_all(pinlog.bootstrap, topic))
        assert again == before_records, f"after {what}: the records read back differ"

    # --- 3. new writes after the truncation land, read back, and survive a restart
    new_values = {p: [f"after-{p}-{i}".encode() * (i + 1) for i in range(20)] for p in range(PARTITIONS)}
    with pinlog.wire() as c:
        for p, values in new_values.items():
            for i in range(0, len(values), 5):
                res = c.produce(topic, {p: kafka_wire.build_batch([(None, v) for v in values[i : i + 5]])}, acks=-1)
                code, base = res[p]
                assert code == 0, f"produce after recovery to {p} -> error {code}"
                assert base == before[p] + i, f"partition {p}: base offset {base} != {before[p] + i}"

    def check_new() -> None:
        for p, values in new_values.items():
            got = kafka_wire.read_partition(pinlog.bootstrap, topic, p, start=before[p])
            assert [r.value for r in got] == values, f"partition {p}: new records differ after recovery"
            assert [r.offset for r in got] == list(range(before[p], before[p] + len(values)))

    check_new()
    pinlog.restart()
    check_new()
    assert as_map({p: kafka_wire.read_partition(pinlog.bootstrap, topic, p, end=before[p])
                   for p in range(PARTITIONS)}) == before_records


def test_graceful_stop_under_load_closes_each_partition_once_and_keeps_acked_records(pinlog):
    topic, partitions = "stop-under-load", 24
    kafka_wire.create_topic(pinlog.bootstrap, topic, partitions)
    load = clients.AckedLoad(pinlog.bootstrap, topic, partitions)
    load.start()
    load.wait_for_acks(3000)
    assert pinlog.stop() == 0, "a graceful stop exits with code 0"
    load.finish()

    log = pinlog.log_text()
    opened, closed = log.count("partition log opened"), log.count("partition log closed")
    assert opened == partitions and closed == partitions, \
        f"{opened} opens and {closed} closes of {partitions} partitions in one run that stopped under load"
    assert "cannot open partition" not in log

    pinlog.start()
    present = {}
    for p in range(partitions):
        recs = kafka_wire.read_partition(pinlog.bootstrap, topic, p)
        assert [r.offset for r in recs] == list(range(len(recs))), f"partition {p}: offsets not contiguous from 0"
        present.update({(p, r.offset): r.value for r in recs})
    lost = [(p, o) for p, o, v in load.acked if present.get((p, o)) != v]
    assert not lost, f"{len(lost)} of {len(load.acked)} acknowledged records lost or changed, e.g. {lost[:5]}"
