"""Cluster and topic description through real admin clients: DescribeCluster (confluent-kafka, kafka-python),
DescribeTopicPartitions with a partition limit that forces its cursor (raw wire client: no Python client speaks
API 75 yet), describe_topics, and DescribeLogDirs partition sizes after producing (kafka-python).
"""

from __future__ import annotations

from confluent_kafka import TopicCollection
from confluent_kafka.admin import AdminClient
from kafka.admin import KafkaAdminClient

import kafka_wire
from kafka_wire import NONE, UNKNOWN_TOPIC_OR_PARTITION

TIMEOUT_S = 30


def test_describe_cluster_from_both_admin_clients(pinlog):
    with pinlog.wire() as c:
        cluster_id = c.metadata([])["cluster_id"]
    confluent = AdminClient({"bootstrap.servers": pinlog.bootstrap})
    described = confluent.describe_cluster(request_timeout=TIMEOUT_S).result(timeout=TIMEOUT_S)
    assert described.cluster_id == cluster_id
    assert [(n.id, n.host, n.port) for n in described.nodes] == [(0, "127.0.0.1", pinlog.port)]
    assert described.controller.id == 0

    admin = KafkaAdminClient(bootstrap_servers=pinlog.bootstrap, request_timeout_ms=TIMEOUT_S * 1000)
    try:
        info = admin.describe_cluster()
        assert info["cluster_id"] == cluster_id
        assert info["controller_id"] == 0
        assert [(b["broker_id"], b["port"]) for b in info["brokers"]] == [(0, pinlog.port)]
    finally:
        admin.close()


def test_describe_topic_partitions_pages_with_its_cursor(pinlog):
    kafka_wire.create_topic(pinlog.bootstrap, "pages-a", 3)
    kafka_wire.create_topic(pinlog.bootstrap, "pages-b", 2)
    seen = []
    cursor = None
    with pinlog.wire() as c:
        for _ in range(10):
            answer = c.describe_topic_partitions(["pages-b", "pages-a", "pages-missing"], 2, cursor)
            for t in answer["topics"]:
                expected = UNKNOWN_TOPIC_OR_PARTITION if t["name"] == "pages-missing" else NONE
                assert t["error_code"] == expected, t
                seen.extend(f"{t['name']}/{p}" for p in t["partitions"])
            cursor = answer["next_cursor"]
            if cursor is None:
                break
        else:
            raise AssertionError("DescribeTopicPartitions never stopped paging")
    assert seen == ["pages-a/0", "pages-a/1", "pages-a/2", "pages-b/0", "pages-b/1"]

    confluent = AdminClient({"bootstrap.servers": pinlog.bootstrap})
    futures = confluent.describe_topics(TopicCollection(["pages-a"]), request_timeout=TIMEOUT_S)
    description = futures["pages-a"].result(timeout=TIMEOUT_S)
    assert [p.id for p in description.partitions] == [0, 1, 2]
    assert all(p.leader.id == 0 and [r.id for r in p.replicas] == [0] for p in description.partitions)


def test_describe_log_dirs_reports_partition_sizes(pinlog):
    kafka_wire.create_topic(pinlog.bootstrap, "sized", 2)
    payload = b"v" * 1000
    with pinlog.wire() as c:
        codes = c.produce("sized", {0: kafka_wire.build_batch([(None, payload)] * 50)}, acks=-1)
        assert codes[0][0] == NONE
    admin = KafkaAdminClient(bootstrap_servers=pinlog.bootstrap, request_timeout_ms=TIMEOUT_S * 1000)
    try:
        response = admin.describe_log_dirs()
    finally:
        admin.close()
    assert [b["broker"] for b in response] == [0]
    sizes = {}
    log_dirs = []
    for result in response[0]["log_dirs"]:
        assert result["error_code"] == NONE
        assert 0 <= result["usable_bytes"] <= result["total_bytes"]
        log_dirs.append(result["log_dir"])
        for topic in result["topics"]:
            for p in topic["partitions"]:
                sizes[(topic["name"], p["partition_index"])] = p["partition_size"]
    assert log_dirs == [str(pinlog.data_dir)]
    assert 50 * 1000 <= sizes[("sized", 0)] < 60 * 1000, sizes
    assert sizes[("sized", 1)] == 0
