"""A read across many produce requests is answered whole, from the tail by reference in several pieces.

The tail keeps each produce request's buffer; a partition's batches from successive requests lie in different
buffers. A fetch spanning them is answered with every batch up to its limits (not cut short at a buffer's end):
runs of at least 4 KiB are sent in place, the smaller runs between them copied together (engine/src/tail.rs,
net/src/response.rs). These tests interleave large and small batches, one request each, so an answer mixes both
kinds of piece, and check the bytes through the raw wire (every batch, CRCs) and through real clients.
"""

from __future__ import annotations

import time

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition

import kafka_wire
from kafka_wire import NONE

TOPIC = "pieces"
PARTITIONS = 2
REQUESTS = 30


def batch_values(request: int, partition: int) -> list[bytes]:
    """Every third request is a large batch (6 values of 12-14 KB: over 64 KiB, where the tail used to cut a read
    short), the others small ones (1 or 2 values of 100-300 B, under 4 KiB: copied)."""
    if request % 3 == 0:
        return [f"{partition}:{request}:{i}:".encode() * 2000 for i in range(6)]
    return [f"{partition}:{request}:{i}:".encode() * (10 + request % 20) for i in range(1 + request % 2)]


def produce_interleaved(bootstrap: str, wire) -> dict[int, list[bytes]]:
    """One Produce request per batch on both partitions; returns {partition: values in offset order}."""
    kafka_wire.create_topic(bootstrap, TOPIC, PARTITIONS)
    expected: dict[int, list[bytes]] = {p: [] for p in range(PARTITIONS)}
    with wire() as c:
        for r in range(REQUESTS):
            batches = {}
            for p in range(PARTITIONS):
                values = batch_values(r, p)
                batches[p] = kafka_wire.build_batch([(None, v) for v in values])
            res = c.produce(TOPIC, batches, acks=-1)
            for p in range(PARTITIONS):
                assert res[p] == (NONE, len(expected[p])), f"request {r}: produce -> {res}"
                expected[p] += batch_values(r, p)
    return expected


def test_one_fetch_answers_every_batch_across_requests(pinlog):
    expected = produce_interleaved(pinlog.bootstrap, pinlog.wire)
    with pinlog.wire() as c:
        answer = c.fetch(TOPIC, {p: (0, 1 << 20) for p in range(PARTITIONS)})
    assert answer["error_code"] == NONE
    for p in range(PARTITIONS):
        part = answer["partitions"][p]
        assert part["error_code"] == NONE
        batches = kafka_wire.parse_batches(part["records"], allow_partial_tail=False)
        assert len(batches) == REQUESTS, \
            f"partition {p}: {len(batches)} of {REQUESTS} batches in one fetch (a read cut short at a request's end?)"
        assert all(b.crc_ok for b in batches), f"partition {p}: a batch with a bad CRC"
        values = [r.value for b in batches for r in b.records]
        assert values == expected[p], f"partition {p}: the records differ from those produced"


def test_limits_within_a_read_of_several_pieces(pinlog):
    """A partition limit that ends inside the run of pieces keeps whole batches, and the next fetch goes on from
    there: reading the partition in small steps gives every record once, in order."""
    expected = produce_interleaved(pinlog.bootstrap, pinlog.wire)
    with pinlog.wire() as c:
        for p in range(PARTITIONS):
            values: list[bytes] = []
            offset, deadline = 0, time.monotonic() + 60
            while offset < len(expected[p]):
                assert time.monotonic() < deadline, f"partition {p}: read {offset} of {len(expected[p])} in 60 s"
                part = c.fetch(TOPIC, {p: (offset, 100_000)})["partitions"][p]
                assert part["error_code"] == NONE
                records = part["records"] or b""
                batches = kafka_wire.parse_batches(records, allow_partial_tail=False)
                assert batches, f"partition {p}: no progress at offset {offset}"
                assert len(records) <= 100_000 or len(batches) == 1, "over the partition limit"
                assert sum(b.batch_length + 12 for b in batches) == len(records), "a torn batch"
                assert all(b.crc_ok for b in batches)
                values += [r.value for b in batches for r in b.records]
                offset = batches[-1].base_offset + batches[-1].last_offset_delta + 1
            assert values == expected[p], f"partition {p}: the records differ from those produced"


def test_real_clients_read_the_pieces(pinlog):
    expected = produce_interleaved(pinlog.bootstrap, pinlog.wire)

    consumer = Consumer({
        "bootstrap.servers": pinlog.bootstrap,
        "group.id": "e2e-pieces",
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "enable.partition.eof": True,
    })
    got: dict[int, list[bytes]] = {p: [] for p in range(PARTITIONS)}
    try:
        consumer.assign([TopicPartition(TOPIC, p, OFFSET_BEGINNING) for p in range(PARTITIONS)])
        deadline = time.monotonic() + 60
        while any(len(got[p]) < len(expected[p]) for p in range(PARTITIONS)):
            assert time.monotonic() < deadline, f"confluent-kafka read {[len(v) for v in got.values()]} in 60 s"
            for m in consumer.consume(num_messages=1000, timeout=0.5):
                if m.error() is not None:
                    assert m.error().code() == KafkaError._PARTITION_EOF, f"consumer error: {m.error()}"
                    continue
                got[m.partition()].append(m.value())
    finally:
        consumer.close()
    assert got == expected, "confluent-kafka read other records than those produced"

    from kafka import KafkaConsumer
    from kafka import TopicPartition as KTopicPartition

    tps = [KTopicPartition(TOPIC, p) for p in range(PARTITIONS)]
    kconsumer = KafkaConsumer(bootstrap_servers=pinlog.bootstrap, group_id=None, enable_auto_commit=False,
                              auto_offset_reset="earliest", request_timeout_ms=30000)
    got = {p: [] for p in range(PARTITIONS)}
    try:
        kconsumer.assign(tps)
        kconsumer.seek_to_beginning(*tps)
        deadline = time.monotonic() + 60
        while any(len(got[p]) < len(expected[p]) for p in range(PARTITIONS)):
            assert time.monotonic() < deadline, f"kafka-python read {[len(v) for v in got.values()]} in 60 s"
            for tp, msgs in kconsumer.poll(timeout_ms=500, max_records=1000).items():
                got[tp.partition] += [m.value for m in msgs]
    finally:
        kconsumer.close()
    assert got == expected, "kafka-python read other records than those produced"
