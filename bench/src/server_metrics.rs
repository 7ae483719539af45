//! The broker's own view of each second, from its Prometheus endpoint (pinlog's `--metrics-listen`): how long its
//! group commits took on the disk (write and sync). Beside the client's latency it tells a second the disk stalled
//! from one the broker or the client did. Only pinlog's histogram family is read; a peer without it leaves the
//! figures empty.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use crate::error::BenchError;

/// pinlog's group commit latency histogram (one per shard; the bench sums the shards).
pub const COMMIT_FAMILY: &str = "pinlog_storage_commit_latency_seconds";

/// A scrape must answer within this, or the second is left without server figures.
const SCRAPE_TIMEOUT: Duration = Duration::from_millis(500);

/// A response larger than this is not a metrics page.
const RESPONSE_BYTES_MAX: u64 = 16 << 20;

/// Cumulative bucket counts of one histogram family, summed over its label sets: `(upper bound s, count)` in bound
/// order, the last bound infinite.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Buckets(Vec<(f64, u64)>);

/// The endpoint of one broker.
pub struct ServerMetrics {
    addr: String,
}

impl ServerMetrics {
    pub fn new(addr: &str) -> ServerMetrics {
        ServerMetrics {
            addr: addr.to_string(),
        }
    }

    /// The commit latency histogram now.
    pub fn commits(&self) -> Result<Buckets, BenchError> {
        Ok(Buckets::parse(&self.scrape()?, COMMIT_FAMILY))
    }

    /// One `GET /metrics` (HTTP/1.0, the server closes the connection after its answer); returns the body.
    fn scrape(&self) -> Result<String, BenchError> {
        let failed = |what: String| BenchError::Tool {
            tool: format!("metrics endpoint {}", self.addr),
            reason: what,
        };
        let addr = self
            .addr
            .to_socket_addrs()
            .map_err(|e| failed(format!("address: {e}")))?
            .next()
            .ok_or_else(|| failed("address resolves to nothing".into()))?;
        let mut stream = TcpStream::connect_timeout(&addr, SCRAPE_TIMEOUT)
            .map_err(|e| failed(format!("connect: {e}")))?;
        stream
            .set_read_timeout(Some(SCRAPE_TIMEOUT))
            .and_then(|()| stream.set_write_timeout(Some(SCRAPE_TIMEOUT)))
            .and_then(|()| stream.write_all(b"GET /metrics HTTP/1.0\r\nConnection: close\r\n\r\n"))
            .map_err(|e| failed(format!("request: {e}")))?;
        let mut response = String::new();
        stream
            .take(RESPONSE_BYTES_MAX)
            .read_to_string(&mut response)
            .map_err(|e| failed(format!("response: {e}")))?;
        match response.split_once("\r\n\r\n") {
            Some((head, body))
                if head.starts_with("HTTP/1.1 200") || head.starts_with("HTTP/1.0 200") =>
            {
                Ok(body.to_string())
            }
            _ => Err(failed(format!(
                "answer is not a 200: {:?}",
                response.lines().next().unwrap_or("")
            ))),
        }
    }
}

impl Buckets {
    /// Sums `<family>_bucket{...,le="X"} N` lines over every label set.
    pub fn parse(text: &str, family: &str) -> Buckets {
        let prefix = format!("{family}_bucket{{");
        let mut sums: Vec<(f64, u64)> = Vec::new();
        for line in text.lines().filter(|l| l.starts_with(&prefix)) {
            let Some((labels, value)) = line[prefix.len()..].rsplit_once("} ") else {
                continue;
            };
            let Some(le) = labels
                .split("le=\"")
                .nth(1)
                .and_then(|r| r.split('"').next())
            else {
                continue;
            };
            let bound = match le {
                "+Inf" => f64::INFINITY,
                finite => match finite.parse::<f64>() {
                    Ok(b) => b,
                    Err(_) => continue,
                },
            };
            let Ok(count) = value.trim().parse::<u64>() else {
                continue;
            };
            match sums.iter_mut().find(|(b, _)| *b == bound) {
                Some((_, sum)) => *sum += count,
                None => sums.push((bound, count)),
            }
        }
        sums.sort_by(|a, b| a.0.total_cmp(&b.0));
        Buckets(sums)
    }

    /// The bucket bound (ms) under which a fraction `q` of the observations since `earlier` fall; `None` when there
    /// were none. An observation past the last finite bound counts at that bound (a lower limit).
    pub fn quantile_ms_since(&self, earlier: &Buckets, q: f64) -> Option<f64> {
        let delta: Vec<(f64, u64)> = self
            .0
            .iter()
            .map(|&(bound, count)| {
                let before = earlier
                    .0
                    .iter()
                    .find(|(b, _)| *b == bound)
                    .map_or(0, |e| e.1);
                (bound, count.saturating_sub(before))
            })
            .collect();
        let total = delta.last().map_or(0, |d| d.1);
        if total == 0 {
            return None;
        }
        let rank = (q * total as f64).ceil().max(1.0) as u64;
        let last_finite = delta
            .iter()
            .rev()
            .find(|d| d.0.is_finite())
            .map_or(0.0, |d| d.0);
        delta
            .iter()
            .find(|d| d.1 >= rank)
            .map(|d| if d.0.is_finite() { d.0 } else { last_finite } * 1e3)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAGE: &str = "\
# TYPE pinlog_storage_commit_latency_seconds histogram
pinlog_storage_commit_latency_seconds_bucket{shard=\"0\",le=\"0.001\"} 90
pinlog_storage_commit_latency_seconds_bucket{shard=\"0\",le=\"0.002\"} 99
pinlog_storage_commit_latency_seconds_bucket{shard=\"0\",le=\"+Inf\"} 100
pinlog_storage_commit_latency_seconds_bucket{shard=\"1\",le=\"0.001\"} 10
pinlog_storage_commit_latency_seconds_bucket{shard=\"1\",le=\"0.002\"} 100
pinlog_storage_commit_latency_seconds_bucket{shard=\"1\",le=\"+Inf\"} 100
pinlog_storage_commit_latency_seconds_sum{shard=\"0\"} 0.1
pinlog_storage_write_latency_seconds_bucket{shard=\"0\",le=\"0.001\"} 5
";

    #[test]
    fn shards_are_summed_per_bound_and_other_families_ignored() {
        let b = Buckets::parse(PAGE, COMMIT_FAMILY);
        assert_eq!(b.0, vec![(0.001, 100), (0.002, 199), (f64::INFINITY, 200)]);
    }

    #[test]
    fn quantiles_are_taken_over_the_difference_of_two_scrapes() {
        let later = Buckets::parse(PAGE, COMMIT_FAMILY);
        assert_eq!(later.quantile_ms_since(&Buckets::default(), 0.5), Some(1.0));
        assert_eq!(
            later.quantile_ms_since(&Buckets::default(), 0.99),
            Some(2.0)
        );
        // The one observation past 2 ms is reported at the last finite bound.
        assert_eq!(later.quantile_ms_since(&Buckets::default(), 1.0), Some(2.0));
        let earlier = Buckets(vec![(0.001, 100), (0.002, 150), (f64::INFINITY, 150)]);
        // Since `earlier`: 0 under 1 ms, 49 under 2 ms, 1 above.
        assert_eq!(later.quantile_ms_since(&earlier, 0.5), Some(2.0));
        assert_eq!(later.quantile_ms_since(&later, 0.99), None);
    }
}
