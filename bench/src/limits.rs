//! The machine's physical limits, measured with fio and iperf3, so every result can say what fraction of the hardware
//! the broker reached: sequential O_DIRECT write and read bandwidth (1 MiB blocks), 4 KiB write + fdatasync latency,
//! and loopback TCP bandwidth.
//!
//! fio runs on the broker's data directory (a tmpfs would lie: no O_DIRECT, no real fdatasync). Its buffers are on
//! transparent huge pages ([`FIO_HUGE_PAGE_BUFFERS`]), as pinlog's are (`shard_io_memory_bytes`): the limit is the
//! best the disk does, not what scattered 4 KiB pages let it do. The figures are cached in a JSON file for an hour
//! ([`CACHE_MAX_AGE_S`]) so smoke runs do not re-run fio.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::BenchError;

/// Cached limits younger than this are reused.
pub const CACHE_MAX_AGE_S: u64 = 3600;
/// File size of the sequential write test.
const FIO_SEQ_SIZE: &str = "1g";
/// Length of the fdatasync latency test.
const FIO_SYNC_RUNTIME_S: u32 = 5;
/// Length of the iperf3 test.
const IPERF_SECONDS: u32 = 3;
/// glibc ≥ 2.35 then backs fio's large buffers (malloc'd by mmap) with transparent huge pages; older ones ignore it.
/// An O_DIRECT write of a physically contiguous buffer reaches the device as a few large segments instead of one per
/// 4 KiB page. On the Firecracker VM of 2026-12-04 (virtio disk) it raised fio's sequential write from 350–386 to
/// 623–626 MB/s.
const FIO_HUGE_PAGE_BUFFERS: (&str, &str) = ("GLIBC_TUNABLES", "glibc.malloc.hugetlb=1");
/// Port iperf3 listens on, on loopback only.
const IPERF_PORT: u16 = 52_011;

/// The measured limits (fields are `None` when a tool was missing or failed; `notes` says why).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Limits {
    pub measured_at_unix: u64,
    pub data_dir: String,
    /// fio sequential write, 1 MiB blocks, O_DIRECT, io_uring (libaio if unavailable), queue depth 32.
    pub fio_seq_write_mb_s: Option<f64>,
    /// The same at queue depth 1.
    pub fio_seq_write_qd1_mb_s: Option<f64>,
    /// fio sequential read of the QD32 file, 1 MiB blocks, O_DIRECT, queue depth 32: the ceiling of a catch-up read.
    pub fio_seq_read_mb_s: Option<f64>,
    /// fio 4 KiB buffered write followed by fdatasync, fdatasync latency.
    pub fdatasync_p50_ms: Option<f64>,
    pub fdatasync_p99_ms: Option<f64>,
    /// iperf3, one TCP stream on 127.0.0.1.
    pub iperf3_loopback_gbit_s: Option<f64>,
    pub notes: Vec<String>,
}

fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Limits {
    /// Cached limits for `data_dir` if fresh enough, else measures and caches them.
    pub fn cached_or_measure(
        cache: &Path,
        data_dir: &Path,
        force: bool,
    ) -> Result<Limits, BenchError> {
        if !force {
            if let Some(l) = Limits::read_cache(cache, data_dir) {
                return Ok(l);
            }
        }
        let limits = Limits::measure(data_dir)?;
        if let Some(parent) = cache.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| BenchError::io(format!("creating {}", parent.display()), e))?;
        }
        let text = serde_json::to_string_pretty(&limits).expect("limits serialize");
        std::fs::write(cache, text)
            .map_err(|e| BenchError::io(format!("writing {}", cache.display()), e))?;
        Ok(limits)
    }

    fn read_cache(cache: &Path, data_dir: &Path) -> Option<Limits> {
        let limits: Limits = serde_json::from_str(&std::fs::read_to_string(cache).ok()?).ok()?;
        let fresh = now_unix().saturating_sub(limits.measured_at_unix) < CACHE_MAX_AGE_S;
        let same_dir = limits.data_dir == data_dir.display().to_string();
        (fresh && same_dir && limits.fio_seq_write_mb_s.is_some()).then_some(limits)
    }

    /// Runs fio and iperf3 now.
    pub fn measure(data_dir: &Path) -> Result<Limits, BenchError> {
        let dir = data_dir.join("fio-limits");
        std::fs::create_dir_all(&dir)
            .map_err(|e| BenchError::io(format!("creating {}", dir.display()), e))?;
        let mut limits = Limits {
            measured_at_unix: now_unix(),
            data_dir: data_dir.display().to_string(),
            ..Limits::default()
        };
        let engine = if fio_has_engine("io_uring") {
            "io_uring"
        } else {
            "libaio"
        };
        for (rw, depth, field) in [
            (Seq::Write, 32, &mut limits.fio_seq_write_mb_s),
            (Seq::Read, 32, &mut limits.fio_seq_read_mb_s),
            (Seq::Write, 1, &mut limits.fio_seq_write_qd1_mb_s),
        ] {
            match fio_seq(&dir, engine, depth, rw) {
                Ok(mb) => *field = Some(mb),
                Err(e) => limits.notes.push(e.to_string()),
            }
        }
        match fio_fdatasync(&dir) {
            Ok((p50, p99)) => {
                limits.fdatasync_p50_ms = Some(p50);
                limits.fdatasync_p99_ms = Some(p99);
            }
            Err(e) => limits.notes.push(e.to_string()),
        }
        match iperf3_loopback() {
            Ok(g) => limits.iperf3_loopback_gbit_s = Some(g),
            Err(e) => limits.notes.push(e.to_string()),
        }
        limits.notes.push(format!(
            "fio ioengine {engine}, buffers on transparent huge pages ({}={})",
            FIO_HUGE_PAGE_BUFFERS.0, FIO_HUGE_PAGE_BUFFERS.1
        ));
        let _ = std::fs::remove_dir_all(&dir);
        Ok(limits)
    }
}

fn tool_error(tool: &str, reason: impl ToString) -> BenchError {
    BenchError::Tool {
        tool: tool.to_string(),
        reason: reason.to_string(),
    }
}

fn run_json(tool: &str, cmd: &mut Command) -> Result<Value, BenchError> {
    let out = cmd.stdin(Stdio::null()).output().map_err(|e| {
        tool_error(
            tool,
            format!("cannot start (run bench/install-deps.sh): {e}"),
        )
    })?;
    if !out.status.success() {
        return Err(tool_error(
            tool,
            String::from_utf8_lossy(&out.stderr).trim().to_string(),
        ));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    // fio may print notes before its JSON.
    let start = text
        .find('{')
        .ok_or_else(|| tool_error(tool, "no JSON output"))?;
    serde_json::from_str(&text[start..]).map_err(|e| tool_error(tool, format!("bad JSON: {e}")))
}

fn fio_has_engine(engine: &str) -> bool {
    Command::new("fio")
        .arg("--enghelp")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).contains(engine))
        .unwrap_or(false)
}

/// Direction of a sequential fio run.
#[derive(Clone, Copy)]
enum Seq {
    Write,
    Read,
}

impl Seq {
    /// fio's `--rw` value and the key of its figures in the JSON output.
    fn name(self) -> &'static str {
        match self {
            Seq::Write => "write",
            Seq::Read => "read",
        }
    }
}

/// Sequential O_DIRECT bandwidth in MB/s (10^6 bytes).
fn fio_seq(dir: &Path, engine: &str, depth: u32, rw: Seq) -> Result<f64, BenchError> {
    let json = run_json(
        "fio",
        Command::new("fio")
            // Writes get a fresh file per depth, so neither run overwrites blocks the other already wrote; the read
            // names the QD32 file, so it reads what that write left.
            .arg(format!("--name=seqwrite-qd{depth}"))
            .arg(format!("--directory={}", dir.display()))
            .arg(format!("--rw={}", rw.name()))
            .args(["--bs=1m", "--direct=1", "--numjobs=1", "--end_fsync=1"])
            .arg(format!("--size={FIO_SEQ_SIZE}"))
            .arg(format!("--ioengine={engine}"))
            .arg(format!("--iodepth={depth}"))
            .arg("--output-format=json")
            .env(FIO_HUGE_PAGE_BUFFERS.0, FIO_HUGE_PAGE_BUFFERS.1),
    )?;
    seq_mb_s(&json, rw)
        .ok_or_else(|| tool_error("fio", format!("no {} bandwidth in output", rw.name())))
}

/// `jobs[0].<write|read>.bw_bytes` in MB/s.
fn seq_mb_s(json: &Value, rw: Seq) -> Option<f64> {
    let bw = json["jobs"][0][rw.name()]["bw_bytes"].as_f64()?;
    Some(bw / 1e6)
}

/// 4 KiB writes each followed by fdatasync; (p50, p99) of the fdatasync in ms.
fn fio_fdatasync(dir: &Path) -> Result<(f64, f64), BenchError> {
    let json = run_json(
        "fio",
        Command::new("fio")
            .arg("--name=fdatasync")
            .arg(format!("--directory={}", dir.display()))
            .args([
                "--rw=write",
                "--bs=4k",
                "--size=64m",
                "--ioengine=sync",
                "--fdatasync=1",
                "--time_based",
            ])
            .arg(format!("--runtime={FIO_SYNC_RUNTIME_S}"))
            .arg("--output-format=json"),
    )?;
    sync_percentiles_ms(&json).ok_or_else(|| tool_error("fio", "no fdatasync latency in output"))
}

/// `jobs[0].sync.lat_ns.percentile` p50 and p99 in ms.
pub fn sync_percentiles_ms(json: &Value) -> Option<(f64, f64)> {
    let pct = &json["jobs"][0]["sync"]["lat_ns"]["percentile"];
    let p50 = pct["50.000000"].as_f64()?;
    let p99 = pct["99.000000"].as_f64()?;
    Some((p50 / 1e6, p99 / 1e6))
}

/// One TCP stream over loopback, Gbit/s received.
fn iperf3_loopback() -> Result<f64, BenchError> {
    let mut server = Command::new("iperf3")
        .args(["-s", "-1", "-B", "127.0.0.1", "-p"])
        .arg(IPERF_PORT.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| {
            tool_error(
                "iperf3",
                format!("cannot start server (run bench/install-deps.sh): {e}"),
            )
        })?;
    // The server needs a moment to listen; the client retries its connection for up to a second.
    let mut result = Err(tool_error("iperf3", "client never connected"));
    for _ in 0..10 {
        std::thread::sleep(Duration::from_millis(100));
        result = run_json(
            "iperf3",
            Command::new("iperf3")
                .args(["-c", "127.0.0.1", "-J", "-p"])
                .arg(IPERF_PORT.to_string())
                .arg("-t")
                .arg(IPERF_SECONDS.to_string()),
        );
        if result.is_ok() {
            break;
        }
    }
    let _ = server.kill();
    let _ = server.wait();
    let json = result?;
    json["end"]["sum_received"]["bits_per_second"]
        .as_f64()
        .map(|b| b / 1e9)
        .ok_or_else(|| tool_error("iperf3", "no bits_per_second in output"))
}

/// Default cache location: `bench/results/limits.json` of this source tree.
pub fn default_cache() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("results")
        .join("limits.json")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_fio_json() {
        let json: Value = serde_json::from_str(
            r#"{"jobs":[{"write":{"bw_bytes":1350000000},"read":{"bw_bytes":1400000000},"sync":{"lat_ns":{"percentile":
               {"50.000000":180000,"99.000000":4200000}}}}]}"#,
        )
        .unwrap();
        assert_eq!(seq_mb_s(&json, Seq::Write), Some(1350.0));
        assert_eq!(seq_mb_s(&json, Seq::Read), Some(1400.0));
        assert_eq!(sync_percentiles_ms(&json), Some((0.18, 4.2)));
        assert_eq!(seq_mb_s(&Value::Null, Seq::Write), None);
    }

    #[test]
    fn cache_is_reused_only_when_fresh_and_for_the_same_dir() {
        let tmp = tempfile::tempdir_in(env!("CARGO_MANIFEST_DIR")).unwrap();
        let cache = tmp.path().join("limits.json");
        let mut l = Limits {
            measured_at_unix: now_unix(),
            data_dir: "/data/a".into(),
            fio_seq_write_mb_s: Some(1000.0),
            ..Limits::default()
        };
        std::fs::write(&cache, serde_json::to_string(&l).unwrap()).unwrap();
        assert_eq!(
            Limits::read_cache(&cache, Path::new("/data/a")),
            Some(l.clone())
        );
        assert_eq!(Limits::read_cache(&cache, Path::new("/data/b")), None);
        l.measured_at_unix -= CACHE_MAX_AGE_S + 1;
        std::fs::write(&cache, serde_json::to_string(&l).unwrap()).unwrap();
        assert_eq!(Limits::read_cache(&cache, Path::new("/data/a")), None);
    }
}
