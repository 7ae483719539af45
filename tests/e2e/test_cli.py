"""The `pinlog topic|group|cluster` command line against a real node: aligned tables, `--format json`, and a
non-zero exit with the Kafka error name when the broker refuses. The group commands act on a group made by a real
consumer (confluent-kafka), and a reset is what the group resumes from. `pinlog tune` reports the host.
"""

from __future__ import annotations

import json
import subprocess
import time

from confluent_kafka import Consumer, TopicPartition

import kafka_wire
from conftest import BINARY, E2E_ROOT
from kafka_wire import NONE

GROUP_FLAGS = dict(group_initial_rebalance_delay_ms=200, group_min_session_timeout_ms=1000)


def cli(node, *args: str, expect: int = 0) -> subprocess.CompletedProcess:
    done = subprocess.run([str(BINARY), *args, "--brokers", node.bootstrap, "--timeout-ms", "10000"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == expect, f"pinlog {' '.join(args)} exited {done.returncode}:\n{done.stdout}{done.stderr}"
    return done


def cli_json(node, *args: str):
    return json.loads(cli(node, *args, "--format", "json").stdout)


def test_topic_commands(pinlog):
    created = cli(pinlog, "topic", "create", "cli-orders", "-p", "3", "-c", "retention.ms=123456")
    assert created.stdout.splitlines()[0].split() == ["TOPIC", "PARTITIONS", "ERROR"]
    assert created.stdout.splitlines()[1].split() == ["cli-orders", "3", "-"]
    kafka_wire.wait_for_topic(pinlog.bootstrap, "cli-orders", 3)

    again = cli(pinlog, "topic", "create", "cli-orders", expect=1)
    assert "error: TOPIC_ALREADY_EXISTS" in again.stderr

    assert {"name": "cli-orders", "partitions": 3, "replicas": 1, "internal": False} in \
        cli_json(pinlog, "topic", "list")

    with pinlog.wire() as c:
        assert c.produce("cli-orders", {1: kafka_wire.build_batch([(None, b"x")] * 5)}, acks=-1)[1][0] == NONE
    described = cli_json(pinlog, "topic", "describe", "cli-orders")
    assert [(p["partition"], p["high_watermark"]) for p in described["partitions"]] == [(0, 0), (1, 5), (2, 0)]
    configs = {c["key"]: c for c in described["configs"]}
    assert configs["retention.ms"]["value"] == "123456"
    assert configs["retention.ms"]["source"] == "DYNAMIC_TOPIC_CONFIG"

    cli(pinlog, "topic", "alter-config", "cli-orders", "--set", "max.message.bytes=5000", "--delete", "retention.ms")
    configs = {c["key"]: c for c in cli_json(pinlog, "topic", "describe", "cli-orders")["configs"]}
    assert configs["max.message.bytes"]["value"] == "5000"
    assert configs["retention.ms"]["source"] != "DYNAMIC_TOPIC_CONFIG"
    bad = cli(pinlog, "topic", "alter-config", "cli-orders", "--set", "no.such.key=1", expect=1)
    assert "error: INVALID_CONFIG" in bad.stderr

    cli(pinlog, "topic", "add-partitions", "cli-orders", "--num", "5")
    kafka_wire.wait_for_topic(pinlog.bootstrap, "cli-orders", 5)
    fewer = cli(pinlog, "topic", "add-partitions", "cli-orders", "--num", "2", expect=1)
    assert "error: INVALID_PARTITIONS" in fewer.stderr

    deleted = cli(pinlog, "topic", "delete", "cli-orders", "cli-missing", expect=1)
    assert "error: UNKNOWN_TOPIC_OR_PARTITION" in deleted.stderr
    rows = {r["topic"]: r["error"] for r in json.loads(
        cli(pinlog, "topic", "delete", "cli-missing", "--format", "json", expect=1).stdout)}
    assert rows == {"cli-missing": "UNKNOWN_TOPIC_OR_PARTITION"}


def test_cluster_info_and_unreachable_broker(pinlog):
    info = cli_json(pinlog, "cluster", "info")
    assert info["brokers"] == [{"node_id": 0, "host": "127.0.0.1", "port": pinlog.port, "controller": True}]
    with pinlog.wire() as c:
        assert info["cluster"][0]["cluster_id"] == c.metadata([])["cluster_id"]
    done = subprocess.run([str(BINARY), "cluster", "info", "--brokers", "127.0.0.1:1", "--timeout-ms", "2000"],
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 2 and "error: connecting to 127.0.0.1:1" in done.stderr


def test_group_commands_on_a_real_consumer_group(pinlog_factory):
    node = pinlog_factory(**GROUP_FLAGS)
    kafka_wire.create_topic(node.bootstrap, "cli-events", 2)
    with node.wire() as c:
        for p in range(2):
            batch = kafka_wire.build_batch([(None, f"p{p}-{i}".encode()) for i in range(10)])
            assert c.produce("cli-events", {p: batch}, acks=-1)[p][0] == NONE
    consumer = Consumer({"bootstrap.servers": node.bootstrap, "group.id": "cli-group", "enable.auto.commit": False})
    consumer.commit(offsets=[TopicPartition("cli-events", 0, 7), TopicPartition("cli-events", 1, 10)],
                    asynchronous=False)
    consumer.close()

    assert {"group": "cli-group", "state": "Empty", "protocol_type": ""} in cli_json(node, "group", "list")
    described = cli_json(node, "group", "describe", "cli-group")
    assert described["group"][0]["state"] == "Empty"
    assert [(o["partition"], o["committed"], o["lag"]) for o in described["offsets"]] == [(0, 7, 3), (1, 10, 0)]

    plan = cli_json(node, "group", "reset-offsets", "cli-group", "--topic", "cli-events", "--to-offset", "2")
    assert [(r["partition"], r["current"], r["new"]) for r in plan] == [(0, 7, 2), (1, 10, 2)]
    still = cli_json(node, "group", "describe", "cli-group")["offsets"]
    assert [o["committed"] for o in still] == [7, 10], "a dry run commits nothing"
    cli(node, "group", "reset-offsets", "cli-group", "--topic", "cli-events", "--to-earliest", "--execute")
    assert [o["committed"] for o in cli_json(node, "group", "describe", "cli-group")["offsets"]] == [0, 0]

    # The group resumes from the reset offsets; while it has a member, a reset is refused.
    consumer = Consumer({"bootstrap.servers": node.bootstrap, "group.id": "cli-group", "enable.auto.commit": False,
                         "auto.offset.reset": "error", "session.timeout.ms": 6000})
    consumer.subscribe(["cli-events"])
    got = []
    deadline = time.monotonic() + 60
    try:
        while len(got) < 20:
            assert time.monotonic() < deadline, f"the group resumed with only {len(got)} records"
            msg = consumer.poll(0.5)
            if msg is not None and msg.error() is None:
                got.append(msg.value())
        busy = cli(node, "group", "reset-offsets", "cli-group", "--topic", "cli-events", "--to-latest",
                   "--execute", expect=1)
        assert "error: NON_EMPTY_GROUP" in busy.stderr
    finally:
        consumer.close()
    assert sorted(got) == sorted(f"p{p}-{i}".encode() for p in range(2) for i in range(10))

    cli(node, "group", "delete", "cli-group")
    assert "cli-group" not in {g["group"] for g in cli_json(node, "group", "list")}
    missing = cli(node, "group", "delete", "cli-group", expect=1)
    assert "error: GROUP_ID_NOT_FOUND" in missing.stderr


def test_tune_reports_what_the_shards_may_hold_against_the_hosts_memory():
    """`pinlog tune` is what an operator runs before a first start: beside the cores and the data dir, it says how
    much memory the default config's bounds let the shards hold, against the host's MemTotal."""
    data_dir = E2E_ROOT / "tune-report"
    data_dir.mkdir(parents=True, exist_ok=True)
    done = subprocess.run([str(BINARY), "tune", "--data-dir", str(data_dir)], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    memory = done.stdout.split("[memory]\n", 1)[1].split("\n\n", 1)[0].splitlines()
    assert memory[0].startswith("MemTotal = ") and memory[0].endswith(" MiB"), memory
    total_mib = int(memory[0].split()[2])
    with open("/proc/meminfo") as meminfo:
        kib = int(next(line for line in meminfo if line.startswith("MemTotal:")).split()[1])
    assert total_mib == kib // 1024
    held = memory[1]
    assert held.startswith("the shards may hold ") and "tail_cache_shard_bytes" in held, held
    assert held.endswith(": fits") or "lower tail_cache_shard_bytes first" in held, held
    assert "[recommended pinlog.toml]" in done.stdout
