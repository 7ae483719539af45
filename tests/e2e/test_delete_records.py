"""DeleteRecords from confluent-kafka's AdminClient moves the log start: ListOffsets earliest returns it, a fetch
below it gets OFFSET_OUT_OF_RANGE, records above it stay readable, and the new start survives a restart."""

from __future__ import annotations

from confluent_kafka import TopicPartition
from confluent_kafka.admin import AdminClient

import kafka_wire

OFFSET_OUT_OF_RANGE = 1
EARLIEST = -2


def test_delete_records_moves_the_log_start(pinlog):
    topic = "trim"
    kafka_wire.create_topic(pinlog.bootstrap, topic, 1)
    with pinlog.wire() as c:
        for i in range(10):
            batch = kafka_wire.build_batch([(None, f"r{i * 10 + j}".encode()) for j in range(10)])
            assert c.produce(topic, {0: batch})[0][0] == kafka_wire.NONE
    admin = AdminClient({"bootstrap.servers": pinlog.bootstrap})
    futures = admin.delete_records([TopicPartition(topic, 0, 35)], request_timeout=30)
    result = futures[TopicPartition(topic, 0, 35)].result(timeout=30)
    # Whole batches stay readable: the start is the requested offset, inside the batch at 30.
    assert result.low_watermark == 35, result

    def check() -> None:
        with pinlog.wire() as c:
            assert c.list_offsets(topic, [0], EARLIEST)[0] == (kafka_wire.NONE, 35)
            below = c.fetch(topic, {0: (10, 1 << 20)})["partitions"][0]
            assert below["error_code"] == OFFSET_OUT_OF_RANGE, below
            assert below["log_start_offset"] == 35
        records = kafka_wire.read_partition(pinlog.bootstrap, topic, 0, start=35)
        assert [r.value for r in records] == [f"r{i}".encode() for i in range(35, 100)]

    check()
    pinlog.restart()
    check()
