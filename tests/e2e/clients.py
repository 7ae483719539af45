"""Helpers around the real Kafka clients (confluent-kafka / librdkafka, kafka-python, kcat) used by several tests.

Every loop here is bounded by a deadline; a client that hangs fails the test instead of hanging it.
"""

from __future__ import annotations

import time
import urllib.request
from typing import Callable, Optional

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

import kafka_wire


def confluent_create_topic(bootstrap: str, topic: str, partitions: int, timeout: float = 30.0) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.create_topics([NewTopic(topic, partitions, 1)], operation_timeout=timeout / 2,
                                  request_timeout=timeout)
    futures[topic].result(timeout=timeout)
    kafka_wire.wait_for_topic(bootstrap, topic, partitions)


def confluent_producer(bootstrap: str, **overrides) -> Producer:
    conf = {
        "bootstrap.servers": bootstrap,
        "acks": "all",
        "linger.ms": 5,
        "enable.idempotence": False,
        "message.timeout.ms": 60000,
        "compression.type": "none",
    }
    conf.update(overrides)
    return Producer(conf)


def produce_all(producer: Producer, topic: str, items, on_delivery: Callable, deadline_s: float = 180.0) -> None:
    """Produces every (key, value) of `items` in order, waiting on a full local queue, then flushes (bounded)."""
    deadline = time.monotonic() + deadline_s
    for n, (key, value) in enumerate(items):
        while True:
            try:
                producer.produce(topic, key=key, value=value, on_delivery=on_delivery)
                break
            except BufferError:
                assert time.monotonic() < deadline, "producer queue stayed full until the deadline"
                producer.poll(0.05)
        if n % 1000 == 0:
            producer.poll(0)
    left = producer.flush(max(1.0, deadline - time.monotonic()))
    assert left == 0, f"{left} messages still undelivered at the deadline"


def confluent_consume(bootstrap: str, topic: str, expected: dict[int, int], timeout: float = 180.0,
                      on_batch: Optional[Callable] = None) -> dict[int, list]:
    """Reads partitions {p: expected_count} from the beginning with assign(). Returns {p: [(offset, key, value)]}
    unless `on_batch(list_of_messages)` is given (then the lists stay empty, for big loads)."""
    consumer = Consumer({
        "bootstrap.servers": bootstrap,
        "group.id": f"e2e-{topic}",
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "auto.offset.reset": "earliest",
        "enable.partition.eof": True,
        "fetch.max.bytes": 16 * 1024 * 1024,
    })
    out: dict[int, list] = {p: [] for p in expected}
    counts = {p: 0 for p in expected}
    try:
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in expected])
        deadline = time.monotonic() + timeout
        while any(counts[p] < expected[p] for p in expected):
            assert time.monotonic() < deadline, f"consumed {counts} of {expected} within {timeout} s"
            msgs = consumer.consume(num_messages=10000, timeout=0.5)
            good = []
            for m in msgs:
                err = m.error()
                if err is not None:
                    assert err.code() == KafkaError._PARTITION_EOF, f"consumer error: {err}"
                    continue
                good.append(m)
                counts[m.partition()] += 1
            if on_batch is not None:
                on_batch(good)
            else:
                for m in good:
                    out[m.partition()].append((m.offset(), m.key(), m.value()))
        # Nothing more than expected must arrive: a short extra poll.
        extra = [m for m in consumer.consume(num_messages=1000, timeout=0.5) if m.error() is None]
        assert not extra, f"{len(extra)} records beyond the expected counts, first at " \
                          f"{extra[0].partition()}/{extra[0].offset()}"
    finally:
        consumer.close()
    return out


def confluent_watermarks(bootstrap: str, topic: str, partitions: int) -> dict[int, tuple[int, int]]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"e2e-wm-{topic}", "enable.auto.commit": False})
    try:
        return {
            p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=15, cached=False)
            for p in range(partitions)
        }
    finally:
        consumer.close()


def metric_sum(address: str, name: str) -> float:
    """The sum over every label set of metric `name` (a counter, or a histogram's `_count`/`_sum`) scraped from a
    node's Prometheus endpoint at `address`."""
    with urllib.request.urlopen(f"http://{address}/metrics", timeout=10) as response:
        text = response.read().decode()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name + "{"))
