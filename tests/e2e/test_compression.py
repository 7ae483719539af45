"""Every compression codec passes through untouched: produced by one client (confluent-kafka / librdkafka 2.x),
consumed by another (kcat, Debian's librdkafka 2.0.2), byte for byte and in order. The broker stores the compressed
batches as received and only checks their CRC."""

from __future__ import annotations

import subprocess

import pytest

import kafka_wire
from clients import confluent_producer, produce_all

RECORDS = 3000
CODECS = {"gzip": 1, "snappy": 2, "lz4": 3, "zstd": 4}


@pytest.mark.parametrize("codec", ["gzip", "snappy", "lz4", "zstd"])
def test_codec_produced_by_confluent_consumed_by_kcat(pinlog, codec):
    topic = f"codec-{codec}"
    kafka_wire.create_topic(pinlog.bootstrap, topic, 1)
    producer = confluent_producer(pinlog.bootstrap, **{"compression.type": codec, "linger.ms": 20})
    failures = []
    values = [f"{codec}-{i:05d}-".encode() + b"abc" * (i % 50) for i in range(RECORDS)]
    produce_all(producer, topic, ((None, v) for v in values),
                lambda err, _msg: failures.append(err) if err else None)
    assert not failures, f"deliveries failed: {failures[:3]}"

    with kafka_wire.WireClient(pinlog.bootstrap) as c:
        stored = c.fetch(topic, {0: (0, 1 << 20)})["partitions"][0]["records"]
    # librdkafka leaves a batch uncompressed when compression does not shrink it, so look for the codec in any
    # batch header: attributes are the big-endian i16 at byte 21 of a batch, bits 0-2 the codec.
    codecs, pos = set(), 0
    while pos + 23 <= len(stored):
        codecs.add(int.from_bytes(stored[pos + 21:pos + 23], "big") & 0x7)
        pos += 12 + int.from_bytes(stored[pos + 8:pos + 12], "big")
    assert CODECS[codec] in codecs, f"no {codec} batch stored as produced (codecs seen: {codecs})"

    res = subprocess.run(["kcat", "-b", pinlog.bootstrap, "-C", "-t", topic, "-p", "0", "-o", "beginning", "-e",
                          "-q", "-f", "%s\n"], capture_output=True, timeout=60)
    assert res.returncode == 0, res.stderr.decode(errors="replace")[-2000:]
    assert res.stdout.split(b"\n")[:-1] == values, f"{codec}: kcat read different bytes"
