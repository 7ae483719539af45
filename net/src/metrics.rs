//! Operator metrics of one shard: counters, gauges and latency histograms.
//!
//! Each shard writes only its own `ShardMetrics` (relaxed atomics: no lock, no cache line shared with another
//! writer); the metrics endpoint reads all shards' and renders the Prometheus text format. Recording is a couple
//! of atomic adds, cheap enough for the request path.

use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::messages::ApiKey;
use pinlog_engine::{LatencyHistogram, StorageMetrics};

use crate::api::SUPPORTED_APIS;

#[derive(Default)]
pub struct ShardMetrics {
    pub connections_open: AtomicU64,
    pub connections_refused_total: AtomicU64,
    pub connections_closed_on_error_total: AtomicU64,
    /// Requests started but not yet answered, over all connections (the pipelines' depth).
    pub requests_in_flight: AtomicU64,
    /// Requests waiting for another shard's answer (the mesh queue depth).
    pub mesh_pending: AtomicU64,
    pub produce_bytes_total: AtomicU64,
    /// Retried idempotent batches answered with their original offsets instead of being appended again.
    pub produce_duplicate_batches_total: AtomicU64,
    pub fetch_bytes_total: AtomicU64,
    /// Incremental fetch sessions held, and those evicted to make room for new ones.
    pub fetch_sessions: AtomicU64,
    pub fetch_session_evictions_total: AtomicU64,
    pub partitions_open: AtomicU64,
    requests_total: [AtomicU64; SUPPORTED_APIS.len()],
    request_latency: [LatencyHistogram; SUPPORTED_APIS.len()],
    /// Recorded by the shard's partition logs (group commit write and fdatasync latency).
    pub storage: Arc<StorageMetrics>,
}

impl ShardMetrics {
    pub fn new() -> Arc<ShardMetrics> {
        Arc::new(ShardMetrics::default())
    }

    /// One request of `api` answered after `elapsed` (from decode to the response being ready).
    pub fn request_done(&self, api: ApiKey, elapsed: Duration) {
        if let Some(i) = SUPPORTED_APIS.iter().position(|(k, _, _)| *k == api) {
            self.requests_total[i].fetch_add(1, Relaxed);
            self.request_latency[i].record(elapsed);
        }
    }
}

/// Picks one counter or gauge out of a shard's metrics.
type Field = fn(&ShardMetrics) -> &AtomicU64;

/// Picks one latency histogram out of a shard's storage metrics.
type StorageHistogram = fn(&StorageMetrics) -> &LatencyHistogram;
/// Picks one of a shard's storage counters or gauges.
type StorageValue = fn(&StorageMetrics) -> &AtomicU64;

/// Renders every shard's metrics in the Prometheus text exposition format.
pub fn render(shards: &[Arc<ShardMetrics>]) -> String {
    let mut out = String::new();
    let gauges: [(&str, &str, Field); 11] = [
        ("pinlog_connections_open", "gauge", |m| &m.connections_open),
        ("pinlog_connections_refused_total", "counter", |m| {
            &m.connections_refused_total
        }),
        ("pinlog_connections_closed_on_error_total", "counter", |m| {
            &m.connections_closed_on_error_total
        }),
        ("pinlog_requests_in_flight", "gauge", |m| {
            &m.requests_in_flight
        }),
        ("pinlog_mesh_pending_requests", "gauge", |m| &m.mesh_pending),
        ("pinlog_produce_bytes_total", "counter", |m| {
            &m.produce_bytes_total
        }),
        ("pinlog_produce_duplicate_batches_total", "counter", |m| {
            &m.produce_duplicate_batches_total
        }),
        ("pinlog_fetch_bytes_total", "counter", |m| {
            &m.fetch_bytes_total
        }),
        ("pinlog_fetch_sessions", "gauge", |m| &m.fetch_sessions),
        ("pinlog_fetch_session_evictions_total", "counter", |m| {
            &m.fetch_session_evictions_total
        }),
        ("pinlog_partitions_open", "gauge", |m| &m.partitions_open),
    ];
    for (name, kind, get) in gauges {
        let _ = writeln!(out, "# TYPE {name} {kind}");
        for (shard, m) in shards.iter().enumerate() {
            let _ = writeln!(out, "{name}{{shard=\"{shard}\"}} {}", get(m).load(Relaxed));
        }
    }
    // Each family's samples form one group after its `# TYPE` line, as the exposition format requires.
    let per_api = |shard: usize, api: ApiKey| format!("shard=\"{shard}\",api=\"{api:?}\"");
    let _ = writeln!(out, "# TYPE pinlog_requests_total counter");
    for (shard, m) in shards.iter().enumerate() {
        for (i, (api, _, _)) in SUPPORTED_APIS.iter().enumerate() {
            let labels = per_api(shard, *api);
            let total = m.requests_total[i].load(Relaxed);
            let _ = writeln!(out, "pinlog_requests_total{{{labels}}} {total}");
        }
    }
    // Only APIs a shard has answered get a latency histogram: 89 buckets for each of every shard's APIs would make
    // a scrape mostly zeros (460 KB on 2 shards). The counter above shows every API, answered or not.
    let _ = writeln!(out, "# TYPE pinlog_request_latency_seconds histogram");
    for (shard, m) in shards.iter().enumerate() {
        for (i, (api, _, _)) in SUPPORTED_APIS.iter().enumerate() {
            if m.requests_total[i].load(Relaxed) == 0 {
                continue;
            }
            let labels = per_api(shard, *api);
            m.request_latency[i].write_prometheus(
                &mut out,
                "pinlog_request_latency_seconds",
                &labels,
            );
        }
    }
    let storage_values: [(&str, &str, StorageValue); 7] = [
        ("pinlog_storage_written_bytes_total", "counter", |s| {
            &s.written_bytes_total
        }),
        (
            "pinlog_storage_write_buffers_outside_arena_total",
            "counter",
            |s| &s.write_buffers_outside_arena_total,
        ),
        ("pinlog_storage_commits_split_total", "counter", |s| {
            &s.commits_split_total
        }),
        ("pinlog_storage_segments_recycled_total", "counter", |s| {
            &s.segments_recycled_total
        }),
        ("pinlog_storage_deleted_partitions_pending", "gauge", |s| {
            &s.deleted_partitions_pending
        }),
        ("pinlog_storage_tail_cache_bytes", "gauge", |s| {
            &s.tail_cache_bytes
        }),
        (
            "pinlog_storage_tail_cache_shed_bytes_total",
            "counter",
            |s| &s.tail_cache_shed_bytes_total,
        ),
    ];
    for (name, kind, get) in storage_values {
        let _ = writeln!(out, "# TYPE {name} {kind}");
        for (shard, m) in shards.iter().enumerate() {
            let value = get(&m.storage).load(Relaxed);
            let _ = writeln!(out, "{name}{{shard=\"{shard}\"}} {value}");
        }
    }
    let storage_histograms: [(&str, StorageHistogram); 3] = [
        ("pinlog_storage_write_latency_seconds", |s| &s.write_latency),
        ("pinlog_storage_fdatasync_latency_seconds", |s| {
            &s.fdatasync_latency
        }),
        ("pinlog_storage_commit_latency_seconds", |s| {
            &s.commit_latency
        }),
    ];
    for (name, get) in storage_histograms {
        let _ = writeln!(out, "# TYPE {name} histogram");
        for (shard, m) in shards.iter().enumerate() {
            get(&m.storage).write_prometheus(&mut out, name, &format!("shard=\"{shard}\""));
        }
    }
    out
}

/// Serves `GET /metrics` on `addr` from a plain thread (scrapes are rare; this keeps them off the shards).
pub fn serve(
    addr: SocketAddr,
    shards: Vec<Arc<ShardMetrics>>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    let listener = TcpListener::bind(addr)?;
    tracing::info!(%addr, "metrics endpoint listening (GET /metrics)");
    std::thread::Builder::new().name("metrics".into()).spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
            let _ = stream.set_write_timeout(Some(Duration::from_secs(5)));
            let mut request = [0u8; 1024];
            let _ = stream.read(&mut request);
            let body = render(&shards);
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_and_storage_metrics_render() {
        let m = ShardMetrics::new();
        m.request_done(ApiKey::Produce, Duration::from_micros(10));
        m.request_done(ApiKey::Produce, Duration::from_micros(20));
        m.request_done(ApiKey::Produce, Duration::from_secs(1000));
        m.storage
            .fdatasync_latency
            .record(Duration::from_micros(300));
        m.storage.commit_latency.record(Duration::from_millis(3));
        m.storage.written_bytes_total.fetch_add(4096, Relaxed);
        m.storage
            .write_buffers_outside_arena_total
            .fetch_add(2, Relaxed);
        let text = render(&[m]);
        assert!(
            text.contains("pinlog_requests_total{shard=\"0\",api=\"Produce\"} 3"),
            "{text}"
        );
        assert!(text.contains(
            "pinlog_request_latency_seconds_bucket{shard=\"0\",api=\"Produce\",le=\"+Inf\"} 3"
        ));
        assert!(
            text.contains("pinlog_requests_total{shard=\"0\",api=\"Fetch\"} 0"),
            "every API's counter, answered or not"
        );
        assert!(
            !text.contains("pinlog_request_latency_seconds_count{shard=\"0\",api=\"Fetch\"}"),
            "no latency histogram for an API never answered"
        );
        assert!(text.contains("pinlog_storage_written_bytes_total{shard=\"0\"} 4096\n"));
        assert!(text.contains("pinlog_storage_segments_recycled_total{shard=\"0\"} 0\n"));
        assert!(text.contains(
            "# TYPE pinlog_storage_write_buffers_outside_arena_total counter\npinlog_storage_write_buffers_outside_arena_total{shard=\"0\"} 2\n"
        ));
        assert!(text.contains(
            "# TYPE pinlog_storage_deleted_partitions_pending gauge\npinlog_storage_deleted_partitions_pending{shard=\"0\"} 0\n"
        ));
        assert!(text.contains(
            "pinlog_storage_fdatasync_latency_seconds_bucket{shard=\"0\",le=\"0.000256\"} 0\n"
        ));
        assert!(text.contains(
            "pinlog_storage_fdatasync_latency_seconds_bucket{shard=\"0\",le=\"0.000512\"} 1\n"
        ));
        assert!(text.contains("pinlog_storage_write_latency_seconds_count{shard=\"0\"} 0\n"));
        assert!(text.contains(
            "pinlog_storage_commit_latency_seconds_bucket{shard=\"0\",le=\"0.003072\"} 1\n"
        ));
    }

    /// The text format wants one `# TYPE` per family, before all of its samples, which form one group.
    #[test]
    fn each_family_is_one_group_after_its_type_line() {
        let shards = [ShardMetrics::new(), ShardMetrics::new()];
        let text = render(&shards);
        let mut typed: Vec<&str> = Vec::new();
        let mut current: Option<&str> = None;
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let family = rest.split(' ').next().unwrap_or_default();
                assert!(!typed.contains(&family), "second TYPE line for {family}");
                typed.push(family);
                current = Some(family);
                continue;
            }
            let name = line.split(['{', ' ']).next().unwrap_or_default();
            let family = current.unwrap_or_else(|| panic!("sample before any TYPE: {line}"));
            let belongs = name == family
                || ["_bucket", "_sum", "_count"]
                    .iter()
                    .any(|suffix| name.strip_suffix(suffix) == Some(family));
            assert!(belongs, "{name} sits in the group of {family}");
        }
        assert!(typed.contains(&"pinlog_requests_total"));
        assert!(typed.contains(&"pinlog_request_latency_seconds"));
    }
}
