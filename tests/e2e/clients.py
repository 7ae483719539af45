"""Helpers around the real Kafka clients (confluent-kafka / librdkafka, kafka-python, kcat) used by several tests.

Every loop here is bounded by a deadline; a client that hangs fails the test instead of hanging it.
"""

from __future__ import annotations

import random
import threading
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


class AckedLoad(threading.Thread):
    """acks=all confluent producer over `partitions` partitions (round robin) that records every acknowledged
    (partition, offset, value) until stopped; for tests that stop or kill the node under load."""

    def __init__(self, bootstrap: str, topic: str, partitions: int) -> None:
        super().__init__(daemon=True)
        self.producer = confluent_producer(
            bootstrap, **{"linger.ms": 2, "message.timeout.ms": 6000, "request.timeout.ms": 3000,
                          "reconnect.backoff.max.ms": 500, "log_level": 2}  # the refused reconnects are expected
        )
        self.topic = topic
        self.partitions = partitions
        self.acked: list[tuple[int, int, bytes]] = []
        self.acks_changed = threading.Condition()
        self.failed = 0
        self.stop = threading.Event()
        self.error: BaseException | None = None

    def wait_for_acks(self, count: int, deadline_s: float = 60.0) -> None:
        """Returns once `count` records are acknowledged (woken by the delivery callback); fails at the deadline or
        when the producer thread ends first."""
        deadline = time.monotonic() + deadline_s
        with self.acks_changed:
            while len(self.acked) < count:
                left = deadline - time.monotonic()
                assert left > 0 and self.is_alive(), f"only {len(self.acked)} acks after {deadline_s} s"
                # Bounded so a producer thread that died without a callback is noticed.
                self.acks_changed.wait(min(left, 1.0))

    def finish(self) -> None:
        """Stops producing and waits (bounded) for the outstanding deliveries to be acknowledged or to fail."""
        self.stop.set()
        self.join(60)
        assert not self.is_alive(), "producer thread did not stop within 60 s"
        assert self.error is None, f"producer thread failed: {self.error!r}"

    def on_delivery(self, err, msg) -> None:
        if err is None:
            with self.acks_changed:
                self.acked.append((msg.partition(), msg.offset(), msg.value()))
                self.acks_changed.notify_all()
        else:
            self.failed += 1

    def run(self) -> None:
        try:
            rng = random.Random(7)
            seq = 0
            while not self.stop.is_set():
                value = f"{seq:09d}:".encode() + rng.randbytes(rng.randint(0, 400))
                try:
                    self.producer.produce(self.topic, key=str(seq).encode(), value=value,
                                          partition=seq % self.partitions, on_delivery=self.on_delivery)
                    seq += 1
                except BufferError:
                    self.producer.poll(0.01)
                if seq % 200 == 0:
                    self.producer.poll(0)
            self.producer.flush(20)
        except BaseException as err:  # surfaced by the test
            self.error = err


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


def metric_values(address: str, name: str) -> dict[str, float]:
    """Metric `name` (a counter, a gauge, or a histogram's `_count`/`_sum`) scraped from a node's Prometheus endpoint
    at `address`: {label set: value}, e.g. {'{shard="0"}': 12.0}."""
    with urllib.request.urlopen(f"http://{address}/metrics", timeout=10) as response:
        text = response.read().decode()
    samples = (line.rsplit(" ", 1) for line in text.splitlines() if line.startswith(name + "{"))
    return {series[len(name):]: float(value) for series, value in samples}


def metric_sum(address: str, name: str) -> float:
    """The sum of metric `name` over every label set (see `metric_values`)."""
    return sum(metric_values(address, name).values())
