"""Topic administration through a real admin client: DescribeConfigs reports a topic's configs (including one set
at creation), DeleteTopics removes a topic and its data, and a topic created again under the same name starts
empty. Also over a restart: a deleted topic stays deleted.
"""

from __future__ import annotations

import time

from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic

import kafka_wire
from kafka_wire import NONE, UNKNOWN_TOPIC_OR_PARTITION


def test_describe_configs_reports_creation_configs(pinlog):
    admin = AdminClient({"bootstrap.servers": pinlog.bootstrap})
    futures = admin.create_topics([NewTopic("described", 2, 1, config={"retention.ms": "12345678"})],
                                  request_timeout=30)
    futures["described"].result(timeout=30)
    kafka_wire.wait_for_topic(pinlog.bootstrap, "described", 2)
    resource = ConfigResource(ConfigResource.Type.TOPIC, "described")
    configs = admin.describe_configs([resource], request_timeout=30)[resource].result(timeout=30)
    assert configs, "DescribeConfigs returned no config for the topic"
    assert "retention.ms" in configs, f"retention.ms missing from {sorted(configs)}"
    assert configs["retention.ms"].value == "12345678", f"retention.ms = {configs['retention.ms'].value}"


def test_delete_topic_removes_it_and_its_data(pinlog):
    kafka_wire.create_topic(pinlog.bootstrap, "doomed", 2)
    kafka_wire.create_topic(pinlog.bootstrap, "kept", 1)
    with pinlog.wire() as c:
        for p in range(2):
            assert c.produce("doomed", {p: kafka_wire.build_batch([(None, b"x" * 100)] * 10)}, acks=-1)[p] == (NONE, 0)
        assert c.produce("kept", {0: kafka_wire.build_batch([(None, b"keep me")])}, acks=-1)[0] == (NONE, 0)
        assert c.delete_topics(["doomed"]) == {"doomed": NONE}
        assert c.delete_topics(["never-existed"]) == {"never-existed": UNKNOWN_TOPIC_OR_PARTITION}

    def gone() -> bool:
        with pinlog.wire() as c:
            t = c.metadata(["doomed"])["topics"].get("doomed")
        return t is not None and t["error_code"] == UNKNOWN_TOPIC_OR_PARTITION

    deadline = time.monotonic() + 20
    while not gone():
        assert time.monotonic() < deadline, "deleted topic still in Metadata after 20 s"
        time.sleep(0.1)
    deadline = time.monotonic() + 20
    while any(pinlog.partition_dir("doomed", p).exists() for p in range(2)):
        assert time.monotonic() < deadline, "deleted topic's partition directories still on disk after 20 s"
        time.sleep(0.1)

    pinlog.restart()
    assert gone(), "deleted topic came back after a restart"
    assert [r.value for r in kafka_wire.read_partition(pinlog.bootstrap, "kept", 0)] == [b"keep me"]

    # Same name again: a new, empty topic.
    kafka_wire.create_topic(pinlog.bootstrap, "doomed", 3)
    assert kafka_wire.high_watermarks(pinlog.bootstrap, "doomed", 3) == {0: 0, 1: 0, 2: 0}
