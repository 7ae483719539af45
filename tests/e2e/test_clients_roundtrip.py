"""Round trip through real clients: create a 6-partition topic, produce 100,000 keyed records with acks=all,
consume every partition back with assign(), and check every record byte for byte, in order per partition, exactly
once; earliest/latest offsets from the client's own API must match what was produced.

Clients: confluent-kafka (librdkafka), kafka-python (pure Python), aiokafka (asyncio) and kcat (the CLI, Debian's
librdkafka).
"""

from __future__ import annotations

import os
import random
import subprocess
import time
from pathlib import Path

import pytest

import clients
import kafka_wire

RECORDS = int(os.environ.get("PINLOG_ROUNDTRIP_RECORDS", "100000"))
PARTITIONS = 6


def make_records(seed: int, text: bool) -> list[tuple[bytes, bytes]]:
    """Unique keys; values of 1..300 bytes. `text` values are hex (kcat reads lines), else arbitrary bytes,
    including empty-ish, zero and 0xff bytes."""
    rng = random.Random(seed)
    out = []
    for i in range(RECORDS):
        raw = rng.randbytes(rng.randint(1, 150 if text else 300))
        out.append((f"key-{i:07d}".encode(), raw.hex().encode() if text else raw))
    return out


def check_roundtrip(produced: list[tuple[bytes, bytes]], consumed: dict[int, list], delivered: dict | None) -> None:
    """`consumed` {p: [(offset, key, value)]}; `delivered` {key: (partition, offset)} from delivery reports."""
    index_of = {k: i for i, (k, _v) in enumerate(produced)}
    seen: set[bytes] = set()
    for p, recs in consumed.items():
        offsets = [o for o, _k, _v in recs]
        assert offsets == list(range(len(recs))), f"partition {p}: offsets not 0..{len(recs) - 1} in order"
        last_index = -1
        for offset, key, value in recs:
            assert key in index_of, f"partition {p} offset {offset}: unknown key {key!r}"
            assert key not in seen, f"partition {p} offset {offset}: key {key!r} read twice"
            seen.add(key)
            i = index_of[key]
            assert value == produced[i][1], f"partition {p} offset {offset}: value differs for {key!r}"
            assert i > last_index, f"partition {p} offset {offset}: {key!r} out of produce order"
            last_index = i
            if delivered is not None:
                assert delivered[key] == (p, offset), \
                    f"{key!r} acknowledged at {delivered[key]} but read at {(p, offset)}"
    missing = len(produced) - len(seen)
    assert missing == 0, f"{missing} produced records never read back"


def check_watermarks(consumed: dict[int, list], marks: dict[int, tuple[int, int]]) -> None:
    for p, recs in consumed.items():
        assert marks[p] == (0, len(recs)), f"partition {p}: (earliest, latest) {marks[p]} != (0, {len(recs)})"


# ---------------------------------------------------------------------------------------------------- per client


def run_confluent(bootstrap: str, topic: str) -> None:
    produced = make_records(1, text=False)
    clients.confluent_create_topic(bootstrap, topic, PARTITIONS)
    delivered: dict[bytes, tuple[int, int]] = {}
    errors = []

    def on_delivery(err, msg):
        if err is not None:
            errors.append(err)
        else:
            delivered[msg.key()] = (msg.partition(), msg.offset())

    producer = clients.confluent_producer(bootstrap)
    clients.produce_all(producer, topic, produced, on_delivery)
    assert not errors, f"{len(errors)} delivery errors, first: {errors[0]}"
    assert len(delivered) == RECORDS
    counts = {p: 0 for p in range(PARTITIONS)}
    for p, _o in delivered.values():
        counts[p] += 1
    consumed = clients.confluent_consume(bootstrap, topic, counts)
    check_roundtrip(produced, consumed, delivered)
    check_watermarks(consumed, clients.confluent_watermarks(bootstrap, topic, PARTITIONS))


def run_kafka_python(bootstrap: str, topic: str) -> None:
    from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
    from kafka.admin import NewTopic

    produced = make_records(2, text=False)
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=30000)
    try:
        admin.create_topics([NewTopic(topic, num_partitions=PARTITIONS, replication_factor=1)], timeout_ms=20000)
    finally:
        admin.close()
    kafka_wire.wait_for_topic(bootstrap, topic, PARTITIONS)

    # kafka-python >= 3.0 defaults to an idempotent producer, which needs InitProducerId (not in pinlog's API set).
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5, batch_size=256 * 1024,
                             request_timeout_ms=30000, max_block_ms=60000, enable_idempotence=False)
    try:
        futures = [producer.send(topic, key=k, value=v) for k, v in produced]
        producer.flush(timeout=180)
        delivered = {}
        for (k, _v), fut in zip(produced, futures):
            md = fut.get(timeout=1)
            delivered[k] = (md.partition, md.offset)
    finally:
        producer.close(timeout=10)
    counts = {p: 0 for p in range(PARTITIONS)}
    for p, _o in delivered.values():
        counts[p] += 1

    tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                             auto_offset_reset="earliest", request_timeout_ms=30000, fetch_max_bytes=16 << 20)
    consumed: dict[int, list] = {p: [] for p in range(PARTITIONS)}
    try:
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        deadline = time.monotonic() + 240
        while sum(len(v) for v in consumed.values()) < RECORDS:
            assert time.monotonic() < deadline, "kafka-python consumer did not read everything in 240 s"
            for tp, msgs in consumer.poll(timeout_ms=500, max_records=10000).items():
                consumed[tp.partition] += [(m.offset, m.key, m.value) for m in msgs]
        assert not consumer.poll(timeout_ms=500), "records beyond the produced ones"
        begin = consumer.beginning_offsets(tps)
        end = consumer.end_offsets(tps)
    finally:
        consumer.close()
    for p in range(PARTITIONS):
        assert len(consumed[p]) == counts[p], f"partition {p}: read {len(consumed[p])}, acknowledged {counts[p]}"
    check_roundtrip(produced, consumed, delivered)
    check_watermarks(consumed, {tp.partition: (begin[tp], end[tp]) for tp in tps})


def run_aiokafka(bootstrap: str, topic: str) -> None:
    import asyncio

    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    produced = make_records(4, text=False)

    async def run() -> tuple[dict, dict, dict]:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=30000)
        await admin.start()
        try:
            await admin.create_topics([NewTopic(topic, num_partitions=PARTITIONS, replication_factor=1)],
                                      timeout_ms=20000)
        finally:
            await admin.close()
        await asyncio.to_thread(kafka_wire.wait_for_topic, bootstrap, topic, PARTITIONS)

        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5,
                                    max_batch_size=256 * 1024, request_timeout_ms=30000)
        await producer.start()
        try:
            futures = [await producer.send(topic, key=k, value=v) for k, v in produced]
            await producer.flush()
            delivered = {}
            for (k, _v), fut in zip(produced, futures):
                md = await fut
                delivered[k] = (md.partition, md.offset)
        finally:
            await producer.stop()

        tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                                    auto_offset_reset="earliest", request_timeout_ms=30000)
        await consumer.start()
        consumed: dict[int, list] = {p: [] for p in range(PARTITIONS)}
        try:
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            while sum(len(v) for v in consumed.values()) < RECORDS:
                batch = await consumer.getmany(timeout_ms=500, max_records=10000)
                for tp, msgs in batch.items():
                    consumed[tp.partition] += [(m.offset, m.key, m.value) for m in msgs]
            assert not await consumer.getmany(timeout_ms=500), "records beyond the produced ones"
            begin = await consumer.beginning_offsets(tps)
            end = await consumer.end_offsets(tps)
        finally:
            await consumer.stop()
        marks = {tp.partition: (begin[tp], end[tp]) for tp in tps}
        return delivered, consumed, marks

    delivered, consumed, marks = asyncio.run(asyncio.wait_for(run(), timeout=300))
    check_roundtrip(produced, consumed, delivered)
    check_watermarks(consumed, marks)


def run_kcat(bootstrap: str, topic: str, workdir: Path) -> None:
    produced = make_records(3, text=True)
    kafka_wire.create_topic(bootstrap, topic, PARTITIONS)
    input_file = workdir / "kcat-input.txt"
    input_file.write_bytes(b"".join(k + b":" + v + b"\n" for k, v in produced))
    with open(input_file, "rb") as stdin:
        res = subprocess.run(
            ["kcat", "-b", bootstrap, "-P", "-t", topic, "-K:", "-X", "acks=all", "-X", "linger.ms=5"],
            stdin=stdin, capture_output=True, timeout=180,
        )
    assert res.returncode == 0, f"kcat -P exited {res.returncode}: {res.stderr.decode(errors='replace')[-2000:]}"
    assert b"Delivery failed" not in res.stderr, res.stderr.decode(errors="replace")[-2000:]

    consumed: dict[int, list] = {}
    for p in range(PARTITIONS):
        res = subprocess.run(
            ["kcat", "-b", bootstrap, "-C", "-t", topic, "-p", str(p), "-o", "beginning", "-e", "-q",
             "-f", "%o\t%k\t%s\n"],
            stdin=subprocess.DEVNULL, capture_output=True, timeout=180,
        )
        assert res.returncode == 0, f"kcat -C -p {p} exited {res.returncode}: {res.stderr.decode()[-2000:]}"
        recs = []
        for line in res.stdout.splitlines():
            offset, key, value = line.split(b"\t")
            recs.append((int(offset), key, value))
        consumed[p] = recs
    assert sum(len(v) for v in consumed.values()) == RECORDS, \
        f"kcat read {sum(len(v) for v in consumed.values())} of {RECORDS}"
    check_roundtrip(produced, consumed, None)
    with kafka_wire.WireClient(bootstrap) as c:
        earliest = c.list_offsets(topic, list(range(PARTITIONS)), kafka_wire.EARLIEST_TIMESTAMP)
        latest = c.list_offsets(topic, list(range(PARTITIONS)), kafka_wire.LATEST_TIMESTAMP)
    marks = {}
    for p in range(PARTITIONS):
        assert earliest[p][0] == 0 and latest[p][0] == 0, f"ListOffsets errors {earliest[p]} {latest[p]}"
        marks[p] = (earliest[p][1], latest[p][1])
    check_watermarks(consumed, marks)


@pytest.mark.timeout(600)
@pytest.mark.parametrize("client", ["confluent-kafka", "kafka-python", "aiokafka", "kcat"])
def test_roundtrip(pinlog, client):
    topic = f"roundtrip-{client}"
    if client == "confluent-kafka":
        run_confluent(pinlog.bootstrap, topic)
    elif client == "kafka-python":
        run_kafka_python(pinlog.bootstrap, topic)
    elif client == "aiokafka":
        run_aiokafka(pinlog.bootstrap, topic)
    else:
        run_kcat(pinlog.bootstrap, topic, pinlog.data_dir.parent)
