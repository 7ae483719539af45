"""Checks the test client itself (no pinlog needed): kafka_wire's requests decode with kafka-python's protocol
schemas, kafka-python-encoded responses decode with kafka_wire, and its record batches and CRC-32C agree with
kafka-python's record code. A protocol test is only as good as the client that speaks it.
"""

from __future__ import annotations

import socket
import struct
import threading

from kafka.protocol.admin.topics import CreateTopicsRequest, CreateTopicsResponse
from kafka.protocol.consumer.fetch import FetchRequest, FetchResponse
from kafka.protocol.consumer.offsets import ListOffsetsRequest, ListOffsetsResponse
from kafka.protocol.metadata.api_versions import ApiVersionsRequest, ApiVersionsResponse
from kafka.protocol.metadata.metadata import MetadataRequest, MetadataResponse
from kafka.protocol.producer.produce import ProduceRequest, ProduceResponse
from kafka.record.default_records import DefaultRecordBatch, DefaultRecordBatchBuilder
from kafka.record.legacy_records import LegacyRecordBatch

import kafka_wire


def build(cls, version: int, vals: dict):
    kwargs = {}
    for name, v in vals.items():
        f = cls.fields[name]
        if v is None:
            pass
        elif f.is_struct_array():
            v = [build(f.data_class, version, x) for x in v]
        elif f.is_struct():
            v = build(f.data_class, version, v)
        kwargs[name] = v
    return cls(version=version, **kwargs)


class FakeBroker:
    """Accepts one connection; for each request decodes it with `req_cls` and answers `response` (kafka-python)."""

    def __init__(self, exchanges: list) -> None:
        self.exchanges = exchanges
        self.decoded: list = []
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.bootstrap = f"127.0.0.1:{self.listener.getsockname()[1]}"
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self) -> None:
        try:
            conn, _ = self.listener.accept()
            conn.settimeout(10)
            with conn:
                for req_cls, resp_cls, resp_vals in self.exchanges:
                    size = struct.unpack(">i", conn.recv(4, socket.MSG_WAITALL))[0]
                    data = conn.recv(size, socket.MSG_WAITALL)
                    _key, version, cid = struct.unpack_from(">hhi", data)
                    unknown = version > req_cls.max_version  # answered in v0 shape, like Kafka does
                    self.decoded.append(None if unknown else req_cls.decode(data, version=version, header=True))
                    resp_version = 0 if unknown else version
                    body = build(resp_cls, resp_version, resp_vals).encode(version=resp_version)
                    conn.sendall(struct.pack(">ii", len(body) + 4, cid) + bytes(body))
        except BaseException as err:  # reported by the test
            import traceback

            self.error = RuntimeError(f"fake broker failed after {len(self.decoded)} requests: "
                                      + "".join(traceback.format_exception(err)))

    def close(self) -> None:
        self.thread.join(10)
        self.listener.close()
        assert self.error is None, str(self.error)


def test_crc32c_matches_reference():
    assert kafka_wire.crc32c(b"123456789") == 0xE3069283
    assert kafka_wire.crc32c_py(b"123456789") == 0xE3069283
    data = bytes(range(256)) * 7
    assert kafka_wire.crc32c(data) == kafka_wire.crc32c_py(data)


def test_batches_agree_with_kafka_python():
    raw = kafka_wire.build_batch([(b"k", b"v" * 10), (None, b""), (b"", None)], base_offset=5)
    theirs = DefaultRecordBatch(raw)
    assert theirs.validate_crc()
    assert [(r.offset, r.key, r.value) for r in theirs] == [(5, b"k", b"v" * 10), (6, None, b""), (7, b"", None)]
    assert not DefaultRecordBatch(kafka_wire.build_batch([(b"k", b"v")], corrupt_crc=True)).validate_crc()

    builder = DefaultRecordBatchBuilder(magic=2, compression_type=0, is_transactional=False, producer_id=-1,
                                        producer_epoch=-1, base_sequence=-1, batch_size=1 << 20)
    builder.append(0, timestamp=1234, key=b"a", value=b"b" * 50, headers=[])
    builder.append(1, timestamp=1240, key=None, value=b"c", headers=[("h", b"hv")])
    ours = kafka_wire.parse_batch(bytes(builder.build()))
    assert ours.crc_ok
    assert [(r.offset, r.timestamp, r.key, r.value, r.headers) for r in ours.records] == [
        (0, 1234, b"a", b"b" * 50, []), (1, 1240, None, b"c", [(b"h", b"hv")])]
    two = kafka_wire.build_batch([(None, b"1")]) + kafka_wire.build_batch([(None, b"2")], base_offset=1)
    assert [b.base_offset for b in kafka_wire.parse_batches(two + two[:30])] == [0, 1]

    legacy = LegacyRecordBatch(kafka_wire.build_message_set_v1([(b"k", b"old")]), 1)
    assert [(r.key, r.value) for r in legacy] == [(b"k", b"old")]


def test_requests_and_responses_agree_with_kafka_python():
    batch = kafka_wire.build_batch([(b"k", b"v")])
    broker = FakeBroker([
        (ApiVersionsRequest, ApiVersionsResponse, {"error_code": 0, "api_keys": [
            {"api_key": 0, "min_version": 3, "max_version": 9}, {"api_key": 18, "min_version": 0, "max_version": 3}]}),
        (ApiVersionsRequest, ApiVersionsResponse, {"error_code": 35, "api_keys": [
            {"api_key": 18, "min_version": 0, "max_version": 3}]}),
        (MetadataRequest, MetadataResponse, {
            "brokers": [{"node_id": 0, "host": "127.0.0.1", "port": 9092, "rack": None}],
            "cluster_id": "c", "controller_id": 0,
            "topics": [{"error_code": 0, "name": "t", "is_internal": False, "partitions": [
                {"error_code": 0, "partition_index": 0, "leader_id": 0, "replica_nodes": [0], "isr_nodes": [0]}]}]}),
        (CreateTopicsRequest, CreateTopicsResponse, {"topics": [{"name": "t", "error_code": 37,
                                                                 "error_message": "bad"}]}),
        (ProduceRequest, ProduceResponse, {"responses": [{"name": "t", "partition_responses": [
            {"index": 0, "error_code": 0, "base_offset": 42, "log_append_time_ms": -1}]}]}),
        (ListOffsetsRequest, ListOffsetsResponse, {"topics": [{"name": "t", "partitions": [
            {"partition_index": 0, "error_code": 0, "timestamp": -1, "offset": 43}]}]}),
        (FetchRequest, FetchResponse, {"error_code": 0, "session_id": 0, "responses": [{"topic": "t", "partitions": [
            {"partition_index": 0, "error_code": 0, "high_watermark": 43, "last_stable_offset": 43,
             "log_start_offset": 0, "aborted_transactions": None, "preferred_read_replica": -1,
             "records": batch}]}]}),
    ])
    try:
        with kafka_wire.WireClient(broker.bootstrap, timeout=10) as c:
            assert c.api_versions(0) == {"error_code": 0, "apis": {0: (3, 9), 18: (0, 3)}}
            assert c.api_versions(99) == {"error_code": 35, "apis": {18: (0, 3)}}
            md = c.metadata(["t"], allow_auto_create=True)
            assert md["topics"]["t"]["partitions"][0]["leader"] == 0
            assert c.create_topics([("t", 0)]) == {"t": (37, "bad")}
            assert c.produce("t", {0: batch}, acks=-1) == {0: (0, 42)}
            assert c.list_offsets("t", [0], kafka_wire.LATEST_TIMESTAMP) == {0: (0, 43)}
            f = c.fetch("t", {0: (7, 1000)}, max_wait_ms=100, min_bytes=1, max_bytes=5000)
            assert f["partitions"][0]["high_watermark"] == 43 and f["partitions"][0]["records"] == batch
    finally:
        broker.close()
    req = broker.decoded
    assert req[2].topics[0].name == "t" and req[2].allow_auto_topic_creation is True
    assert req[3].topics[0].name == "t" and req[3].topics[0].num_partitions == 0
    assert req[4].acks == -1 and req[4].topic_data[0].partition_data[0].records == batch
    assert req[5].topics[0].partitions[0].timestamp == -1
    fp = req[6].topics[0].partitions[0]
    assert (req[6].max_wait_ms, req[6].min_bytes, req[6].max_bytes) == (100, 1, 5000)
    assert (fp.partition, fp.fetch_offset, fp.partition_max_bytes) == (0, 7, 1000)
