"""Consumer groups (classic protocol) with real clients: confluent-kafka, kafka-python, aiokafka and kafkajs.

For each client, three members share a 12-partition topic:
1. every partition is assigned to exactly one member;
2. a member leaves and another joins: the group rebalances, and no record is lost or delivered again past its
   committed offset (members commit each batch before reporting it, see group_member.py);
3. the node restarts: a fresh member of the same group resumes from the committed offsets.
Every wait has a deadline. Members are separate processes, so a hung client fails the test instead of hanging it.
"""

from __future__ import annotations

import json
import queue
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from clients import confluent_create_topic, confluent_producer, produce_all

HERE = Path(__file__).resolve().parent
JS_DIR = HERE / "js"
PARTITIONS = 12
RECORDS_PER_ROUND = 600
GROUP_FLAGS = dict(group_initial_rebalance_delay_ms=200, group_min_session_timeout_ms=1000)
STEP_DEADLINE_S = 25.0


class Member:
    """One member process and everything it reported."""

    def __init__(self, client: str, bootstrap: str, topic: str, group: str, name: str, events: queue.Queue):
        self.name = name
        if client == "kafkajs":
            cmd = ["node", str(JS_DIR / "member.js"), bootstrap, topic, group, name]
        else:
            cmd = [sys.executable, str(HERE / "group_member.py"), client, bootstrap, topic, group, name]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True, cwd=str(HERE))
        self.stderr: list[str] = []
        threading.Thread(target=self._read, args=(events,), daemon=True).start()
        threading.Thread(target=lambda: self.stderr.extend(self.proc.stderr), daemon=True).start()

    def _read(self, events: queue.Queue) -> None:
        for line in self.proc.stdout:
            try:
                events.put(json.loads(line))
            except json.JSONDecodeError:
                self.stderr.append(line)

    def stop(self, timeout: float = 15.0) -> None:
        if self.proc.poll() is None:
            try:
                self.proc.stdin.write("stop\n")
                self.proc.stdin.flush()
                self.proc.stdin.close()
            except (BrokenPipeError, OSError):
                pass
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
                raise AssertionError(f"member {self.name} did not close within {timeout} s")


class GroupRun:
    """The members of one test and the merged view of their reports."""

    def __init__(self, client: str, bootstrap: str, topic: str, group: str):
        self.client, self.bootstrap, self.topic, self.group = client, bootstrap, topic, group
        self.events: queue.Queue = queue.Queue()
        self.members: dict[str, Member] = {}
        self.assignment: dict[str, set[int]] = {}
        self.consumed: list[tuple[int, int, str]] = []

    def start(self, name: str) -> None:
        self.members[name] = Member(self.client, self.bootstrap, self.topic, self.group, name, self.events)

    def stop(self, name: str) -> None:
        self.members.pop(name).stop()
        self.assignment.pop(name, None)

    def stop_all(self) -> None:
        for name in list(self.members):
            self.stop(name)

    def _drain(self, wait_s: float) -> None:
        try:
            event = self.events.get(timeout=wait_s)
        except queue.Empty:
            return
        while True:
            kind, member = event.get("event"), event.get("member")
            if kind == "assigned" and member in self.members:
                self.assignment[member] = set(event["partitions"])
            elif kind == "consumed":
                self.consumed.extend(tuple(r) for r in event["records"])
            elif kind == "error":
                raise AssertionError(f"member {member} failed: {event}")
            try:
                event = self.events.get_nowait()
            except queue.Empty:
                return

    def wait_until(self, what: str, cond, deadline_s: float = STEP_DEADLINE_S) -> None:
        deadline = time.monotonic() + deadline_s
        while not cond():
            for m in self.members.values():
                assert m.proc.poll() is None, f"member {m.name} exited: {''.join(m.stderr)[-2000:]}"
            if time.monotonic() > deadline:
                stderr = {n: "".join(m.stderr)[-1500:] for n, m in self.members.items()}
                raise AssertionError(f"timed out waiting for {what}; assignment {self.assignment}, "
                                     f"{len(self.consumed)} consumed; member stderr {stderr}")
            self._drain(0.1)

    def assigned_exactly_once(self) -> bool:
        live = [self.assignment.get(n, set()) for n in self.members]
        flat = [p for parts in live for p in parts]
        return len(live) > 0 and all(live) and sorted(flat) == list(range(PARTITIONS))

    def values(self) -> set[str]:
        return {v for _, _, v in self.consumed}


def produce_round(bootstrap: str, topic: str, round_no: int) -> set[str]:
    values = [f"r{round_no}-{i}" for i in range(RECORDS_PER_ROUND)]
    producer = confluent_producer(bootstrap, **{"linger.ms": 2})
    failures = []

    def on_delivery(err, _msg):
        if err is not None:
            failures.append(err)

    produce_all(producer, topic, ((v.encode(), v.encode()) for v in values), on_delivery, deadline_s=30)
    assert not failures, failures[:3]
    return set(values)


def assert_no_redelivery(run: GroupRun) -> None:
    seen: set[tuple[int, int]] = set()
    again = [(p, o) for p, o, _ in run.consumed if (p, o) in seen or seen.add((p, o))]
    assert not again, f"{len(again)} records delivered again past their committed offset, e.g. {again[:5]}"


def client_available(client: str) -> bool:
    if client == "kafkajs":
        return shutil.which("node") is not None and (JS_DIR / "node_modules" / "kafkajs").is_dir()
    return True


@pytest.mark.timeout(120)
@pytest.mark.parametrize("client", ["confluent", "kafka-python", "aiokafka", "kafkajs"])
def test_three_members_rebalance_and_resume_after_restart(pinlog_factory, client):
    if not client_available(client):
        pytest.fail(f"{client} is not installed: run tests/install-deps.sh")
    node = pinlog_factory(**GROUP_FLAGS)
    topic, group = f"groups-{client}", f"g-{client}"
    confluent_create_topic(node.bootstrap, topic, PARTITIONS)
    run = GroupRun(client, node.bootstrap, topic, group)
    try:
        produced = produce_round(node.bootstrap, topic, 1)
        for name in ("m1", "m2", "m3"):
            run.start(name)
        run.wait_until("12 partitions assigned once over 3 members", run.assigned_exactly_once)
        run.wait_until("round 1 consumed", lambda: produced <= run.values())

        run.stop("m1")
        run.start("m4")
        produced |= produce_round(node.bootstrap, topic, 2)
        run.wait_until("the group rebalanced over m2, m3, m4",
                       lambda: len(run.assignment) == 3 and run.assigned_exactly_once())
        run.wait_until("round 2 consumed", lambda: produced <= run.values())
        assert_no_redelivery(run)

        run.stop_all()
        node.restart()
        produced |= produce_round(node.bootstrap, topic, 3)
        run.start("m5")
        run.wait_until("round 3 consumed after the restart", lambda: produced <= run.values(), deadline_s=40)
        run._drain(1.0)  # anything delivered again would show up now
        assert_no_redelivery(run)
        assert run.values() == produced
    finally:
        for m in list(run.members.values()):
            if m.proc.poll() is None:
                m.proc.kill()


def test_offsets_of_a_simple_consumer_survive_a_restart(pinlog_factory):
    """assign() with a group id: OffsetCommit with generation -1, OffsetFetch for an unknown group gives -1."""
    from confluent_kafka import Consumer, TopicPartition

    node = pinlog_factory(**GROUP_FLAGS)
    confluent_create_topic(node.bootstrap, "simple", 2)

    def consumer():
        return Consumer({"bootstrap.servers": node.bootstrap, "group.id": "simple-g", "enable.auto.commit": False})

    c = consumer()
    assert c.committed([TopicPartition("simple", 0)], timeout=20)[0].offset < 0
    c.commit(offsets=[TopicPartition("simple", 0, 7), TopicPartition("simple", 1, 9)], asynchronous=False)
    c.close()
    node.restart()
    c = consumer()
    got = c.committed([TopicPartition("simple", 0), TopicPartition("simple", 1)], timeout=20)
    c.close()
    assert [tp.offset for tp in got] == [7, 9]


def test_admin_lists_describes_and_deletes_groups(pinlog_factory):
    from confluent_kafka import Consumer, TopicPartition
    from confluent_kafka.admin import AdminClient

    node = pinlog_factory(**GROUP_FLAGS)
    confluent_create_topic(node.bootstrap, "admin-t", 1)
    c = Consumer({"bootstrap.servers": node.bootstrap, "group.id": "admin-g", "enable.auto.commit": False})
    c.commit(offsets=[TopicPartition("admin-t", 0, 3)], asynchronous=False)
    c.close()
    admin = AdminClient({"bootstrap.servers": node.bootstrap})
    listed = admin.list_consumer_groups(request_timeout=20).result(timeout=30)
    assert "admin-g" in {g.group_id for g in listed.valid}
    described = admin.describe_consumer_groups(["admin-g"], request_timeout=20)["admin-g"].result(timeout=30)
    assert str(described.state).endswith("EMPTY")
    admin.delete_consumer_groups(["admin-g"], request_timeout=20)["admin-g"].result(timeout=30)
    listed = admin.list_consumer_groups(request_timeout=20).result(timeout=30)
    assert "admin-g" not in {g.group_id for g in listed.valid}
