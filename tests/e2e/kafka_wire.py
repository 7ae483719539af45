"""A tiny raw-socket Kafka client for protocol-level tests.

Real clients hide what the broker answered on the wire (they retry, reconnect, map errors). The bad-input and
limit tests need the exact bytes: this module writes request frames by hand and decodes the answers of the few
API versions the tests use. Only non-flexible (pre-KIP-482) versions are implemented, except the request header
v2 used to probe ApiVersions with an unknown version.

Frame: i32 size + request header v1 (api_key i16, api_version i16, correlation_id i32, client_id nullable string)
+ body. Response: i32 size + correlation_id i32 + body.

Also here: a magic v2 record batch builder (CRC-32C) and parser, and a magic v1 message set builder.
"""

from __future__ import annotations

import socket
import struct
import time
import zlib
from dataclasses import dataclass, field
from typing import Iterable, Optional, Sequence

try:  # C implementation when installed; the pure-Python fallback is fine for test-sized data.
    from crc32c import crc32c as _crc32c_fast
except ImportError:  # pragma: no cover
    _crc32c_fast = None

# ---------------------------------------------------------------------------------------------------- constants

API_DESCRIBE_TOPIC_PARTITIONS = 75
API_PRODUCE = 0
API_INIT_PRODUCER_ID = 22
API_FETCH = 1
API_LIST_OFFSETS = 2
API_METADATA = 3
API_API_VERSIONS = 18
API_CREATE_TOPICS = 19
API_DELETE_TOPICS = 20
API_DESCRIBE_CONFIGS = 32

# Error codes (Kafka protocol guide names).
NONE = 0
OFFSET_OUT_OF_RANGE = 1
CORRUPT_MESSAGE = 2
UNKNOWN_TOPIC_OR_PARTITION = 3
LEADER_NOT_AVAILABLE = 5
MESSAGE_TOO_LARGE = 10
TOPIC_ALREADY_EXISTS = 36
UNSUPPORTED_VERSION = 35
INVALID_PARTITIONS = 37
INVALID_REQUEST = 42
UNSUPPORTED_FOR_MESSAGE_FORMAT = 43

EARLIEST_TIMESTAMP = -2
LATEST_TIMESTAMP = -1

# ---------------------------------------------------------------------------------------------------- CRC-32C


def _make_crc32c_table() -> list[int]:
    table = []
    for n in range(256):
        c = n
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


_CRC32C_TABLE = _make_crc32c_table()


def crc32c_py(data: bytes) -> int:
    """Reference CRC-32C (Castagnoli), used when the `crc32c` package is missing and to cross-check it."""
    crc = 0xFFFFFFFF
    for b in data:
        crc = _CRC32C_TABLE[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def crc32c(data: bytes) -> int:
    if _crc32c_fast is not None:
        return _crc32c_fast(data)
    return crc32c_py(data)


# ---------------------------------------------------------------------------------------------------- encoding


class Writer:
    """Big-endian Kafka primitive encoder."""

    def __init__(self) -> None:
        self.buf = bytearray()

    def i8(self, v: int) -> "Writer":
        self.buf += struct.pack(">b", v)
        return self

    def i16(self, v: int) -> "Writer":
        self.buf += struct.pack(">h", v)
        return self

    def i32(self, v: int) -> "Writer":
        self.buf += struct.pack(">i", v)
        return self

    def u32(self, v: int) -> "Writer":
        self.buf += struct.pack(">I", v)
        return self

    def i64(self, v: int) -> "Writer":
        self.buf += struct.pack(">q", v)
        return self

    def boolean(self, v: bool) -> "Writer":
        return self.i8(1 if v else 0)

    def string(self, s: Optional[str]) -> "Writer":
        if s is None:
            return self.i16(-1)
        raw = s.encode()
        self.i16(len(raw))
        self.buf += raw
        return self

    def bytes_(self, b: Optional[bytes]) -> "Writer":
        if b is None:
            return self.i32(-1)
        self.i32(len(b))
        self.buf += b
        return self

    def raw(self, b: bytes) -> "Writer":
        self.buf += b
        return self

    def uvarint(self, v: int) -> "Writer":
        assert v >= 0
        while True:
            byte = v & 0x7F
            v >>= 7
            if v:
                self.buf.append(byte | 0x80)
            else:
                self.buf.append(byte)
                return self

    def varint(self, v: int) -> "Writer":  # zig-zag, also used for varlong
        return self.uvarint((v << 1) ^ (v >> 63))

    def array(self, items: Optional[Sequence], encode_item) -> "Writer":
        if items is None:
            return self.i32(-1)
        self.i32(len(items))
        for item in items:
            encode_item(self, item)
        return self

    def getvalue(self) -> bytes:
        return bytes(self.buf)


class Reader:
    """Big-endian Kafka primitive decoder; raises ValueError on truncated input."""

    def __init__(self, data: bytes, pos: int = 0) -> None:
        self.data = data
        self.pos = pos

    def _take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise ValueError(f"truncated: need {n} bytes at {self.pos}, have {len(self.data) - self.pos}")
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def i8(self) -> int:
        return struct.unpack(">b", self._take(1))[0]

    def i16(self) -> int:
        return struct.unpack(">h", self._take(2))[0]

    def i32(self) -> int:
        return struct.unpack(">i", self._take(4))[0]

    def u32(self) -> int:
        return struct.unpack(">I", self._take(4))[0]

    def i64(self) -> int:
        return struct.unpack(">q", self._take(8))[0]

    def boolean(self) -> bool:
        return self.i8() != 0

    def string(self) -> Optional[str]:
        n = self.i16()
        if n < 0:
            return None
        return self._take(n).decode()

    def bytes_(self) -> Optional[bytes]:
        n = self.i32()
        if n < 0:
            return None
        return bytes(self._take(n))

    def uvarint(self) -> int:
        shift = 0
        result = 0
        while True:
            b = self._take(1)[0]
            result |= (b & 0x7F) << shift
            if not b & 0x80:
                return result
            shift += 7
            if shift > 63:
                raise ValueError("varint too long")

    def varint(self) -> int:
        v = self.uvarint()
        return (v >> 1) ^ -(v & 1)

    def array(self, decode_item) -> Optional[list]:
        n = self.i32()
        if n < 0:
            return None
        return [decode_item(self) for _ in range(n)]

    def remaining(self) -> int:
        return len(self.data) - self.pos


# ---------------------------------------------------------------------------------------------------- record batches


@dataclass
class Record:
    offset: int
    timestamp: int
    key: Optional[bytes]
    value: Optional[bytes]
    headers: list = field(default_factory=list)


@dataclass
class Batch:
    base_offset: int
    batch_length: int
    leader_epoch: int
    magic: int
    crc: int
    attributes: int
    last_offset_delta: int
    base_timestamp: int
    max_timestamp: int
    producer_id: int
    producer_epoch: int
    base_sequence: int
    records: list
    crc_ok: bool

    @property
    def size(self) -> int:
        return 12 + self.batch_length

    @property
    def last_offset(self) -> int:
        return self.base_offset + self.last_offset_delta


BATCH_HEADER_BYTES = 61  # through the records count
BATCH_LENGTH_MIN = BATCH_HEADER_BYTES - 12


def encode_record(offset_delta: int, key: Optional[bytes], value: Optional[bytes], timestamp_delta: int = 0) -> bytes:
    body = Writer()
    body.i8(0)  # attributes
    body.varint(timestamp_delta)
    body.varint(offset_delta)
    if key is None:
        body.varint(-1)
    else:
        body.varint(len(key)).raw(key)
    if value is None:
        body.varint(-1)
    else:
        body.varint(len(value)).raw(value)
    body.varint(0)  # headers
    out = Writer().varint(len(body.buf))
    out.raw(bytes(body.buf))
    return out.getvalue()


def build_batch(
    records: Iterable[tuple[Optional[bytes], Optional[bytes]]],
    base_offset: int = 0,
    base_timestamp: Optional[int] = None,
    corrupt_crc: bool = False,
) -> bytes:
    """A magic v2, uncompressed, non-transactional record batch of (key, value) pairs with a valid CRC-32C."""
    if base_timestamp is None:
        base_timestamp = int(time.time() * 1000)
    encoded = [encode_record(i, k, v) for i, (k, v) in enumerate(records)]
    assert encoded, "a batch needs at least one record"
    after_crc = Writer()
    after_crc.i16(0)  # attributes
    after_crc.i32(len(encoded) - 1)  # last offset delta
    after_crc.i64(base_timestamp)
    after_crc.i64(base_timestamp)  # max timestamp
    after_crc.i64(-1)  # producer id
    after_crc.i16(-1)  # producer epoch
    after_crc.i32(-1)  # base sequence
    after_crc.i32(len(encoded))
    for r in encoded:
        after_crc.raw(r)
    payload = after_crc.getvalue()
    crc = crc32c(payload)
    if corrupt_crc:
        crc ^= 0xDEADBEEF
    out = Writer()
    out.i64(base_offset)
    out.i32(4 + 1 + 4 + len(payload))  # leader epoch + magic + crc + rest
    out.i32(-1)  # partition leader epoch
    out.i8(2)
    out.u32(crc)
    out.raw(payload)
    return out.getvalue()


def build_message_set_v1(records: Iterable[tuple[Optional[bytes], Optional[bytes]]]) -> bytes:
    """A legacy magic v1 message set (CRC-32 IEEE), which a v2-only broker must refuse."""
    out = Writer()
    ts = int(time.time() * 1000)
    for i, (key, value) in enumerate(records):
        msg = Writer()
        msg.i8(1)  # magic
        msg.i8(0)  # attributes
        msg.i64(ts)
        msg.bytes_(key)
        msg.bytes_(value)
        body = msg.getvalue()
        crc = zlib.crc32(body) & 0xFFFFFFFF
        out.i64(i)
        out.i32(4 + len(body))
        out.u32(crc)
        out.raw(body)
    return out.getvalue()


def parse_batches(data: Optional[bytes], allow_partial_tail: bool = True) -> list[Batch]:
    """Parses consecutive v2 batches. A trailing partial batch (allowed by the Fetch API) is dropped when
    `allow_partial_tail`, else it raises. Stops at a zero batch length (preallocated, zero-filled tail)."""
    batches: list[Batch] = []
    if not data:
        return batches
    pos = 0
    while pos < len(data):
        if pos + 12 > len(data):
            if allow_partial_tail:
                break
            raise ValueError(f"partial batch header at {pos}")
        base_offset, batch_length = struct.unpack_from(">qi", data, pos)
        if batch_length == 0:
            break
        if batch_length < BATCH_LENGTH_MIN:
            raise ValueError(f"batch length {batch_length} at {pos} is too small")
        end = pos + 12 + batch_length
        if end > len(data):
            if allow_partial_tail:
                break
            raise ValueError(f"partial batch at {pos}: needs {end - len(data)} more bytes")
        batches.append(parse_batch(data[pos:end]))
        pos = end
    return batches


def parse_batch(raw: bytes) -> Batch:
    r = Reader(raw)
    base_offset = r.i64()
    batch_length = r.i32()
    leader_epoch = r.i32()
    magic = r.i8()
    if magic != 2:
        raise ValueError(f"magic {magic} batch")
    crc = r.u32()
    crc_ok = crc32c(raw[21:]) == crc
    attributes = r.i16()
    last_offset_delta = r.i32()
    base_timestamp = r.i64()
    max_timestamp = r.i64()
    producer_id = r.i64()
    producer_epoch = r.i16()
    base_sequence = r.i32()
    count = r.i32()
    records = []
    if attributes & 0x07:
        raise ValueError(f"compressed batch (attributes {attributes:#x}) is not supported by this test client")
    for _ in range(count):
        length = r.varint()
        start = r.pos
        r.i8()  # attributes
        ts_delta = r.varint()
        off_delta = r.varint()
        klen = r.varint()
        key = None if klen < 0 else bytes(r._take(klen))
        vlen = r.varint()
        value = None if vlen < 0 else bytes(r._take(vlen))
        headers = []
        for _h in range(r.varint()):
            hk = bytes(r._take(r.varint()))
            hvl = r.varint()
            hv = None if hvl < 0 else bytes(r._take(hvl))
            headers.append((hk, hv))
        if r.pos - start != length:
            raise ValueError(f"record length {length} != parsed {r.pos - start}")
        records.append(Record(base_offset + off_delta, base_timestamp + ts_delta, key, value, headers))
    return Batch(
        base_offset, batch_length, leader_epoch, magic, crc, attributes, last_offset_delta, base_timestamp,
        max_timestamp, producer_id, producer_epoch, base_sequence, records, crc_ok,
    )


# ---------------------------------------------------------------------------------------------------- connection


class ConnectionClosed(Exception):
    """The broker closed the connection (EOF or reset) while we waited for an answer."""


class WireClient:
    """One TCP connection, synchronous request/response, every wait bounded by `timeout` seconds."""

    def __init__(self, bootstrap: str, timeout: float = 15.0, client_id: Optional[str] = "pinlog-e2e") -> None:
        host, port = bootstrap.rsplit(":", 1)
        self.timeout = timeout
        self.client_id = client_id
        self.sock = socket.create_connection((host, int(port)), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.correlation_id = 0

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self) -> "WireClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- raw frames

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _recv_exact(self, n: int, deadline: float) -> bytes:
        out = bytearray()
        while len(out) < n:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no complete answer within {self.timeout} s ({len(out)}/{n} bytes)")
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(min(n - len(out), 1 << 20))
            except ConnectionResetError as err:
                raise ConnectionClosed(str(err)) from err
            except socket.timeout as err:
                raise TimeoutError(f"no complete answer within {self.timeout} s ({len(out)}/{n} bytes)") from err
            if not chunk:
                raise ConnectionClosed(f"EOF after {len(out)}/{n} bytes")
            out += chunk
        return bytes(out)

    def recv_frame(self, timeout: Optional[float] = None) -> bytes:
        deadline = time.monotonic() + (timeout if timeout is not None else self.timeout)
        (size,) = struct.unpack(">i", self._recv_exact(4, deadline))
        if size < 4 or size > 1 << 30:
            raise ValueError(f"bad response size {size}")
        return self._recv_exact(size, deadline)

    def wait_closed(self, timeout: float = 10.0) -> bool:
        """True if the broker closes the connection (EOF/reset) within `timeout`; data it sends first is drained."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(65536)
            except (ConnectionResetError, BrokenPipeError):
                return True
            except socket.timeout:
                return False
            if not chunk:
                return True

    def frame(self, api_key: int, api_version: int, body: bytes, flexible_header: bool = False) -> tuple[int, bytes]:
        self.correlation_id += 1
        header = Writer().i16(api_key).i16(api_version).i32(self.correlation_id).string(self.client_id)
        if flexible_header:
            header.uvarint(0)  # empty tagged fields (request header v2)
        payload = header.getvalue() + body
        return self.correlation_id, struct.pack(">i", len(payload)) + payload

    def request(self, api_key: int, api_version: int, body: bytes, timeout: Optional[float] = None,
                flexible_header: bool = False) -> Reader:
        cid, data = self.frame(api_key, api_version, body, flexible_header)
        self.send_raw(data)
        resp = self.recv_frame(timeout)
        r = Reader(resp)
        got = r.i32()
        if got != cid:
            raise ValueError(f"correlation id {got} != {cid}")
        return r

    # -- ApiVersions

    def api_versions(self, version: int = 0, timeout: Optional[float] = None) -> dict:
        """ApiVersions v0..v2 (or any unsupported version: the answer is then v0-shaped). Returns
        {"error_code": int, "apis": {api_key: (min, max)}}."""
        flexible = version >= 3
        r = self.request(API_API_VERSIONS, version, b"", timeout=timeout, flexible_header=flexible)
        error_code = r.i16()
        apis = {}
        for key, lo, hi in r.array(lambda x: (x.i16(), x.i16(), x.i16())) or []:
            apis[key] = (lo, hi)
        return {"error_code": error_code, "apis": apis}

    # -- Metadata v4 (allow_auto_topic_creation)

    def metadata(self, topics: Optional[list[str]], allow_auto_create: bool = False,
                 timeout: Optional[float] = None) -> dict:
        body = Writer()
        body.array(topics, lambda w, t: w.string(t))
        body.boolean(allow_auto_create)
        r = self.request(API_METADATA, 4, body.getvalue(), timeout)
        r.i32()  # throttle
        brokers = r.array(lambda x: {"node_id": x.i32(), "host": x.string(), "port": x.i32(), "rack": x.string()})
        cluster_id = r.string()
        controller_id = r.i32()

        def partition(x: Reader) -> dict:
            return {
                "error_code": x.i16(),
                "partition": x.i32(),
                "leader": x.i32(),
                "replicas": x.array(lambda y: y.i32()),
                "isr": x.array(lambda y: y.i32()),
            }

        def topic(x: Reader) -> dict:
            return {
                "error_code": x.i16(),
                "name": x.string(),
                "is_internal": x.boolean(),
                "partitions": x.array(partition),
            }

        topics_out = r.array(topic)
        return {
            "brokers": brokers,
            "cluster_id": cluster_id,
            "controller_id": controller_id,
            "topics": {t["name"]: t for t in topics_out},
        }

    # -- CreateTopics v2 / DeleteTopics v1

    def create_topics(self, topics: list[tuple[str, int]], timeout_ms: int = 10000,
                      configs: Optional[dict] = None) -> dict:
        body = Writer()

        def topic(w: Writer, t: tuple[str, int]) -> None:
            name, partitions = t
            w.string(name).i32(partitions).i16(1)
            w.array([], None)  # assignments
            w.array(list((configs or {}).items()), lambda w2, kv: w2.string(kv[0]).string(kv[1]))

        body.array(topics, topic)
        body.i32(timeout_ms)
        body.boolean(False)  # validate_only
        r = self.request(API_CREATE_TOPICS, 2, body.getvalue(), timeout=timeout_ms / 1000 + 10)
        r.i32()  # throttle
        out = {}
        for name, code, msg in r.array(lambda x: (x.string(), x.i16(), x.string())):
            out[name] = (code, msg)
        return out

    def delete_topics(self, names: list[str], timeout_ms: int = 10000) -> dict:
        body = Writer().array(names, lambda w, n: w.string(n)).i32(timeout_ms)
        r = self.request(API_DELETE_TOPICS, 1, body.getvalue(), timeout=timeout_ms / 1000 + 10)
        r.i32()
        return {name: code for name, code in r.array(lambda x: (x.string(), x.i16()))}

    # -- DescribeTopicPartitions v0 (API 75, flexible: compact strings and arrays, tagged fields)

    def describe_topic_partitions(self, topics: list[str], partition_limit: int,
                                  cursor: Optional[tuple[str, int]] = None) -> dict:
        """Returns {"topics": [{"error_code", "name", "is_internal", "partitions": [index...]}],
        "next_cursor": (topic, partition) or None}."""
        def compact_string(w: Writer, s: str) -> None:
            raw = s.encode()
            w.uvarint(len(raw) + 1).raw(raw)

        body = Writer().uvarint(len(topics) + 1)
        for t in topics:
            compact_string(body, t)
            body.uvarint(0)
        body.i32(partition_limit)
        if cursor is None:
            body.i8(-1)
        else:
            body.i8(1)
            compact_string(body, cursor[0])
            body.i32(cursor[1]).uvarint(0)
        body.uvarint(0)
        r = self.request(API_DESCRIBE_TOPIC_PARTITIONS, 0, body.getvalue(), flexible_header=True)
        r.uvarint()  # response header tagged fields

        def compact_str(x: Reader) -> Optional[str]:
            n = x.uvarint()
            return None if n == 0 else x._take(n - 1).decode()

        def compact_array(x: Reader, item) -> list:
            return [item(x) for _ in range(x.uvarint() - 1)]

        def i32_array(x: Reader) -> list[int]:
            return compact_array(x, lambda y: y.i32())

        def partition(x: Reader) -> int:
            x.i16()  # error code
            index = x.i32()
            x.i32(), x.i32()  # leader, epoch
            i32_array(x), i32_array(x), i32_array(x), i32_array(x), i32_array(x)
            x.uvarint()
            return index

        def topic(x: Reader) -> dict:
            out = {"error_code": x.i16(), "name": compact_str(x)}
            x._take(16)  # topic id
            out["is_internal"] = x.boolean()
            out["partitions"] = compact_array(x, partition)
            x.i32()  # authorized operations
            x.uvarint()
            return out

        r.i32()  # throttle
        topics_out = compact_array(r, topic)
        next_cursor = None
        if r.i8() != -1:
            next_cursor = (compact_str(r), r.i32())
            r.uvarint()
        return {"topics": topics_out, "next_cursor": next_cursor}

    # -- Produce v3 (the first version that requires magic v2)

    def produce(self, topic: str, partitions: dict[int, Optional[bytes]], acks: int = -1,
                timeout_ms: int = 10000) -> dict[int, tuple[int, int]]:
        """Sends one Produce v3 for `partitions` {partition: records bytes}; returns {partition: (error, base_offset)}.
        With acks=0 the broker does not answer and an empty dict is returned."""
        body = Writer()
        body.string(None)  # transactional id
        body.i16(acks)
        body.i32(timeout_ms)

        def part(w: Writer, item: tuple[int, Optional[bytes]]) -> None:
            w.i32(item[0]).bytes_(item[1])

        body.array([(topic, sorted(partitions.items()))], lambda w, t: (w.string(t[0]), w.array(t[1], part)))
        if acks == 0:
            _cid, data = self.frame(API_PRODUCE, 3, body.getvalue())
            self.send_raw(data)
            return {}
        r = self.request(API_PRODUCE, 3, body.getvalue(), timeout=timeout_ms / 1000 + 10)
        out = {}
        for _name, parts in r.array(lambda x: (x.string(), x.array(lambda y: (y.i32(), y.i16(), y.i64(), y.i64())))):
            for p, code, base, _append_time in parts:
                out[p] = (code, base)
        r.i32()  # throttle
        return out

    # -- InitProducerId v0 (idempotent producer, no transactional id)
    def init_producer_id(self) -> dict:
        body = Writer().string(None).i32(60000).getvalue()
        r = self.request(API_INIT_PRODUCER_ID, 0, body)
        r.i32()  # throttle
        return {"error_code": r.i16(), "producer_id": r.i64(), "producer_epoch": r.i16()}

    # -- ListOffsets v1

    def list_offsets(self, topic: str, partitions: list[int], timestamp: int) -> dict[int, tuple[int, int]]:
        """{partition: (error, offset)} for EARLIEST_TIMESTAMP / LATEST_TIMESTAMP / a timestamp."""
        body = Writer().i32(-1)
        body.array([topic], lambda w, t: (w.string(t), w.array(partitions, lambda w2, p: w2.i32(p).i64(timestamp))))
        r = self.request(API_LIST_OFFSETS, 1, body.getvalue())
        out = {}
        for _name, parts in r.array(lambda x: (x.string(), x.array(lambda y: (y.i32(), y.i16(), y.i64(), y.i64())))):
            for p, code, _ts, offset in parts:
                out[p] = (code, offset)
        return out

    # -- Fetch v11

    def fetch(self, topic: str, partitions: dict[int, tuple[int, int]], max_wait_ms: int = 0, min_bytes: int = 1,
              max_bytes: int = 50 * 1024 * 1024, timeout: Optional[float] = None, session_id: int = 0,
              session_epoch: int = -1, forgotten: Sequence[int] = ()) -> dict:
        """Fetch v11 for {partition: (fetch_offset, partition_max_bytes)}; by default a full fetch outside any
        session (KIP-227: epoch 0 opens one, epoch > 0 is incremental in `session_id`, `forgotten` leave it).
        Returns {"error_code", "session_id",
        "partitions": {p: {"error_code", "high_watermark", "log_start_offset", "records"}}}."""
        body = Writer()
        body.i32(-1)  # replica id
        body.i32(max_wait_ms)
        body.i32(min_bytes)
        body.i32(max_bytes)
        body.i8(0)  # isolation level: read uncommitted
        body.i32(session_id)
        body.i32(session_epoch)

        def part(w: Writer, item: tuple[int, tuple[int, int]]) -> None:
            p, (offset, pmax) = item
            w.i32(p).i32(-1).i64(offset).i64(-1).i32(pmax)

        body.array([(topic, sorted(partitions.items()))], lambda w, t: (w.string(t[0]), w.array(t[1], part)))
        gone = [(topic, list(forgotten))] if forgotten else []
        body.array(gone, lambda w, t: (w.string(t[0]), w.array(t[1], lambda x, p: x.i32(p))))
        body.string("")  # rack id
        wait = timeout if timeout is not None else max_wait_ms / 1000 + self.timeout
        r = self.request(API_FETCH, 11, body.getvalue(), timeout=wait)
        r.i32()  # throttle
        error_code = r.i16()
        answered_session = r.i32()

        def partition(x: Reader) -> dict:
            d = {
                "partition": x.i32(),
                "error_code": x.i16(),
                "high_watermark": x.i64(),
                "last_stable_offset": x.i64(),
                "log_start_offset": x.i64(),
            }
            x.array(lambda y: (y.i64(), y.i64()))  # aborted transactions
            x.i32()  # preferred read replica
            d["records"] = x.bytes_()
            return d

        out: dict = {}
        for _name, parts in r.array(lambda x: (x.string(), x.array(partition))):
            for d in parts:
                out[d["partition"]] = d
        return {"error_code": error_code, "session_id": answered_session, "partitions": out}


# ---------------------------------------------------------------------------------------------------- helpers


def wait_for_topic(bootstrap: str, topic: str, partitions: int, timeout: float = 20.0) -> dict:
    """Polls Metadata (bounded) until `topic` has `partitions` partitions, all with a leader and no error."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        with WireClient(bootstrap) as c:
            md = c.metadata([topic])
        t = md["topics"].get(topic)
        last = t
        if t and t["error_code"] == NONE and len(t["partitions"]) == partitions and all(
            p["error_code"] == NONE and p["leader"] >= 0 for p in t["partitions"]
        ):
            return t
        time.sleep(0.1)
    raise AssertionError(f"topic {topic} not ready with {partitions} partitions within {timeout} s: {last}")


def create_topic(bootstrap: str, topic: str, partitions: int, configs: Optional[dict] = None) -> None:
    with WireClient(bootstrap) as c:
        res = c.create_topics([(topic, partitions)], configs=configs)
    code, msg = res[topic]
    assert code == NONE, f"CreateTopics {topic} -> error {code} ({msg})"
    wait_for_topic(bootstrap, topic, partitions)


def high_watermarks(bootstrap: str, topic: str, partitions: int) -> dict[int, int]:
    with WireClient(bootstrap) as c:
        res = c.list_offsets(topic, list(range(partitions)), LATEST_TIMESTAMP)
    for p, (code, _off) in res.items():
        assert code == NONE, f"ListOffsets {topic}/{p} -> error {code}"
    return {p: off for p, (_code, off) in res.items()}


def read_partition(bootstrap: str, topic: str, partition: int, start: int = 0, end: Optional[int] = None,
                   partition_max_bytes: int = 4 * 1024 * 1024, timeout: float = 60.0) -> list[Record]:
    """Every record of a partition from `start` up to `end` (default: the high watermark at the first fetch)."""
    records: list[Record] = []
    offset = start
    deadline = time.monotonic() + timeout
    with WireClient(bootstrap) as c:
        while True:
            assert time.monotonic() < deadline, f"reading {topic}/{partition} took more than {timeout} s"
            res = c.fetch(topic, {partition: (offset, partition_max_bytes)})
            p = res["partitions"][partition]
            assert p["error_code"] == NONE, f"Fetch {topic}/{partition}@{offset} -> error {p['error_code']}"
            if end is None:
                end = p["high_watermark"]
            if offset >= end:
                return records
            batches = parse_batches(p["records"])
            assert batches, f"Fetch {topic}/{partition}@{offset} returned no whole batch below hw {end}"
            for b in batches:
                assert b.crc_ok, f"batch at {b.base_offset} has a bad CRC"
                for rec in b.records:
                    if offset <= rec.offset < end:
                        records.append(rec)
                offset = max(offset, b.last_offset + 1)
