"""Max-rate acks=all load of 1 KiB records from confluent-kafka, then an exact accounting: the sum of the high
watermarks equals the number of acknowledged records, and a consumer reads every acknowledged record back.

PINLOG_LOAD_SECONDS shortens (or lengthens) the load phase (default 20 s). The MB/s figure is printed, never
asserted: speed belongs to the bench. The soak variant runs PINLOG_SOAK_SECONDS (default 600) with PINLOG_SOAK=1.
"""

from __future__ import annotations

import os
import struct
import time

import pytest

import clients
import kafka_wire

RECORD_BYTES = 1024
PARTITIONS = 4


def run_load(bootstrap: str, topic: str, seconds: float) -> None:
    kafka_wire.create_topic(bootstrap, topic, PARTITIONS)
    producer = clients.confluent_producer(
        bootstrap,
        **{
            "linger.ms": 5,
            "batch.size": 1000000,
            "batch.num.messages": 10000,
            "queue.buffering.max.kbytes": 256 * 1024,
            "queue.buffering.max.messages": 1000000,
            "message.timeout.ms": 120000,
        },
    )
    pad = bytes(range(256)) * (RECORD_BYTES // 256)
    pad = pad[: RECORD_BYTES - 8]
    acked = bytearray()  # acked[seq] == 1 once its delivery report succeeded
    stats = {"ok": 0, "err": 0, "first_err": None}

    def on_delivery(err, msg):
        if err is None:
            seq = struct.unpack_from(">Q", msg.value())[0]
            acked[seq] = 1
            stats["ok"] += 1
        else:
            stats["err"] += 1
            stats["first_err"] = stats["first_err"] or str(err)

    started = time.monotonic()
    stop_at = started + seconds
    seq = 0
    while time.monotonic() < stop_at:
        for _ in range(1000):
            acked.append(0)
            try:
                producer.produce(topic, value=struct.pack(">Q", seq) + pad, partition=seq % PARTITIONS,
                                 on_delivery=on_delivery)
            except BufferError:
                acked.pop()
                producer.poll(0.01)
                break
            seq += 1
        producer.poll(0)
    produced = seq
    left = producer.flush(180)
    elapsed = time.monotonic() - started
    assert left == 0, f"{left} records still undelivered 180 s after the load stopped"
    mb = stats["ok"] * RECORD_BYTES / 1e6
    print(f"\nload: {stats['ok']} acked of {produced} produced ({stats['err']} failed) in {elapsed:.1f} s: "
          f"{mb / elapsed:.1f} MB/s, {stats['ok'] / elapsed:.0f} records/s")
    assert stats["err"] == 0, f"{stats['err']} delivery errors, first: {stats['first_err']}"
    assert stats["ok"] > 0

    marks = kafka_wire.high_watermarks(bootstrap, topic, PARTITIONS)
    assert sum(marks.values()) == stats["ok"], f"high watermarks {marks} sum to {sum(marks.values())}, " \
                                              f"acknowledged {stats['ok']}"

    seen = bytearray(produced)
    bad = {"dup": 0, "size": 0, "unknown": 0, "partition": 0}

    def on_batch(msgs):
        for m in msgs:
            v = m.value()
            if len(v) != RECORD_BYTES or v[8:] != pad:
                bad["size"] += 1
                continue
            s = struct.unpack_from(">Q", v)[0]
            if s >= produced:
                bad["unknown"] += 1
                continue
            if s % PARTITIONS != m.partition():
                bad["partition"] += 1
            if seen[s]:
                bad["dup"] += 1
            seen[s] = 1

    started = time.monotonic()
    clients.confluent_consume(bootstrap, topic, marks, timeout=300, on_batch=on_batch)
    print(f"consume: {sum(marks.values())} records in {time.monotonic() - started:.1f} s")
    assert bad == {"dup": 0, "size": 0, "unknown": 0, "partition": 0}, f"bad records read back: {bad}"
    missing = sum(1 for s in range(produced) if acked[s] and not seen[s])
    assert missing == 0, f"{missing} acknowledged records were not read back"


@pytest.mark.timeout(900)
def test_max_rate_load(pinlog):
    run_load(pinlog.bootstrap, "load", float(os.environ.get("PINLOG_LOAD_SECONDS", "20")))


@pytest.mark.soak
@pytest.mark.timeout(int(os.environ.get("PINLOG_SOAK_SECONDS", "600")) * 3 + 600)
def test_soak_load(pinlog):
    run_load(pinlog.bootstrap, "soak", float(os.environ.get("PINLOG_SOAK_SECONDS", "600")))
