"""Incremental fetch sessions (KIP-227): a full fetch with epoch 0 opens a session, and later fetches name only the
partitions whose position changed and get back only the partitions with news. Wrong epochs, forgotten partitions,
closed sessions and a real client (kafka-python, which uses sessions whenever the broker grants one) are checked on a
live broker."""

from __future__ import annotations

import time

import kafka_wire
from clients import metric_sum
from conftest import free_port

PARTITIONS = 8
FETCH_SESSION_ID_NOT_FOUND = 70
INVALID_FETCH_SESSION_EPOCH = 71
MAX = 1 << 20


def produce_one(c: kafka_wire.WireClient, topic: str, partition: int, value: bytes) -> None:
    error, _base = c.produce(topic, {partition: kafka_wire.build_batch([(None, value)])})[partition]
    assert error == kafka_wire.NONE, error


def test_a_session_answers_only_what_changed(pinlog):
    topic = "sessions"
    kafka_wire.create_topic(pinlog.bootstrap, topic, PARTITIONS)
    with pinlog.wire() as c:
        for p in range(PARTITIONS):
            produce_one(c, topic, p, f"first-{p}".encode())

        everything = {p: (0, MAX) for p in range(PARTITIONS)}
        opened = c.fetch(topic, everything, session_id=0, session_epoch=0)
        session = opened["session_id"]
        assert opened["error_code"] == kafka_wire.NONE and session > 0, opened
        assert sorted(opened["partitions"]) == list(range(PARTITIONS)), "the opening fetch answers every partition"
        assert all(opened["partitions"][p]["records"] for p in range(PARTITIONS))

        # The client moves every position past what it read: nothing new, so nothing comes back.
        moved = c.fetch(topic, {p: (1, MAX) for p in range(PARTITIONS)}, session_id=session, session_epoch=1)
        assert (moved["error_code"], moved["session_id"], moved["partitions"]) == (kafka_wire.NONE, session, {})

        produce_one(c, topic, 3, b"second-3")
        news = c.fetch(topic, {}, session_id=session, session_epoch=2)
        assert list(news["partitions"]) == [3], "only the partition with a new record"
        batch = kafka_wire.parse_batches(news["partitions"][3]["records"])
        assert [r.value for b in batch for r in b.records] == [b"second-3"]
        assert news["partitions"][3]["high_watermark"] == 2

        stale = c.fetch(topic, {}, session_id=session, session_epoch=2)
        assert stale["error_code"] == INVALID_FETCH_SESSION_EPOCH and stale["partitions"] == {}, stale

        # Partition 3 leaves the session: its next record is not answered; partition 5's is.
        c.fetch(topic, {}, session_id=session, session_epoch=3, forgotten=[3])
        produce_one(c, topic, 3, b"third-3")
        produce_one(c, topic, 5, b"second-5")
        after = c.fetch(topic, {}, session_id=session, session_epoch=4)
        assert list(after["partitions"]) == [5], after["partitions"].keys()

        # Named again after the forget, partition 3 rejoins at the position given; partition 5, moved past its
        # record, has no news.
        back = c.fetch(topic, {3: (2, MAX), 5: (2, MAX)}, session_id=session, session_epoch=5)
        assert list(back["partitions"]) == [3], back["partitions"].keys()
        batch = kafka_wire.parse_batches(back["partitions"][3]["records"])
        assert [r.value for b in batch for r in b.records] == [b"third-3"]
        produce_one(c, topic, 5, b"third-5")
        later = c.fetch(topic, {3: (3, MAX)}, session_id=session, session_epoch=6)
        assert list(later["partitions"]) == [5], later["partitions"].keys()

        # Epoch -1 closes the session and answers in full, outside any session.
        closed = c.fetch(topic, {p: (0, MAX) for p in range(2)}, session_id=session, session_epoch=-1)
        assert closed["session_id"] == 0 and sorted(closed["partitions"]) == [0, 1]
        gone = c.fetch(topic, {}, session_id=session, session_epoch=7)
        assert gone["error_code"] == FETCH_SESSION_ID_NOT_FOUND, gone


def test_a_session_long_polls_until_any_of_its_partitions_has_data(pinlog):
    topic = "sessions-wait"
    kafka_wire.create_topic(pinlog.bootstrap, topic, PARTITIONS)
    with pinlog.wire() as c:
        session = c.fetch(topic, {p: (0, MAX) for p in range(PARTITIONS)}, session_epoch=0)["session_id"]
        started = time.monotonic()
        idle = c.fetch(topic, {}, session_id=session, session_epoch=1, max_wait_ms=300)
        assert idle["partitions"] == {} and time.monotonic() - started >= 0.25, "waited out max_wait_ms"
        with pinlog.wire() as producer:
            produce_one(producer, topic, 6, b"late")
        woken = c.fetch(topic, {}, session_id=session, session_epoch=2, max_wait_ms=10_000, timeout=15)
        assert list(woken["partitions"]) == [6]


def test_kafka_python_reads_everything_through_a_session(pinlog_factory):
    from kafka import KafkaConsumer, TopicPartition

    node = pinlog_factory(metrics_listen=f"127.0.0.1:{free_port()}")
    topic = "sessions-client"
    kafka_wire.create_topic(node.bootstrap, topic, PARTITIONS)
    waves = 3
    consumer = KafkaConsumer(bootstrap_servers=node.bootstrap, group_id=None, enable_auto_commit=False,
                             auto_offset_reset="earliest", request_timeout_ms=30000, fetch_max_wait_ms=100)
    read: list[bytes] = []
    try:
        consumer.assign([TopicPartition(topic, p) for p in range(PARTITIONS)])
        with node.wire() as c:
            for wave in range(waves):
                for p in range(PARTITIONS):
                    produce_one(c, topic, p, f"{wave}-{p}".encode())
                deadline = time.monotonic() + 60
                while len(read) < (wave + 1) * PARTITIONS:
                    assert time.monotonic() < deadline, f"wave {wave}: read {len(read)} records"
                    for msgs in consumer.poll(timeout_ms=200).values():
                        read += [m.value for m in msgs]
        assert sorted(read) == sorted(f"{w}-{p}".encode() for w in range(waves) for p in range(PARTITIONS))
        address = node.flags["metrics_listen"]
        assert metric_sum(address, "pinlog_fetch_sessions") >= 1, "the client fetched through a session"
        assert metric_sum(address, "pinlog_fetch_session_evictions_total") == 0
    finally:
        consumer.close()
