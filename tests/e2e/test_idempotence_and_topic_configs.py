"""Idempotent producers (InitProducerId + per-partition sequence checks), LogAppendTime topics and compaction,
each driven by a real client or the raw wire client against a real pinlog process."""

from __future__ import annotations

import time

from confluent_kafka import TIMESTAMP_LOG_APPEND_TIME, Consumer, TopicPartition

import kafka_wire
from clients import confluent_producer, produce_all

PARTITIONS = 3
RECORDS = 20_000


def test_idempotent_producer_writes_each_record_once_in_order(pinlog):
    topic = "idem"
    kafka_wire.create_topic(pinlog.bootstrap, topic, PARTITIONS)
    producer = confluent_producer(pinlog.bootstrap, **{"enable.idempotence": True, "linger.ms": 2})
    failures = []

    def delivered(err, msg):
        if err is not None:
            failures.append(err)

    items = ((f"k{i % 50}".encode(), f"v{i}".encode()) for i in range(RECORDS))
    produce_all(producer, topic, items, delivered)
    assert not failures, f"{len(failures)} deliveries failed, e.g. {failures[:3]}"

    seen = []
    for p in range(PARTITIONS):
        records = kafka_wire.read_partition(pinlog.bootstrap, topic, p)
        assert [r.offset for r in records] == list(range(len(records))), f"partition {p}: offsets not contiguous"
        values = [int(r.value[1:]) for r in records]
        assert values == sorted(values), f"partition {p}: records reordered"
        seen += values
    assert sorted(seen) == list(range(RECORDS)), "every record exactly once"


def test_producer_ids_are_unique_and_survive_restart(pinlog):
    with pinlog.wire() as c:
        answers = [c.init_producer_id() for _ in range(5)]
    assert all(a["error_code"] == kafka_wire.NONE and a["producer_epoch"] == 0 for a in answers), answers
    before = {a["producer_id"] for a in answers}
    pinlog.restart()
    with pinlog.wire() as c:
        after = {c.init_producer_id()["producer_id"] for _ in range(5)}
    assert len(before) == 5 and len(after) == 5
    assert not before & after, f"a producer id was handed out twice across a restart: {before & after}"


def test_log_append_time_topic_stamps_broker_time(pinlog):
    topic = "append-time"
    kafka_wire.create_topic(pinlog.bootstrap, topic, 1, configs={"message.timestamp.type": "LogAppendTime"})
    producer = confluent_producer(pinlog.bootstrap)
    long_ago = 1_000_000_000_000  # 2001
    producer.produce(topic, value=b"x", timestamp=long_ago)
    assert producer.flush(30) == 0
    consumer = Consumer({"bootstrap.servers": pinlog.bootstrap, "group.id": "unused", "enable.auto.commit": False})
    try:
        consumer.assign([TopicPartition(topic, 0, 0)])
        deadline = time.monotonic() + 30
        msg = None
        while msg is None or msg.error():
            assert time.monotonic() < deadline, "record not consumed within 30 s"
            msg = consumer.poll(1.0)
        kind, ts = msg.timestamp()
        assert kind == TIMESTAMP_LOG_APPEND_TIME, f"timestamp type {kind}"
        assert abs(ts - time.time() * 1000) < 60_000, f"timestamp {ts} is not the broker's clock"
    finally:
        consumer.close()


def test_compacted_topic_converges_to_the_last_value_per_key(pinlog_factory):
    node = pinlog_factory(retention_check_interval_ms=300)
    topic = "compacted"
    configs = {"cleanup.policy": "compact", "segment.bytes": str(1 << 20), "min.cleanable.dirty.ratio": "0",
               "delete.retention.ms": "0"}
    kafka_wire.create_topic(node.bootstrap, topic, 1, configs=configs)
    keys, rounds = 20, 200
    with node.wire() as c:
        for r in range(rounds):
            batch = kafka_wire.build_batch([(f"key{k}".encode(), f"{r}:".encode() + b"v" * 1000) for k in range(keys)])
            assert c.produce(topic, {0: batch})[0][0] == kafka_wire.NONE
        # A tombstone for key0, then one more round for the other keys so the tombstone's segment can close.
        tombstone = kafka_wire.build_batch([(b"key0", None)])
        assert c.produce(topic, {0: tombstone})[0][0] == kafka_wire.NONE
        last = kafka_wire.build_batch([(f"key{k}".encode(), f"{rounds}:".encode() + b"v" * 1000)
                                       for k in range(1, keys)] * 40)
        assert c.produce(topic, {0: last})[0][0] == kafka_wire.NONE
    produced = rounds * keys + 1 + (keys - 1) * 40
    deadline = time.monotonic() + 60
    while True:
        records = kafka_wire.read_partition(node.bootstrap, topic, 0)
        if len(records) < produced // 4:
            break
        assert time.monotonic() < deadline, f"no compaction within 60 s: {len(records)} of {produced} records remain"
        time.sleep(0.5)
    offsets = [r.offset for r in records]
    assert offsets == sorted(set(offsets)), "offsets stay increasing and unique"
    latest = {}
    for r in records:
        latest[r.key] = r.value
    for k in range(1, keys):
        assert latest[f"key{k}".encode()].startswith(f"{rounds}:".encode()), f"key{k} lost its last value"
    assert b"key0" not in latest or latest[b"key0"] is None, "key0 was deleted by its tombstone"
