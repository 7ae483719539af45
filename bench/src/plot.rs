//! SVG plots of results (plotters' SVG backend: no fonts or image codecs needed): throughput over time, latency over
//! time, and the latency percentile curve, whose x axis is in "nines" (90%, 99%, 99.9%...) so the tail is visible.

use std::path::{Path, PathBuf};

use plotters::prelude::*;

use crate::error::BenchError;
use crate::result::BenchResult;
use crate::stats::CurvePoint;

const SIZE: (u32, u32) = (900, 500);
const COLORS: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
];

/// A named line of (x, y) points.
pub struct Line {
    pub name: String,
    pub points: Vec<(f64, f64)>,
}

fn plot_error(path: &Path) -> impl Fn(String) -> BenchError + '_ {
    move |reason| BenchError::Plot {
        path: path.display().to_string(),
        reason,
    }
}

/// Draws `lines` into an SVG file.
pub fn line_chart(
    path: &Path,
    title: &str,
    x_label: &str,
    y_label: &str,
    lines: &[Line],
) -> Result<(), BenchError> {
    let err = plot_error(path);
    let all = || lines.iter().flat_map(|l| l.points.iter());
    let x_max = all().map(|p| p.0).fold(1e-9, f64::max);
    let x_min = all().map(|p| p.0).fold(f64::INFINITY, f64::min).min(x_max);
    let y_max = all().map(|p| p.1).fold(1e-9, f64::max) * 1.1;
    let root = SVGBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(e.to_string()))?;
    let x_min = if x_min.is_finite() { x_min } else { 0.0 };
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(x_min..x_max, 0.0..y_max)
        .map_err(|e| err(e.to_string()))?;
    chart
        .configure_mesh()
        .x_desc(x_label)
        .y_desc(y_label)
        .draw()
        .map_err(|e| err(e.to_string()))?;
    // A figure the run did not measure (no broker metrics, the other driver's) gets no legend entry.
    for (i, line) in lines.iter().filter(|l| !l.points.is_empty()).enumerate() {
        let color = COLORS[i % COLORS.len()];
        chart
            .draw_series(LineSeries::new(
                line.points.iter().copied(),
                color.stroke_width(2),
            ))
            .map_err(|e| err(e.to_string()))?
            .label(line.name.clone())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(|e| err(e.to_string()))?;
    root.present().map_err(|e| err(e.to_string()))
}

/// Percentile -> "nines" (0% -> 0, 90% -> 1, 99% -> 2...), capped at 6 for the 100% point.
pub fn nines(percentile: f64) -> f64 {
    let rest = 1.0 - percentile / 100.0;
    if rest <= 1e-6 {
        6.0
    } else {
        -rest.log10()
    }
}

/// A percentile curve as plot points in nines.
pub fn curve_line(name: &str, curve: &[CurvePoint]) -> Line {
    Line {
        name: name.to_string(),
        points: curve.iter().map(|c| (nines(c.percentile), c.ms)).collect(),
    }
}

fn series_line(
    r: &BenchResult,
    name: &str,
    f: impl Fn(&crate::result::Second) -> Option<f64>,
) -> Line {
    Line {
        name: name.to_string(),
        points: r
            .series
            .iter()
            .filter_map(|s| f(s).map(|y| (f64::from(s.t_s), y)))
            .collect(),
    }
}

/// Writes `<stem>-throughput.svg`, `<stem>-latency.svg` and `<stem>-percentiles.svg` next to `stem`; returns them.
pub fn render(r: &BenchResult, stem: &Path) -> Result<Vec<PathBuf>, BenchError> {
    let path = |suffix: &str| {
        let mut name = stem.file_name().unwrap_or_default().to_os_string();
        name.push(suffix);
        stem.with_file_name(name)
    };
    let label = format!("{} / {} / {}", r.workload.name, r.broker.name, r.driver);
    let throughput = path("-throughput.svg");
    line_chart(
        &throughput,
        &format!("Throughput: {label}"),
        "second",
        "MB/s",
        &[
            series_line(r, "produce MB/s", |s| Some(s.produce_mb_s)),
            series_line(r, "consume MB/s", |s| Some(s.consume_mb_s)),
        ],
    )?;
    let latency = path("-latency.svg");
    line_chart(
        &latency,
        &format!("Latency over time: {label}"),
        "second",
        "ms",
        &[
            series_line(r, "publish p50", |s| s.publish_p50_ms),
            series_line(r, "publish p99", |s| s.publish_p99_ms),
            series_line(r, "end-to-end p50", |s| s.e2e_p50_ms),
            series_line(r, "end-to-end p99", |s| s.e2e_p99_ms),
            series_line(r, "server commit max", |s| s.server_commit_max_ms),
            series_line(r, "librdkafka round trip p99", |s| s.client_rtt_p99_ms),
            series_line(r, "librdkafka queue p99", |s| s.client_queue_p99_ms),
        ],
    )?;
    let percentiles = path("-percentiles.svg");
    percentile_chart(
        &percentiles,
        &format!("Latency percentiles: {label}"),
        &[
            curve_line("publish", &r.publish_latency_curve),
            curve_line("end-to-end", &r.e2e_latency_curve),
        ],
    )?;
    Ok(vec![throughput, latency, percentiles])
}

/// A percentile curve chart (x in nines: 1 = p90, 2 = p99, 3 = p99.9...).
pub fn percentile_chart(path: &Path, title: &str, lines: &[Line]) -> Result<(), BenchError> {
    line_chart(
        path,
        title,
        "percentile in nines (1 = p90, 2 = p99, 3 = p99.9, 6 = max)",
        "ms",
        lines,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::result::sample_result;

    #[test]
    fn nines_scale() {
        assert!((nines(90.0) - 1.0).abs() < 1e-9);
        assert!((nines(99.9) - 3.0).abs() < 1e-9);
        assert_eq!(nines(100.0), 6.0);
        assert_eq!(nines(0.0), 0.0);
    }

    #[test]
    fn renders_three_svgs() {
        let tmp = tempfile::tempdir_in(env!("CARGO_MANIFEST_DIR")).unwrap();
        let files = render(&sample_result(), &tmp.path().join("run")).unwrap();
        assert_eq!(files.len(), 3);
        for f in files {
            let text = std::fs::read_to_string(&f).unwrap();
            assert!(
                text.starts_with("<svg") && text.contains("polyline"),
                "{}",
                f.display()
            );
        }
    }

    #[test]
    fn empty_lines_still_render() {
        let tmp = tempfile::tempdir_in(env!("CARGO_MANIFEST_DIR")).unwrap();
        let path = tmp.path().join("empty.svg");
        line_chart(
            &path,
            "t",
            "x",
            "y",
            &[Line {
                name: "none".into(),
                points: Vec::new(),
            }],
        )
        .unwrap();
        assert!(std::fs::read_to_string(&path).unwrap().starts_with("<svg"));
    }
}
