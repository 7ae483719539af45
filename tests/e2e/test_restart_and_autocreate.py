"""Topics survive restarts; auto-creation follows auto_create_topics / default_partitions.

- A graceful restart and a kill -9 restart both keep every topic, its partition count and its data.
- With auto-create on (the default) a Metadata request, or a client producing, creates an unknown topic with
  default_partitions partitions.
- With --auto-create-topics false (or PINLOG_AUTO_CREATE_TOPICS=false) Metadata and Produce for an unknown
  topic get UNKNOWN_TOPIC_OR_PARTITION (3) and nothing is created.
"""

from __future__ import annotations

import time

import pytest

import clients
import kafka_wire
from kafka_wire import NONE, UNKNOWN_TOPIC_OR_PARTITION

TOPICS = {"alpha": 3, "beta": 5, "gamma.with-dots_and_underscores": 1}


def produce_known(bootstrap: str, round_: int) -> dict[tuple[str, int], list[bytes]]:
    """Three acks=all batches per partition; returns the values per (topic, partition)."""
    written = {}
    with kafka_wire.WireClient(bootstrap) as c:
        for topic, n in TOPICS.items():
            for p in range(n):
                values = []
                for b in range(3):
                    batch_values = [f"{topic}/{p}/r{round_}/b{b}/{i}".encode() * (i + 1) for i in range(4)]
                    res = c.produce(topic, {p: kafka_wire.build_batch([(b"k", v) for v in batch_values])}, acks=-1)
                    assert res[p][0] == NONE, f"produce {topic}/{p} -> error {res[p][0]}"
                    values += batch_values
                written[(topic, p)] = values
    return written


def assert_contents(bootstrap: str, expected: dict[tuple[str, int], list[bytes]]) -> None:
    with kafka_wire.WireClient(bootstrap) as c:
        md = c.metadata(None)
    for topic, n in TOPICS.items():
        assert topic in md["topics"], f"topic {topic} missing from Metadata after restart: {sorted(md['topics'])}"
        assert len(md["topics"][topic]["partitions"]) == n, f"{topic}: partition count changed"
        kafka_wire.wait_for_topic(bootstrap, topic, n)
    for (topic, p), values in expected.items():
        got = kafka_wire.read_partition(bootstrap, topic, p)
        assert [r.value for r in got] == values, f"{topic}/{p}: data differs after restart"
        assert [r.offset for r in got] == list(range(len(values)))


@pytest.mark.parametrize("how", ["graceful", "kill9"])
def test_restart_keeps_topics_partitions_and_data(pinlog, how):
    for topic, n in TOPICS.items():
        kafka_wire.create_topic(pinlog.bootstrap, topic, n)
    expected = produce_known(pinlog.bootstrap, 0)
    pinlog.restart(graceful=(how == "graceful"))
    assert_contents(pinlog.bootstrap, expected)
    # Writes continue at the right offsets after the restart, and survive a second one.
    more = produce_known(pinlog.bootstrap, 1)
    for key in expected:
        expected[key] = expected[key] + more[key]
    pinlog.restart(graceful=(how == "graceful"))
    assert_contents(pinlog.bootstrap, expected)


def test_create_existing_topic_is_refused_and_changes_nothing(pinlog):
    kafka_wire.create_topic(pinlog.bootstrap, "alpha", 3)
    with pinlog.wire() as c:
        res = c.create_topics([("alpha", 7)])
    assert res["alpha"][0] == kafka_wire.TOPIC_ALREADY_EXISTS, f"re-create alpha -> {res['alpha']}"
    pinlog.restart()
    kafka_wire.wait_for_topic(pinlog.bootstrap, "alpha", 3)


def metadata_until_created(bootstrap: str, topic: str, timeout: float = 20.0) -> dict:
    """Kafka answers the first auto-creating Metadata with LEADER_NOT_AVAILABLE; ask until the topic is ready."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        with kafka_wire.WireClient(bootstrap) as c:
            t = c.metadata([topic], allow_auto_create=True)["topics"].get(topic)
        last = t
        if t and t["error_code"] == NONE and t["partitions"] and all(
            p["error_code"] == NONE and p["leader"] >= 0 for p in t["partitions"]
        ):
            return t
        assert t is None or t["error_code"] in (NONE, kafka_wire.LEADER_NOT_AVAILABLE), f"Metadata answered {t}"
        time.sleep(0.1)
    raise AssertionError(f"{topic} was not auto-created within {timeout} s: {last}")


def test_autocreate_on_metadata_uses_default_partitions(pinlog_factory):
    node = pinlog_factory(default_partitions=3)
    t = metadata_until_created(node.bootstrap, "auto-meta")
    assert len(t["partitions"]) == 3
    # Without the auto-create flag the topic is now simply there; it survives a restart.
    node.restart()
    kafka_wire.wait_for_topic(node.bootstrap, "auto-meta", 3)


def test_autocreate_on_client_produce(pinlog_factory):
    node = pinlog_factory(default_partitions=4)
    delivered = []
    errors = []

    def on_delivery(err, msg):
        (errors if err else delivered).append(err or (msg.partition(), msg.offset(), msg.value()))

    producer = clients.confluent_producer(node.bootstrap, **{"message.timeout.ms": 20000})
    clients.produce_all(producer, "auto-produce", [(None, f"v{i}".encode()) for i in range(100)], on_delivery,
                        deadline_s=30)
    assert not errors, f"delivery errors: {errors[:3]}"
    kafka_wire.wait_for_topic(node.bootstrap, "auto-produce", 4)
    got = {}
    for p in range(4):
        for r in kafka_wire.read_partition(node.bootstrap, "auto-produce", p):
            got[(p, r.offset)] = r.value
    assert got == {(p, o): v for p, o, v in delivered}


def check_unknown_topic_refused(bootstrap: str) -> None:
    with kafka_wire.WireClient(bootstrap) as c:
        for _ in range(2):  # a second ask must not find a topic created by the first
            t = c.metadata(["no-such-topic"], allow_auto_create=True)["topics"].get("no-such-topic")
            assert t is not None, "Metadata left the unknown topic out of its answer"
            assert t["error_code"] == UNKNOWN_TOPIC_OR_PARTITION, f"Metadata for an unknown topic -> {t}"
        res = c.produce("no-such-topic", {0: kafka_wire.build_batch([(None, b"x")])}, acks=-1)
        assert res[0][0] == UNKNOWN_TOPIC_OR_PARTITION, f"Produce to an unknown topic -> {res}"
        res = c.produce("no-such-topic", {0: kafka_wire.build_batch([(None, b"x")])}, acks=1)
        assert res[0][0] == UNKNOWN_TOPIC_OR_PARTITION, f"Produce acks=1 to an unknown topic -> {res}"
        listing = c.metadata(None)["topics"]
        assert "no-such-topic" not in listing, f"the unknown topic was created: {listing}"


def test_autocreate_disabled_by_flag(pinlog_factory):
    node = pinlog_factory(auto_create_topics=False)
    check_unknown_topic_refused(node.bootstrap)


def test_autocreate_disabled_by_env(pinlog_factory):
    node = pinlog_factory(env={"PINLOG_AUTO_CREATE_TOPICS": "false"})
    check_unknown_topic_refused(node.bootstrap)
