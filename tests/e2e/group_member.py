"""One consumer-group member, run as its own process by test_consumer_groups.py.

usage: group_member.py CLIENT BOOTSTRAP TOPIC GROUP NAME   (CLIENT: confluent | kafka-python | aiokafka)

It subscribes, and for every batch it polls it commits the batch's offsets synchronously and only then reports
the records, so a record reported twice would be one delivered again past its committed offset. Lines on stdout
(JSON): {"event": "assigned", "member": NAME, "partitions": [...]} after every assignment change (the full
current set) and {"event": "consumed", "member": NAME, "records": [[partition, offset, value], ...]}.
A line "stop" on stdin (or EOF) closes the consumer, which leaves the group, and exits.
"""

from __future__ import annotations

import asyncio
import json
import sys
import threading

SESSION_TIMEOUT_MS = 6000
HEARTBEAT_INTERVAL_MS = 500
POLL_TIMEOUT_S = 0.2

client, bootstrap, topic, group, name = sys.argv[1:6]
stop = threading.Event()
assigned: set[int] = set()
out_lock = threading.Lock()


def emit(obj: dict) -> None:
    with out_lock:
        sys.stdout.write(json.dumps(obj) + "\n")
        sys.stdout.flush()


def report_assignment() -> None:
    emit({"event": "assigned", "member": name, "partitions": sorted(assigned)})


def watch_stdin() -> None:
    for line in sys.stdin:
        if line.strip() == "stop":
            break
    stop.set()


def run_confluent() -> None:
    from confluent_kafka import Consumer, TopicPartition

    # confluent-kafka (incrementally) assigns and unassigns by itself after these callbacks return.
    def on_assign(consumer, partitions):
        assigned.update(p.partition for p in partitions)
        report_assignment()

    def on_revoke(consumer, partitions):
        assigned.difference_update(p.partition for p in partitions)
        report_assignment()

    consumer = Consumer({
        "bootstrap.servers": bootstrap,
        "group.id": group,
        "client.id": name,
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
        "session.timeout.ms": SESSION_TIMEOUT_MS,
        "heartbeat.interval.ms": HEARTBEAT_INTERVAL_MS,
        "partition.assignment.strategy": "cooperative-sticky",
        "topic.metadata.refresh.interval.ms": 1000,
    })
    consumer.subscribe([topic], on_assign=on_assign, on_revoke=on_revoke, on_lost=on_revoke)
    while not stop.is_set():
        msgs = consumer.consume(num_messages=500, timeout=POLL_TIMEOUT_S)
        msgs = [m for m in msgs if m.error() is None]
        if not msgs:
            continue
        last: dict[int, int] = {}
        for m in msgs:
            last[m.partition()] = max(last.get(m.partition(), -1), m.offset())
        try:
            consumer.commit(offsets=[TopicPartition(topic, p, o + 1) for p, o in last.items()], asynchronous=False)
        except Exception as err:  # a commit refused by a rebalance: the records go to the next owner
            emit({"event": "commit_failed", "member": name, "error": str(err)})
            continue
        emit({"event": "consumed", "member": name,
              "records": [[m.partition(), m.offset(), m.value().decode()] for m in msgs]})
    consumer.close()


def run_kafka_python() -> None:
    from kafka import ConsumerRebalanceListener, KafkaConsumer, OffsetAndMetadata, TopicPartition
    from kafka.errors import CommitFailedError, KafkaError

    class Listener(ConsumerRebalanceListener):
        def on_partitions_revoked(self, revoked):
            assigned.difference_update(tp.partition for tp in revoked)
            report_assignment()

        def on_partitions_assigned(self, new):
            assigned.update(tp.partition for tp in new)
            report_assignment()

    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=group,
        client_id=name,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        session_timeout_ms=SESSION_TIMEOUT_MS,
        heartbeat_interval_ms=HEARTBEAT_INTERVAL_MS,
        metadata_max_age_ms=1000,
        partition_assignment_strategy=_kafka_python_roundrobin(),
    )
    consumer.subscribe([topic], listener=Listener())
    while not stop.is_set():
        batches = consumer.poll(timeout_ms=int(POLL_TIMEOUT_S * 1000), max_records=500)
        records = [r for rs in batches.values() for r in rs]
        if not records:
            continue
        last: dict[int, int] = {}
        for r in records:
            last[r.partition] = max(last.get(r.partition, -1), r.offset)
        try:
            consumer.commit({TopicPartition(topic, p): _offset_meta(OffsetAndMetadata, o + 1)
                             for p, o in last.items()})
        except (CommitFailedError, KafkaError) as err:
            emit({"event": "commit_failed", "member": name, "error": str(err)})
            continue
        emit({"event": "consumed", "member": name,
              "records": [[r.partition, r.offset, r.value.decode()] for r in records]})
    consumer.close()


def _kafka_python_roundrobin():
    from kafka.coordinator.assignors.roundrobin import RoundRobinPartitionAssignor
    return (RoundRobinPartitionAssignor,)


def _offset_meta(cls, offset: int):
    # kafka-python 2.1+ takes (offset, metadata, leader_epoch); older ones (offset, metadata).
    try:
        return cls(offset, "", -1)
    except TypeError:
        return cls(offset, "")


def run_aiokafka() -> None:
    from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
    from aiokafka.errors import CommitFailedError, KafkaError

    class Listener(ConsumerRebalanceListener):
        def on_partitions_revoked(self, revoked):
            assigned.difference_update(tp.partition for tp in revoked)
            report_assignment()

        def on_partitions_assigned(self, new):
            assigned.update(tp.partition for tp in new)
            report_assignment()

    async def main() -> None:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap,
            group_id=group,
            client_id=name,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            session_timeout_ms=SESSION_TIMEOUT_MS,
            heartbeat_interval_ms=HEARTBEAT_INTERVAL_MS,
            metadata_max_age_ms=1000,
        )
        await consumer.start()
        consumer.subscribe([topic], listener=Listener())
        try:
            while not stop.is_set():
                batches = await consumer.getmany(timeout_ms=int(POLL_TIMEOUT_S * 1000), max_records=500)
                records = [r for rs in batches.values() for r in rs]
                if not records:
                    continue
                last: dict[int, int] = {}
                for r in records:
                    last[r.partition] = max(last.get(r.partition, -1), r.offset)
                try:
                    await consumer.commit({TopicPartition(topic, p): o + 1 for p, o in last.items()})
                except (CommitFailedError, KafkaError) as err:
                    emit({"event": "commit_failed", "member": name, "error": str(err)})
                    continue
                emit({"event": "consumed", "member": name,
                      "records": [[r.partition, r.offset, r.value.decode()] for r in records]})
        finally:
            await consumer.stop()

    asyncio.run(main())


if __name__ == "__main__":
    threading.Thread(target=watch_stdin, daemon=True).start()
    {"confluent": run_confluent, "kafka-python": run_kafka_python, "aiokafka": run_aiokafka}[client]()
    emit({"event": "closed", "member": name})
