//! Micro-benchmarks of the per-request hot functions, through the same code the server runs:
//! CRC-32C of record batches (the check every produced batch gets), the Kafka codecs on the request path (Produce
//! decode, Fetch response encode), the SPSC hand-off between shards (glommio `shared_channel`) and the engine's own
//! append and read steps (batch validation, offset assignment, offset index lookup; through
//! `pinlog_engine::bench_support`, which re-exports the real functions).
//!
//! `cargo bench -p pinlog-bench --bench hot_paths`

use std::hint::black_box;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use glommio::channels::shared_channel;
use glommio::{LocalExecutorBuilder, Placement};
use kafka_protocol::messages::fetch_response::{
    FetchResponse, FetchableTopicResponse, PartitionData,
};
use kafka_protocol::messages::produce_request::{
    PartitionProduceData, ProduceRequest, TopicProduceData,
};
use kafka_protocol::messages::TopicName;
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use pinlog_engine::bench_support;

const PRODUCE_VERSION: i16 = 9;
const FETCH_VERSION: i16 = 12;

fn crc32c(c: &mut Criterion) {
    let mut group = c.benchmark_group("crc32c");
    for size in [1024usize, 16 * 1024, 1024 * 1024] {
        let data = vec![0x5au8; size];
        group.throughput(Throughput::Bytes(size as u64));
        group.bench_with_input(BenchmarkId::from_parameter(size), &data, |b, data| {
            b.iter(|| crc32c::crc32c(black_box(data)))
        });
    }
    group.finish();
}

/// A Produce request like librdkafka's at max rate: 16 partitions, one 16 KiB batch each.
fn produce_request_bytes() -> Bytes {
    let partitions = (0..16)
        .map(|i| {
            PartitionProduceData::default()
                .with_index(i)
                .with_records(Some(Bytes::from(vec![7u8; 16 * 1024])))
        })
        .collect();
    let topic = TopicProduceData::default()
        .with_name(TopicName(StrBytes::from_static_str("bench")))
        .with_partition_data(partitions);
    let request = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(30_000)
        .with_topic_data(vec![topic]);
    let mut out = BytesMut::new();
    request
        .encode(&mut out, PRODUCE_VERSION)
        .expect("encodable");
    out.freeze()
}

fn produce_decode(c: &mut Criterion) {
    let bytes = produce_request_bytes();
    let mut group = c.benchmark_group("produce_request_decode");
    group.throughput(Throughput::Bytes(bytes.len() as u64));
    group.bench_function("16x16KiB", |b| {
        b.iter(|| {
            let mut buf = bytes.clone();
            ProduceRequest::decode(&mut buf, PRODUCE_VERSION).expect("decodable")
        })
    });
    group.finish();
}

fn fetch_encode(c: &mut Criterion) {
    let records = Bytes::from(vec![9u8; 1024 * 1024]);
    let partitions = (0..4)
        .map(|i| {
            PartitionData::default()
                .with_partition_index(i)
                .with_records(Some(records.slice(..256 * 1024)))
        })
        .collect();
    let response = FetchResponse::default().with_responses(vec![FetchableTopicResponse::default()
        .with_topic(TopicName(StrBytes::from_static_str("bench")))
        .with_partitions(partitions)]);
    let size = response.compute_size(FETCH_VERSION).expect("sizable");
    let mut group = c.benchmark_group("fetch_response_encode");
    group.throughput(Throughput::Bytes(size as u64));
    // What the codec does alone: every record byte copied into one buffer (pinlog's path before 8f0dc5e).
    group.bench_function("4x256KiB_copied", |b| {
        b.iter(|| {
            let mut out = BytesMut::with_capacity(size);
            response.encode(&mut out, FETCH_VERSION).expect("encodable");
            out
        })
    });
    // What the server sends: a frame that refers to the record sets (pinlog_net::response).
    let mut referring = response.clone();
    let mut referred = Vec::new();
    for p in &mut referring.responses[0].partitions {
        let records = p.records.take().expect("records").into();
        let (written, by_reference) = pinlog_net::response::ByReference::plan(records);
        p.records = Some(written);
        referred.extend(by_reference);
    }
    group.bench_function("4x256KiB_referring", |b| {
        b.iter(|| {
            pinlog_net::api::encode_referring(7, FETCH_VERSION, &referring, referred.clone())
                .expect("encodable")
        })
    });
    group.finish();
}

/// Time per message through a bounded shared_channel between two executors (the shard mesh's transport).
fn spsc_handoff(c: &mut Criterion) {
    let mut group = c.benchmark_group("spsc_handoff");
    group.throughput(Throughput::Elements(1));
    group.bench_function("shared_channel_u64", |b| {
        b.iter_custom(|iterations| {
            let (tx, rx) = shared_channel::new_bounded::<u64>(1024);
            let consumer = LocalExecutorBuilder::new(Placement::Unbound)
                .io_memory(0)
                .spawn(move || async move {
                    let rx = rx.connect().await;
                    let mut sum = 0u64;
                    while let Some(v) = rx.recv().await {
                        sum = sum.wrapping_add(v);
                    }
                    sum
                })
                .expect("consumer executor");
            let producer = LocalExecutorBuilder::new(Placement::Unbound)
                .io_memory(0)
                .spawn(move || async move {
                    let tx = tx.connect().await;
                    let start = Instant::now();
                    for i in 0..iterations {
                        tx.send(i).await.expect("receiver alive");
                    }
                    drop(tx);
                    start.elapsed()
                })
                .expect("producer executor");
            let elapsed: Duration = producer.join().expect("producer ran");
            black_box(consumer.join().expect("consumer ran"));
            elapsed
        })
    });
    group.finish();
}

/// A produce batch as the engine receives it: 16 records of 1 KiB (one librdkafka batch at linger).
fn produce_batch() -> Vec<u8> {
    let mut builder = pinlog_bench::native::batch::BatchBuilder::with_capacity(32 * 1024);
    let value = vec![0x42u8; 1024];
    for i in 0..16 {
        builder.push(1_700_000_000_000 + i, Some(b"key"), &value);
    }
    builder.finish().to_vec()
}

/// Batch validation on append: header checks plus CRC-32C over the batch.
fn batch_validate(c: &mut Criterion) {
    let batch = produce_batch();
    let mut group = c.benchmark_group("engine");
    group.throughput(Throughput::Bytes(batch.len() as u64));
    group.bench_function("validate_16x1KiB", |b| {
        b.iter(|| bench_support::validate(black_box(&batch), 1 << 20).expect("valid batch"))
    });
    // Offset assignment: the base offset and leader epoch written into the batch header (outside the CRC).
    let mut stored = batch.clone();
    let mut next = 0i64;
    group.bench_function("assign_offsets_16x1KiB", |b| {
        b.iter(|| {
            bench_support::patch(black_box(&mut stored), next, 3);
            next += 16;
        })
    });
    group.finish();
}

/// Offset index lookup in a full 1 GiB segment indexed every 4 KiB (262,144 entries), as a fetch does per read.
fn index_lookup(c: &mut Criterion) {
    let mut index = bench_support::OffsetIndex::default();
    let entries = (1u32 << 30) / 4096;
    for i in 0..entries {
        index.push(i * 4, i * 4096);
    }
    let mut probe = 0u32;
    c.bench_function("engine/index_lookup_262144", |b| {
        b.iter(|| {
            probe = probe.wrapping_mul(1_103_515_245).wrapping_add(12_345) % (entries * 4);
            black_box(index.lookup(black_box(probe)))
        })
    });
}

criterion_group!(
    hot_paths,
    crc32c,
    produce_decode,
    fetch_encode,
    spsc_handoff,
    batch_validate,
    index_lookup
);
criterion_main!(hot_paths);
