//! Side-by-side comparison of two or more result files, as a Markdown table with each column's ratio to the first
//! (the baseline), plus one percentile chart with every run's publish latency curve.

use std::fmt::Write;
use std::path::Path;

use crate::error::BenchError;
use crate::plot::{curve_line, percentile_chart};
use crate::result::BenchResult;

/// A compared figure: its name and how to read it from a result.
type Metric = (&'static str, fn(&BenchResult) -> Option<f64>);

const METRICS: &[Metric] = &[
    ("produce records/s", |r| Some(r.produce.records_s)),
    ("produce MB/s", |r| Some(r.produce.mb_s)),
    ("consume records/s", |r| Some(r.consume.records_s)),
    ("consume MB/s", |r| Some(r.consume.mb_s)),
    ("publish p50 ms", |r| Some(r.publish_latency_ms.p50)),
    ("publish p99 ms", |r| Some(r.publish_latency_ms.p99)),
    ("publish p99.9 ms", |r| Some(r.publish_latency_ms.p999)),
    ("publish max ms", |r| Some(r.publish_latency_ms.max)),
    ("produce request round trip p50 ms", |r| {
        r.produce_request_rtt_ms.map(|p| p.p50)
    }),
    ("produce request round trip p99 ms", |r| {
        r.produce_request_rtt_ms.map(|p| p.p99)
    }),
    ("librdkafka round trip p99 ms (median second)", |r| {
        r.librdkafka.and_then(|w| w.rtt_p99_ms).map(|s| s.median_ms)
    }),
    ("librdkafka producer queue p99 ms (median second)", |r| {
        r.librdkafka
            .and_then(|w| w.queue_p99_ms)
            .map(|s| s.median_ms)
    }),
    ("end-to-end p50 ms", |r| Some(r.e2e_latency_ms.p50)),
    ("end-to-end p99 ms", |r| Some(r.e2e_latency_ms.p99)),
    ("end-to-end p99.9 ms", |r| Some(r.e2e_latency_ms.p999)),
    ("client cores", |r| Some(r.cpu.client_cores)),
    ("server cores", |r| r.cpu.server_cores),
    ("other processes' cores", |r| r.cpu.other_process_cores),
    ("steal cores", |r| r.cpu.steal_cores),
    ("server peak resident MB", |r| {
        r.server_memory.map(|m| m.peak_rss_bytes as f64 / 1e6)
    }),
    ("produce MB/s per server core", |r| {
        r.cpu
            .server_cores
            .filter(|c| *c > 0.0)
            .map(|c| r.produce.mb_s / c)
    }),
    ("produce_to_disk_ratio", |r| r.produce_to_disk_ratio),
    ("disk alone p99 ms (same rate)", |r| {
        r.disk_floor.as_ref().map(|f| f.latency_ms.p99)
    }),
    ("publish p99 / disk alone p99", |r| {
        r.disk_floor
            .as_ref()
            .filter(|f| f.latency_ms.p99 > 0.0)
            .map(|f| r.publish_latency_ms.p99 / f.latency_ms.p99)
    }),
    ("protocol floor publish p99 ms (same rate)", |r| {
        r.protocol_floor.as_ref().map(|f| f.publish_latency_ms.p99)
    }),
];

fn cell(v: Option<f64>) -> String {
    match v {
        None => "-".into(),
        Some(x) if x.abs() >= 1000.0 => format!("{x:.0}"),
        Some(x) => format!("{x:.3}"),
    }
}

/// The comparison table; the first result is the baseline of the ratio columns.
pub fn table(results: &[BenchResult]) -> String {
    let mut out = String::new();
    let heads: Vec<String> = results
        .iter()
        .map(|r| format!("{} / {} / {}", r.broker.name, r.driver, r.workload.name))
        .collect();
    let _ = write!(out, "| metric |");
    for (i, h) in heads.iter().enumerate() {
        let _ = write!(out, " {h} |");
        if i > 0 {
            let _ = write!(out, " ratio |");
        }
    }
    let _ = writeln!(out);
    let _ = writeln!(out, "|---|{}", "---|".repeat(2 * results.len() - 1));
    for (name, get) in METRICS {
        let base = results.first().and_then(get);
        let _ = write!(out, "| {name} |");
        for (i, r) in results.iter().enumerate() {
            let v = get(r);
            let _ = write!(out, " {} |", cell(v));
            if i > 0 {
                let ratio = match (v, base) {
                    (Some(v), Some(b)) if b != 0.0 => Some(v / b),
                    _ => None,
                };
                let _ = write!(
                    out,
                    " {} |",
                    ratio.map_or("-".into(), |x| format!("{x:.2}x"))
                );
            }
        }
        let _ = writeln!(out);
    }
    out
}

/// Loads the files, writes the table to stdout and, with `out_stem`, `<stem>.md` and `<stem>-percentiles.svg`.
pub fn compare(files: &[&Path], out_stem: Option<&Path>) -> Result<String, BenchError> {
    let results = files
        .iter()
        .map(|f| BenchResult::load(f))
        .collect::<Result<Vec<_>, _>>()?;
    let text = table(&results);
    if let Some(stem) = out_stem {
        let md = stem.with_extension("md");
        std::fs::write(&md, &text)
            .map_err(|e| BenchError::io(format!("writing {}", md.display()), e))?;
        let lines: Vec<_> = results
            .iter()
            .map(|r| {
                curve_line(
                    &format!("{} / {} publish", r.broker.name, r.driver),
                    &r.publish_latency_curve,
                )
            })
            .collect();
        let mut name = stem.file_name().unwrap_or_default().to_os_string();
        name.push("-percentiles.svg");
        percentile_chart(
            &stem.with_file_name(name),
            "Publish latency percentiles",
            &lines,
        )?;
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::result::sample_result;

    #[test]
    fn ratios_are_against_the_first_result() {
        let a = sample_result();
        let mut b = sample_result();
        b.broker.name = "kafka".into();
        b.produce.mb_s = a.produce.mb_s / 2.0;
        b.cpu.server_cores = None;
        let t = table(&[a, b]);
        assert!(
            t.contains("| pinlog / native / sample | kafka / native / sample | ratio |"),
            "{t}"
        );
        assert!(
            t.contains("| produce MB/s | 102.400 | 51.200 | 0.50x |"),
            "{t}"
        );
        assert!(t.contains("| server cores | 1.000 | - | - |"), "{t}");
    }

    #[test]
    fn writes_markdown_and_svg() {
        let tmp = tempfile::tempdir_in(env!("CARGO_MANIFEST_DIR")).unwrap();
        let (a, b) = (tmp.path().join("a.json"), tmp.path().join("b.json"));
        sample_result().save(&a).unwrap();
        sample_result().save(&b).unwrap();
        let stem = tmp.path().join("cmp");
        let text = compare(&[&a, &b], Some(&stem)).unwrap();
        assert!(text.contains("1.00x"));
        assert!(tmp.path().join("cmp.md").exists());
        assert!(tmp.path().join("cmp-percentiles.svg").exists());
    }
}
