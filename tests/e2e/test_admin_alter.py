"""Altering topics and the broker through confluent-kafka's AdminClient: CreatePartitions, IncrementalAlterConfigs
(topic and dynamic broker keys) and DescribeConfigs sources. Each change takes effect at once (a lowered
max.message.bytes refuses the next big batch; new partitions take records) and survives a restart.
"""

from __future__ import annotations

import time

import pytest
from confluent_kafka import KafkaException
from confluent_kafka.admin import (AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource, ConfigSource,
                                   NewPartitions, NewTopic)

import kafka_wire
from kafka_wire import MESSAGE_TOO_LARGE, NONE

TIMEOUT_S = 30


def admin_for(pinlog) -> AdminClient:
    return AdminClient({"bootstrap.servers": pinlog.bootstrap})


def topic_configs(admin: AdminClient, topic: str) -> dict:
    resource = ConfigResource(ConfigResource.Type.TOPIC, topic)
    return admin.describe_configs([resource], request_timeout=TIMEOUT_S)[resource].result(timeout=TIMEOUT_S)


def broker_configs(admin: AdminClient) -> dict:
    resource = ConfigResource(ConfigResource.Type.BROKER, "0")
    return admin.describe_configs([resource], request_timeout=TIMEOUT_S)[resource].result(timeout=TIMEOUT_S)


def incremental(admin: AdminClient, resource_type, name: str, entries: list[ConfigEntry]) -> None:
    resource = ConfigResource(resource_type, name, incremental_configs=entries)
    admin.incremental_alter_configs([resource], request_timeout=TIMEOUT_S)[resource].result(timeout=TIMEOUT_S)


def wait_until(predicate, what: str, deadline_s: float = 20.0) -> None:
    deadline = time.monotonic() + deadline_s
    while not predicate():
        assert time.monotonic() < deadline, f"{what} not seen after {deadline_s} s"
        time.sleep(0.1)


def produce_one(pinlog, topic: str, partition: int, value: bytes) -> int:
    with pinlog.wire() as c:
        return c.produce(topic, {partition: kafka_wire.build_batch([(None, value)])}, acks=-1)[partition][0]


def test_create_partitions_takes_records_and_survives_restart(pinlog):
    admin = admin_for(pinlog)
    admin.create_topics([NewTopic("grown", 2, 1)], request_timeout=TIMEOUT_S)["grown"].result(timeout=TIMEOUT_S)
    kafka_wire.wait_for_topic(pinlog.bootstrap, "grown", 2)

    admin.create_partitions([NewPartitions("grown", 5)], request_timeout=TIMEOUT_S)["grown"].result(timeout=TIMEOUT_S)
    kafka_wire.wait_for_topic(pinlog.bootstrap, "grown", 5)
    for p in range(5):
        assert produce_one(pinlog, "grown", p, f"p{p}".encode()) == NONE

    # Shrinking, or not growing, is INVALID_PARTITIONS; validate_only changes nothing.
    with pytest.raises(KafkaException) as refused:
        admin.create_partitions([NewPartitions("grown", 3)], request_timeout=TIMEOUT_S)["grown"].result(
            timeout=TIMEOUT_S)
    assert refused.value.args[0].name() == "INVALID_PARTITIONS"
    admin.create_partitions([NewPartitions("grown", 9)], validate_only=True,
                            request_timeout=TIMEOUT_S)["grown"].result(timeout=TIMEOUT_S)
    with pytest.raises(KafkaException) as missing:
        admin.create_partitions([NewPartitions("no-such-topic", 3)], request_timeout=TIMEOUT_S)[
            "no-such-topic"].result(timeout=TIMEOUT_S)
    assert missing.value.args[0].name() == "UNKNOWN_TOPIC_OR_PART"

    pinlog.restart()
    assert kafka_wire.high_watermarks(pinlog.bootstrap, "grown", 5) == {p: 1 for p in range(5)}


def test_incremental_alter_topic_configs_apply_at_once_and_survive_restart(pinlog):
    admin = admin_for(pinlog)
    admin.create_topics([NewTopic("altered", 1, 1, config={"retention.ms": "86400000"})],
                        request_timeout=TIMEOUT_S)["altered"].result(timeout=TIMEOUT_S)
    kafka_wire.wait_for_topic(pinlog.bootstrap, "altered", 1)
    assert produce_one(pinlog, "altered", 0, b"x" * 2000) == NONE

    incremental(admin, ConfigResource.Type.TOPIC, "altered", [
        ConfigEntry("max.message.bytes", "1000", incremental_operation=AlterConfigOpType.SET),
        ConfigEntry("retention.ms", None, incremental_operation=AlterConfigOpType.DELETE),
        ConfigEntry("cleanup.policy", "compact", incremental_operation=AlterConfigOpType.APPEND),
        ConfigEntry("segment.bytes", "1048576", incremental_operation=AlterConfigOpType.SET),
    ])
    configs = topic_configs(admin, "altered")
    assert configs["max.message.bytes"].value == "1000"
    assert configs["max.message.bytes"].source == ConfigSource.DYNAMIC_TOPIC_CONFIG.value
    assert configs["cleanup.policy"].value == "delete,compact"
    assert configs["retention.ms"].source != ConfigSource.DYNAMIC_TOPIC_CONFIG.value, "DELETE reverts to default"
    # The lowered limit holds for the next batch; every shard applies it from the metadata change.
    wait_until(lambda: produce_one(pinlog, "altered", 0, b"y" * 2000) == MESSAGE_TOO_LARGE,
               "MESSAGE_TOO_LARGE after lowering max.message.bytes")

    # Bad values and unknown keys are INVALID_CONFIG, and change nothing.
    for entry in (ConfigEntry("retention.ms", "soon", incremental_operation=AlterConfigOpType.SET),
                  ConfigEntry("no.such.config", "1", incremental_operation=AlterConfigOpType.SET),
                  ConfigEntry("retention.ms", "5", incremental_operation=AlterConfigOpType.APPEND)):
        with pytest.raises(KafkaException) as refused:
            incremental(admin, ConfigResource.Type.TOPIC, "altered", [entry])
        assert refused.value.args[0].name() == "INVALID_CONFIG", entry

    pinlog.restart()
    admin = admin_for(pinlog)
    configs = topic_configs(admin, "altered")
    assert configs["max.message.bytes"].value == "1000"
    assert configs["cleanup.policy"].value == "delete,compact"
    assert configs["segment.bytes"].value == "1048576"
    assert produce_one(pinlog, "altered", 0, b"z" * 2000) == MESSAGE_TOO_LARGE


def test_dynamic_broker_config_sets_the_default_for_topics(pinlog):
    admin = admin_for(pinlog)
    kafka_wire.create_topic(pinlog.bootstrap, "inherits", 1)
    before = broker_configs(admin)
    for key in ("default.replication.factor", "num.partitions", "min.insync.replicas", "log.retention.ms",
                "message.max.bytes", "log.segment.bytes", "auto.create.topics.enable", "broker.id"):
        assert key in before, f"broker config {key} missing"
    assert before["broker.id"].is_read_only
    assert not before["log.retention.ms"].is_read_only

    incremental(admin, ConfigResource.Type.BROKER, "0", [
        ConfigEntry("message.max.bytes", "1500", incremental_operation=AlterConfigOpType.SET),
    ])
    after = broker_configs(admin)
    assert after["message.max.bytes"].value == "1500"
    assert after["message.max.bytes"].source == ConfigSource.DYNAMIC_BROKER_CONFIG.value
    topic = topic_configs(admin, "inherits")
    assert topic["max.message.bytes"].value == "1500"
    assert topic["max.message.bytes"].source == ConfigSource.DYNAMIC_BROKER_CONFIG.value
    wait_until(lambda: produce_one(pinlog, "inherits", 0, b"y" * 3000) == MESSAGE_TOO_LARGE,
               "the dynamic broker message.max.bytes applied to an existing topic")

    # Read-only broker keys are refused.
    with pytest.raises(KafkaException) as refused:
        incremental(admin, ConfigResource.Type.BROKER, "0", [
            ConfigEntry("num.partitions", "3", incremental_operation=AlterConfigOpType.SET)])
    assert refused.value.args[0].name() == "INVALID_CONFIG"

    pinlog.restart()
    assert broker_configs(admin_for(pinlog))["message.max.bytes"].value == "1500"
    assert produce_one(pinlog, "inherits", 0, b"y" * 3000) == MESSAGE_TOO_LARGE
    assert produce_one(pinlog, "inherits", 0, b"y" * 1000) == NONE
