//! Micro-benchmarks of the per-request hot functions, through the same code the server runs:
//! CRC-32C of record batches (the check every produced batch gets), the Kafka codecs on the request path (Produce
//! decode, Fetch response encode) and the SPSC hand-off between shards (glommio `shared_channel`).
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
    group.bench_function("4x256KiB", |b| {
        b.iter(|| {
            let mut out = BytesMut::with_capacity(size);
            response.encode(&mut out, FETCH_VERSION).expect("encodable");
            out
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

criterion_group!(
    hot_paths,
    crc32c,
    produce_decode,
    fetch_encode,
    spsc_handoff
);
criterion_main!(hot_paths);
