//! Text output: the live progress line while a run goes, and the summary table at its end.

use std::fmt::Write;
use std::sync::atomic::Ordering::Relaxed;

use crate::client_windows::WindowSummary;
use crate::disk_floor::Files;
use crate::result::{BenchResult, Second, GOAL_CATCHUP, OTHER_PROCESS_CORES_NOTABLE};
use crate::stats::Live;

/// One line, rewritten in place each second.
pub fn progress_line(
    phase: &str,
    at_s: u64,
    of_s: u64,
    live: &Live,
    second: Option<&Second>,
) -> String {
    let errors = live.produce_errors.load(Relaxed) + live.consume_errors.load(Relaxed);
    match second {
        Some(s) => format!(
            "[{phase} {at_s:>4}/{of_s}s] produce {:>10.0} rec/s {:>8.1} MB/s | consume {:>10.0} rec/s {:>8.1} MB/s | \
             client {:.2} cores{} | errors {errors}   ",
            s.produce_records_s,
            s.produce_mb_s,
            s.consume_records_s,
            s.consume_mb_s,
            s.client_cores,
            s.server_cores.map(|c| format!(", server {c:.2} cores")).unwrap_or_default(),
        ),
        None => format!(
            "[{phase} {at_s:>4}/{of_s}s] produced {} records, consumed {} records, errors {errors}   ",
            live.produced_records.load(Relaxed),
            live.consumed_records.load(Relaxed)
        ),
    }
}

fn opt(v: Option<f64>, digits: usize) -> String {
    v.map_or_else(|| "-".to_string(), |x| format!("{x:.digits$}"))
}

/// The end-of-run summary table.
pub fn summary(r: &BenchResult) -> String {
    let mut out = String::new();
    let w = &r.workload;
    let _ = writeln!(
        out,
        "workload {} | driver {} | broker {} ({}) | {} s measured | {} cores, {}",
        w.name,
        r.driver,
        r.broker.name,
        r.broker.bootstrap,
        // A catch-up's window ends when the consumer does, which in a smoke run is a fraction of a second.
        opt(Some(r.measured_s), usize::from(r.measured_s < 10.0)),
        r.machine.cores,
        r.machine.cpu_model
    );
    let rate = if r.offered_rate_records_s == 0 {
        "max".to_string()
    } else {
        format!("{} rec/s", r.offered_rate_records_s)
    };
    let _ = writeln!(
        out,
        "topic {} ({} partitions) | records {:.0} B | acks {:?} | compression {} | offered rate {rate}",
        r.topic,
        w.topic.partitions,
        w.records.size.mean_bytes(),
        w.producer.acks,
        w.producer.compression.name()
    );
    let _ = writeln!(
        out,
        "{:<22} {:>14} {:>10} {:>10}",
        "", "records/s", "MB/s", "errors"
    );
    let mut row = |name: &str, t: &crate::result::Throughput| {
        let _ = writeln!(
            out,
            "{name:<22} {:>14.0} {:>10.1} {:>10}",
            t.records_s, t.mb_s, t.errors
        );
    };
    row("produce", &r.produce);
    row("consume", &r.consume);
    if let Some(f) = &r.fill {
        row("fill (before measure)", f);
    }
    let _ = writeln!(
        out,
        "{:<22} {:>9} {:>9} {:>9} {:>9} {:>9} {:>10}",
        "latency ms", "p50", "p90", "p99", "p99.9", "max", "samples"
    );
    let rows = [
        Some(("publish (send->ack)", &r.publish_latency_ms)),
        r.produce_request_rtt_ms
            .as_ref()
            .map(|p| ("  request round trip", p)),
        Some(("end-to-end", &r.e2e_latency_ms)),
    ];
    for (name, p) in rows.into_iter().flatten() {
        let _ = writeln!(
            out,
            "{name:<22} {:>9.2} {:>9.2} {:>9.2} {:>9.2} {:>9.2} {:>10}",
            p.p50, p.p90, p.p99, p.p999, p.max, p.count
        );
    }
    if let Some(w) = &r.librdkafka {
        let figure = |name: &str, s: &Option<WindowSummary>| {
            s.map_or(format!("{name} -"), |s| {
                format!(
                    "{name} {:.2} (worst {:.2}, {} s)",
                    s.median_ms, s.max_ms, s.seconds
                )
            })
        };
        let _ = writeln!(
            out,
            "librdkafka's own p99 per second, median ms: {}; {}",
            figure("request round trip", &w.rtt_p99_ms),
            figure("producer queue", &w.queue_p99_ms)
        );
    }
    if r.consumers_behind_window() {
        let _ = writeln!(
            out,
            "end-to-end: no record stamped in the window was consumed within it: consumers behind by more than {:.0} s",
            r.measured_s
        );
    }
    let _ = writeln!(
        out,
        "cpu: client {:.2} cores, server {} cores; the machine {} cores busy, other processes {}, steal {}",
        r.cpu.client_cores,
        opt(r.cpu.server_cores, 2),
        opt(r.cpu.machine_cores, 2),
        opt(r.cpu.other_process_cores, 2),
        opt(r.cpu.steal_cores, 2)
    );
    // Without the broker's pid a local broker's CPU would count as another process's.
    if let Some(other) = r
        .cpu
        .other_process_cores
        .filter(|o| r.cpu.server_cores.is_some() && *o >= OTHER_PROCESS_CORES_NOTABLE)
    {
        let _ = writeln!(
            out,
            "cpu: note: other processes used {other:.2} cores of this machine during the run: its figures do not \
             compare with a run on a quiet machine"
        );
    }
    if let Some(m) = r.server_memory {
        let _ = writeln!(
            out,
            "server memory: peak {:.0} MB resident, {:.0} MB at the end",
            m.peak_rss_bytes as f64 / 1e6,
            m.rss_bytes as f64 / 1e6
        );
    }
    let _ = writeln!(
        out,
        "limits: fio seq write {} MB/s (QD1 {}), read {} MB/s, fdatasync p50 {} ms p99 {} ms, loopback {} Gbit/s",
        opt(r.limits.fio_seq_write_mb_s, 0),
        opt(r.limits.fio_seq_write_qd1_mb_s, 0),
        opt(r.limits.fio_seq_read_mb_s, 0),
        opt(r.limits.fdatasync_p50_ms, 3),
        opt(r.limits.fdatasync_p99_ms, 3),
        opt(r.limits.iperf3_loopback_gbit_s, 1)
    );
    let _ = writeln!(
        out,
        "produce_to_disk_ratio: {}",
        opt(r.produce_to_disk_ratio, 3)
    );
    if let Some(f) = &r.disk_floor {
        let l = &f.latency_ms;
        let _ = writeln!(
            out,
            "disk alone at {:.1} MB/s (one writer, {} files, write + fdatasync per commit, no network): latency p50 {:.2} \
             p99 {:.2} p99.9 {:.2} ms, {} commits of {:.0} KB",
            f.rate_mb_s,
            f.files.as_str(),
            l.p50,
            l.p99,
            l.p999,
            f.commits,
            f.write_bytes_mean / 1e3
        );
    }
    if let Some(f) = &r.protocol_floor {
        let l = &f.publish_latency_ms;
        let rtt = f
            .request_rtt_ms
            .map(|rtt| format!(", request round trip p99 {:.2} ms", rtt.p99))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "protocol floor at {:.1} MB/s (these producers against a broker that stores nothing, no disk): publish \
             p50 {:.2} p99 {:.2} p99.9 {:.2} ms{rtt}",
            f.rate_mb_s, l.p50, l.p99, l.p999
        );
    }
    for g in &r.goals {
        let _ = write!(
            out,
            "goal {}: {:.3} {} {} -> {}",
            g.name,
            g.value,
            g.op,
            g.target,
            if g.met { "met" } else { "NOT met" }
        );
        if let Some(basis) = &g.basis {
            let _ = write!(out, " (against {basis})");
        }
        if let (Some(disk), Some(disk_met)) = (g.disk_alone, g.disk_alone_met()) {
            // How the disk alone was measured: fio's read for the catch-up goal, the floor's files otherwise.
            let how = if g.name == GOAL_CATCHUP {
                "reading at fio's sequential read speed"
            } else if r.disk_floor.as_ref().map(|f| f.files) == Some(Files::Prewritten) {
                "writing over written files as a log at its retention does"
            } else {
                "appending to fresh files as a new log does"
            };
            if disk_met {
                let _ = write!(out, " (disk alone: {disk:.3}, within this disk's reach)");
            } else {
                let _ = write!(
                    out,
                    " (disk alone: {disk:.3}, the disk alone, {how}, misses it in this run)"
                );
            }
        }
        if let (Some(network), Some(met)) = (g.network_alone, g.network_alone_met()) {
            let verdict = if met {
                "within its reach"
            } else {
                "misses it in this run"
            };
            let how = if g.name == GOAL_CATCHUP {
                "one loopback TCP stream at iperf3's speed"
            } else {
                "the protocol floor: a broker that stores nothing"
            };
            let _ = write!(out, " (network alone: {network:.3}, {how}, {verdict})");
        }
        let _ = writeln!(out);
    }
    for e in &r.errors {
        let _ = writeln!(out, "error: {e}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::disk_floor::DiskFloor;
    use crate::result::{sample_result, Goal};
    use crate::stats::Percentiles;

    #[test]
    fn summary_names_driver_figures_and_goals() {
        let text = summary(&sample_result());
        assert!(text.contains("driver native"), "{text}");
        assert!(text.contains("produce"), "{text}");
        assert!(text.contains("102.4"), "{text}");
        assert!(
            text.contains("goal produce_to_disk_ratio: 0.102 >= 0.7 -> NOT met"),
            "{text}"
        );
        assert!(
            text.contains("fdatasync p50 0.200 ms p99 2.000 ms"),
            "{text}"
        );
    }

    #[test]
    fn summary_says_whether_the_disk_alone_reaches_a_latency_goal() {
        let mut r = sample_result();
        r.disk_floor = Some(DiskFloor {
            files: crate::disk_floor::Files::Fresh,
            rate_mb_s: 512.0,
            committed_mb_s: 512.0,
            measured_s: 8.0,
            commits: 16_000,
            write_bytes_mean: 262_144.0,
            latency_ms: Percentiles {
                count: 4_000_000,
                p50: 0.6,
                p99: 1.2,
                p999: 2.5,
                ..Percentiles::default()
            },
        });
        let mut above = Goal::at_most("publish_p99_to_fdatasync_p99", 16.0, 3.0);
        above.disk_alone = Some(4.0);
        let mut within = Goal::at_most("publish_p99_to_fdatasync_p99", 5.0, 3.0);
        within.disk_alone = Some(1.5);
        let mut catchup = Goal::at_least(GOAL_CATCHUP, 0.95, 2.0);
        catchup.disk_alone = Some(1.29);
        catchup.basis = Some("this run's fill, 1000 MB/s".into());
        catchup.network_alone = Some(1.9);
        r.goals = vec![above, within, catchup];
        let text = summary(&r);
        assert!(
            text.contains("0.950 >= 2 -> NOT met (against this run's fill, 1000 MB/s) (disk alone: 1.290, the disk alone, reading at fio's sequential read speed, misses it"),
            "{text}"
        );
        assert!(
            text.contains("misses it in this run) (network alone: 1.900, one loopback TCP stream at iperf3's speed, misses it in this run)\n"),
            "{text}"
        );
        assert!(
            text.contains("disk alone at 512.0 MB/s") && text.contains("p99 1.20"),
            "{text}"
        );
        assert!(
            text.contains(
                "16.000 <= 3 -> NOT met (disk alone: 4.000, the disk alone, appending to fresh files as a new log does, misses it in this run"
            ),
            "{text}"
        );
        assert!(
            text.contains("5.000 <= 3 -> NOT met (disk alone: 1.500, within this disk's reach)"),
            "{text}"
        );
    }

    #[test]
    fn progress_line_shows_rates() {
        let live = Live::default();
        let s = sample_result().series[0];
        let line = progress_line("measure", 3, 60, &live, Some(&s));
        assert!(
            line.contains("[measure    3/60s]") && line.contains("102.4 MB/s"),
            "{line}"
        );
        assert!(line.contains("server 1.00 cores"), "{line}");
    }
}
