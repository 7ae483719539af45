"""Bad input gets the matching Kafka error code or a closed connection, never a panic, a hang or a dead node.

Every test ends by checking that the node still serves a fresh client (and the fixture fails the test if the node
died or logged a panic).
"""

from __future__ import annotations

import random
import struct

import kafka_wire
from kafka_wire import (
    CORRUPT_MESSAGE,
    INVALID_PARTITIONS,
    MESSAGE_TOO_LARGE,
    NONE,
    UNKNOWN_TOPIC_OR_PARTITION,
    UNSUPPORTED_FOR_MESSAGE_FORMAT,
    UNSUPPORTED_VERSION,
)

CLOSE_DEADLINE_S = 10.0
REQUIRED_APIS = {
    kafka_wire.API_PRODUCE: "Produce",
    kafka_wire.API_FETCH: "Fetch",
    kafka_wire.API_LIST_OFFSETS: "ListOffsets",
    kafka_wire.API_METADATA: "Metadata",
    kafka_wire.API_API_VERSIONS: "ApiVersions",
    kafka_wire.API_CREATE_TOPICS: "CreateTopics",
    kafka_wire.API_DELETE_TOPICS: "DeleteTopics",
    kafka_wire.API_DESCRIBE_CONFIGS: "DescribeConfigs",
}


def assert_serves(bootstrap: str) -> None:
    with kafka_wire.WireClient(bootstrap, timeout=10) as c:
        answer = c.api_versions(0)
        assert answer["error_code"] == NONE
        c.metadata(None)


def frame_with_header(api_key: int, api_version: int, body: bytes) -> bytes:
    header = kafka_wire.Writer().i16(api_key).i16(api_version).i32(77).string("bad-input").getvalue()
    return struct.pack(">i", len(header) + len(body)) + header + body


def test_malformed_frames_close_the_connection(pinlog):
    rng = random.Random(5)
    cases = {
        # A Produce v3 header with a garbage body.
        "produce garbage body": frame_with_header(kafka_wire.API_PRODUCE, 3, rng.randbytes(64)),
        # A Metadata v4 header whose topic array claims 1000 entries and ends.
        "metadata truncated array": frame_with_header(kafka_wire.API_METADATA, 4, struct.pack(">i", 1000) + b"\x00"),
        # A Produce v3 whose records length points past the end of the frame.
        "produce records past frame end": frame_with_header(
            kafka_wire.API_PRODUCE, 3,
            kafka_wire.Writer().string(None).i16(-1).i32(1000).i32(1).string("t").i32(1).i32(0).i32(1 << 20)
            .raw(b"\x00" * 16).getvalue()),
        # An api key no Kafka has, then random bytes.
        "unknown api key": frame_with_header(0x7A00, 0, rng.randbytes(100)),
        # A header whose client id length runs past the frame.
        "client id past frame end": struct.pack(">ihhih", 10, 3, 4, 1, 500),
        # A negative frame size.
        "negative size": struct.pack(">i", -5) + rng.randbytes(32),
        # A frame too short to hold a header.
        "tiny frame": struct.pack(">i", 3) + b"\x00\x12\x00",
    }
    for what, data in cases.items():
        with kafka_wire.WireClient(pinlog.bootstrap) as c:
            c.send_raw(data)
            assert c.wait_closed(CLOSE_DEADLINE_S), f"{what}: connection still open after {CLOSE_DEADLINE_S} s"
        assert_serves(pinlog.bootstrap)


def test_frame_over_max_request_bytes_closes_the_connection(pinlog_factory):
    # message_max_bytes must fit in a request (the node refuses a config where it does not).
    node = pinlog_factory(max_request_bytes=65536, message_max_bytes=32768)
    # A legal request just under the limit is served.
    with node.wire() as c:
        md = c.metadata(["x" * 100] * 200)
        assert len(md["topics"]) == 1
    with node.wire() as c:
        header = kafka_wire.Writer().i16(kafka_wire.API_PRODUCE).i16(3).i32(1).string("big").getvalue()
        c.send_raw(struct.pack(">i", 1_000_000) + header + b"\x00" * 4096)  # announce 1 MB, send 4 KB
        assert c.wait_closed(CLOSE_DEADLINE_S), "oversized frame: connection still open"
    with node.wire() as c:
        c.send_raw(struct.pack(">i", 0x7FFFFFFF))
        assert c.wait_closed(CLOSE_DEADLINE_S), "2 GiB frame size: connection still open"
    assert_serves(node.bootstrap)


def test_bad_crc_is_corrupt_message(pinlog):
    kafka_wire.create_topic(pinlog.bootstrap, "crc", 1)
    with pinlog.wire() as c:
        bad = kafka_wire.build_batch([(b"k", b"v" * 100)], corrupt_crc=True)
        res = c.produce("crc", {0: bad}, acks=1)
        assert res[0][0] == CORRUPT_MESSAGE, f"bad CRC -> {res}"
        # A batch whose bytes were flipped after the CRC was computed.
        good = bytearray(kafka_wire.build_batch([(b"k", b"w" * 100)]))
        good[-5] ^= 0x55
        res = c.produce("crc", {0: bytes(good)}, acks=-1)
        assert res[0][0] == CORRUPT_MESSAGE, f"flipped payload byte -> {res}"
        # Nothing was appended; a good batch still goes to offset 0.
        res = c.produce("crc", {0: kafka_wire.build_batch([(b"k", b"ok")])}, acks=-1)
        assert res[0] == (NONE, 0), f"good batch after bad ones -> {res}"
    assert [r.value for r in kafka_wire.read_partition(pinlog.bootstrap, "crc", 0)] == [b"ok"]


def test_magic_v1_is_unsupported_for_message_format(pinlog):
    kafka_wire.create_topic(pinlog.bootstrap, "magic1", 1)
    with pinlog.wire() as c:
        res = c.produce("magic1", {0: kafka_wire.build_message_set_v1([(b"k", b"old")])}, acks=1)
        assert res[0][0] == UNSUPPORTED_FOR_MESSAGE_FORMAT, f"magic v1 message set -> {res}"
    assert kafka_wire.high_watermarks(pinlog.bootstrap, "magic1", 1) == {0: 0}
    assert_serves(pinlog.bootstrap)


def test_api_versions_unknown_version_answers_v0_with_ranges(pinlog):
    with pinlog.wire() as c:
        answer = c.api_versions(99)
        assert answer["error_code"] == UNSUPPORTED_VERSION, f"ApiVersions v99 -> {answer}"
        missing = {name for key, name in REQUIRED_APIS.items() if key not in answer["apis"]}
        assert not missing, f"ApiVersions v99 answer lacks {missing}: {answer['apis']}"
        for key, (lo, hi) in answer["apis"].items():
            assert 0 <= lo <= hi, f"api {key}: bad range {lo}..{hi}"
        # The same connection keeps working with a supported version.
        ok = c.api_versions(0)
    assert ok["error_code"] == NONE
    assert ok["apis"] == answer["apis"], "v0 and the v99 error answer disagree on the api ranges"
    assert ok["apis"][kafka_wire.API_API_VERSIONS][0] == 0


def test_produce_to_missing_partition_is_unknown_topic_or_partition(pinlog):
    kafka_wire.create_topic(pinlog.bootstrap, "two", 2)
    with pinlog.wire() as c:
        batch = kafka_wire.build_batch([(None, b"x")])
        for p in (2, 99, -1):
            res = c.produce("two", {p: batch}, acks=-1)
            assert res[p][0] == UNKNOWN_TOPIC_OR_PARTITION, f"partition {p} of a 2-partition topic -> {res}"
        # The valid partition in the same request still succeeds.
        res = c.produce("two", {1: batch, 7: batch}, acks=-1)
        assert res[1] == (NONE, 0) and res[7][0] == UNKNOWN_TOPIC_OR_PARTITION, f"mixed request -> {res}"


def test_one_produce_over_both_shards_answers_each_partition_with_its_own_result(pinlog):
    """The partitions of one request run on their owner shards (one mesh call per shard); each answer must come back
    to its own partition: base offsets differ per partition here, and one batch is corrupt, one partition unknown."""
    partitions = 6
    kafka_wire.create_topic(pinlog.bootstrap, "spread", partitions)
    with pinlog.wire() as c:
        for p in range(partitions):
            for _ in range(p):
                assert c.produce("spread", {p: kafka_wire.build_batch([(None, b"pre")])}, acks=-1)[p][0] == NONE
        good = kafka_wire.build_batch([(None, b"x")])
        bad = kafka_wire.build_batch([(None, b"y")], corrupt_crc=True)
        request = {p: good for p in range(partitions)} | {3: bad, 40: good}
        res = c.produce("spread", request, acks=-1)
    assert res[3][0] == CORRUPT_MESSAGE, res
    assert res[40][0] == UNKNOWN_TOPIC_OR_PARTITION, res
    assert {p: res[p] for p in range(partitions) if p != 3} == {p: (NONE, p) for p in range(partitions) if p != 3}
    assert kafka_wire.high_watermarks(pinlog.bootstrap, "spread", partitions) == {
        p: p + (p != 3) for p in range(partitions)
    }


def test_create_topics_with_zero_partitions_is_invalid_partitions(pinlog):
    with pinlog.wire() as c:
        res = c.create_topics([("zero", 0), ("fine", 2)])
        assert res["zero"][0] == INVALID_PARTITIONS, f"0 partitions -> {res['zero']}"
        assert res["fine"][0] == NONE, f"a valid topic in the same request -> {res['fine']}"
        res = c.create_topics([("negative", -5)])
        assert res["negative"][0] == INVALID_PARTITIONS, f"-5 partitions -> {res['negative']}"
        listing = c.metadata(None)["topics"]
    assert "zero" not in listing and "negative" not in listing, f"refused topics exist: {sorted(listing)}"
    kafka_wire.wait_for_topic(pinlog.bootstrap, "fine", 2)


def test_batch_over_message_max_bytes_is_message_too_large(pinlog):
    # Default message_max_bytes is 1048588; one 1.2 MB record makes a batch above it (the frame is far below
    # the default max_request_bytes of 100 MiB).
    kafka_wire.create_topic(pinlog.bootstrap, "big", 1)
    with pinlog.wire(timeout=30) as c:
        res = c.produce("big", {0: kafka_wire.build_batch([(None, b"\xab" * 1_200_000)])}, acks=-1)
        assert res[0][0] == MESSAGE_TOO_LARGE, f"1.2 MB batch -> {res}"
        res = c.produce("big", {0: kafka_wire.build_batch([(None, b"\xcd" * 900_000)])}, acks=-1)
        assert res[0] == (NONE, 0), f"a 900 KB batch after the refused one -> {res}"
    got = kafka_wire.read_partition(pinlog.bootstrap, "big", 0)
    assert [r.value for r in got] == [b"\xcd" * 900_000]


def test_message_max_bytes_flag(pinlog_factory):
    node = pinlog_factory(message_max_bytes=10000)
    kafka_wire.create_topic(node.bootstrap, "small", 1)
    with node.wire() as c:
        res = c.produce("small", {0: kafka_wire.build_batch([(None, b"x" * 20000)])}, acks=-1)
        assert res[0][0] == MESSAGE_TOO_LARGE, f"20 KB batch with message_max_bytes 10000 -> {res}"
        res = c.produce("small", {0: kafka_wire.build_batch([(None, b"x" * 5000)])}, acks=-1)
        assert res[0] == (NONE, 0), f"5 KB batch -> {res}"
