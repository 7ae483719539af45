"""The two admin clients users run, end to end: kafka-python's KafkaAdminClient creates, describes, alters (the
non-incremental AlterConfigs), grows and deletes topics and lists, describes, resets, deletes offsets of
(OffsetDelete) and deletes groups;
confluent-kafka's AdminClient resets a group's offsets and a new consumer of that group resumes there. What they
set survives a restart. (confluent's incremental alters and partition growth: test_admin_alter.py.)
"""

from __future__ import annotations

import time

from confluent_kafka import Consumer, TopicPartition as ConfluentTopicPartition
from confluent_kafka.admin import AdminClient
from confluent_kafka import ConsumerGroupTopicPartitions
from kafka import KafkaConsumer, TopicPartition
from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient, NewPartitions, NewTopic
from kafka.structs import OffsetAndMetadata

import kafka_wire
from kafka_wire import NONE

TIMEOUT_S = 30
GROUP_FLAGS = dict(group_initial_rebalance_delay_ms=200, group_min_session_timeout_ms=1000)


def kafka_python_admin(node) -> KafkaAdminClient:
    return KafkaAdminClient(bootstrap_servers=node.bootstrap, request_timeout_ms=TIMEOUT_S * 1000)


def produce_values(node, topic: str, partition: int, count: int) -> None:
    with node.wire() as c:
        batch = kafka_wire.build_batch([(None, f"v{i}".encode()) for i in range(count)])
        assert c.produce(topic, {partition: batch}, acks=-1)[partition][0] == NONE


def test_kafka_python_admin_manages_topics_and_groups_across_a_restart(pinlog_factory):
    node = pinlog_factory(**GROUP_FLAGS)
    admin = kafka_python_admin(node)
    try:
        created = admin.create_topics([NewTopic("kp-topic", 2, 1, topic_configs={"retention.ms": "1000000"})])
        assert [t["error_code"] for t in created["topics"]] == [NONE]
        kafka_wire.wait_for_topic(node.bootstrap, "kp-topic", 2)
        assert "kp-topic" in admin.list_topics()
        [described] = admin.describe_topics(["kp-topic"])
        assert [p["leader_id"] for p in described["partitions"]] == [0, 0]

        # AlterConfigs replaces the whole set: retention.ms is overwritten, segment.ms is new.
        resource = ConfigResource(ConfigResourceType.TOPIC, "kp-topic",
                                  configs={"retention.ms": "2000000", "segment.ms": "3600000"})
        assert admin.alter_configs([resource]) == {"topic": {"kp-topic": "OK"}}
        shown = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, "kp-topic")])
        topic_configs = shown["topic"]["kp-topic"]
        assert topic_configs["retention.ms"]["value"] == "2000000"
        assert topic_configs["segment.ms"]["value"] == "3600000"
        assert topic_configs["retention.ms"]["config_source"] == "DYNAMIC_TOPIC_CONFIG"

        grown = admin.create_partitions({"kp-topic": NewPartitions(3)})
        assert [r.error_code for r in grown.results] == [NONE]
        kafka_wire.wait_for_topic(node.bootstrap, "kp-topic", 3)

        produce_values(node, "kp-topic", 0, 10)
        consumer = KafkaConsumer(bootstrap_servers=node.bootstrap, group_id="kp-group", enable_auto_commit=False)
        consumer.commit({TopicPartition("kp-topic", 0): OffsetAndMetadata(8, None, -1)})
        consumer.close()
        assert "kp-group" in {g["group_id"] for g in admin.list_groups()}
        assert admin.describe_groups(["kp-group"])["kp-group"]["group_state"] == "Empty"
        admin.alter_group_offsets("kp-group", {TopicPartition("kp-topic", 0): OffsetAndMetadata(3, None, -1)})
        offsets = admin.list_group_offsets({"kp-group": None})["kp-group"]
        assert offsets[TopicPartition("kp-topic", 0)].offset == 3
    finally:
        admin.close()

    node.restart()
    admin = kafka_python_admin(node)
    try:
        shown = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, "kp-topic")])
        assert shown["topic"]["kp-topic"]["retention.ms"]["value"] == "2000000"
        assert len(admin.describe_topics(["kp-topic"])[0]["partitions"]) == 3
        offsets = admin.list_group_offsets({"kp-group": None})["kp-group"]
        assert offsets[TopicPartition("kp-topic", 0)].offset == 3

        # OffsetDelete: one partition's committed offset goes, the other stays.
        consumer = KafkaConsumer(bootstrap_servers=node.bootstrap, group_id="kp-group", enable_auto_commit=False)
        consumer.commit({TopicPartition("kp-topic", 1): OffsetAndMetadata(0, None, -1)})
        consumer.close()
        admin.delete_group_offsets("kp-group", [TopicPartition("kp-topic", 1)])
        offsets = admin.list_group_offsets({"kp-group": None})["kp-group"]
        assert set(offsets) == {TopicPartition("kp-topic", 0)}

        assert admin.delete_groups(["kp-group"]) == {"kp-group": "OK"}
        assert "kp-group" not in {g["group_id"] for g in admin.list_groups()}
        deleted = admin.delete_topics(["kp-topic"])
        assert [t["error_code"] for t in deleted["topics"]] == [NONE]
    finally:
        admin.close()


def test_confluent_admin_resets_group_offsets_and_the_group_resumes_there(pinlog_factory):
    node = pinlog_factory(**GROUP_FLAGS)
    kafka_wire.create_topic(node.bootstrap, "reset-topic", 1)
    produce_values(node, "reset-topic", 0, 20)
    consumer = Consumer({"bootstrap.servers": node.bootstrap, "group.id": "reset-group",
                         "enable.auto.commit": False})
    consumer.commit(offsets=[ConfluentTopicPartition("reset-topic", 0, 15)], asynchronous=False)
    consumer.close()

    admin = AdminClient({"bootstrap.servers": node.bootstrap})
    request = ConsumerGroupTopicPartitions("reset-group", [ConfluentTopicPartition("reset-topic", 0, 4)])
    altered = admin.alter_consumer_group_offsets([request], request_timeout=TIMEOUT_S)["reset-group"]
    assert [tp.offset for tp in altered.result(timeout=TIMEOUT_S).topic_partitions] == [4]
    listed = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions("reset-group")],
                                               request_timeout=TIMEOUT_S)["reset-group"].result(timeout=TIMEOUT_S)
    assert [(tp.partition, tp.offset) for tp in listed.topic_partitions] == [(0, 4)]

    node.restart()
    consumer = Consumer({"bootstrap.servers": node.bootstrap, "group.id": "reset-group",
                         "enable.auto.commit": False, "auto.offset.reset": "error"})
    consumer.subscribe(["reset-topic"])
    values = []
    deadline = time.monotonic() + 60
    try:
        while len(values) < 16:
            assert time.monotonic() < deadline, f"the group resumed with only {values}"
            msg = consumer.poll(0.5)
            if msg is not None:
                assert msg.error() is None, msg.error()
                values.append(msg.value().decode())
    finally:
        consumer.close()
    assert values == [f"v{i}" for i in range(4, 20)], "the group resumes at the reset offset after a restart"
