//! `pinlog tune`: what this host offers pinlog, and a `pinlog.toml` snippet that fits it.
//!
//! Every probe that can fail is reported, not propagated: the report is most useful exactly on a host
//! where something is wrong.

use std::path::Path;
use std::time::Duration;

use crate::config::Config;
use crate::core_plan::{format_core_ids, host_core_ids, plan_cores_for_host, CorePlan};
use crate::data_dir::{check_data_dir, DataDirReport};
use crate::error::ConfigError;
use crate::host::{
    io_uring_available, kernel_release, mem_total_bytes, memlock_fits, memlock_limit,
    IO_ARENA_RINGS_PER_SHARD,
};
use crate::settings::Settings;

/// A durable flush slower than this is worth a note: the workload will lean on group commit.
const SLOW_FLUSH_US: u128 = 2_000;

/// The host report printed by `pinlog tune --data-dir DIR`, ending with a recommended config snippet.
pub fn tune_report(data_dir: &Path) -> String {
    let cores = host_core_ids();
    let defaults = default_plan(data_dir, &cores);
    let plan = defaults.as_ref().map(|(_, plan)| plan);
    let data = check_data_dir(data_dir);
    let release = kernel_release().unwrap_or_else(|err| format!("unknown ({err})"));
    [
        "pinlog tune: host report\n".to_string(),
        format!("[cores]\n{}", cores_section(&cores, plan)),
        format!("[io_uring]\n{}", io_uring_section()),
        format!(
            "[memlock]\n{}",
            memlock_section(registered_bytes(&defaults))
        ),
        format!(
            "[memory]\n{}",
            memory_section(shard_memory_bytes(&defaults), mem_total_bytes())
        ),
        format!("[data dir]\n{}", data_dir_section(data_dir, &data)),
        format!("[kernel]\nrelease = {release}\n"),
        format!(
            "[recommended pinlog.toml]\n{}",
            recommended_snippet(data_dir, plan.ok(), &data)
        ),
    ]
    .join("\n")
}

fn cores_section(cores: &[usize], plan: Result<&CorePlan, &ConfigError>) -> String {
    let parallelism = std::thread::available_parallelism()
        .map_or_else(|err| format!("unknown ({err})"), |count| count.to_string());
    let plan = match plan {
        Ok(plan) => format!(
            "shards on cores {}, raft shard on core {}{}",
            format_core_ids(&plan.shard_cpus),
            plan.raft_cpu,
            if plan.raft_shares_core {
                " (shared with a shard)"
            } else {
                " (its own)"
            }
        ),
        Err(err) => format!("FAILED: {err}"),
    };
    format!(
        "available_parallelism = {parallelism}\naffinity core ids = {}\ndefault plan: {plan}\n",
        format_core_ids(cores)
    )
}

fn io_uring_section() -> String {
    match io_uring_available() {
        Ok(()) => "io_uring_setup: ok\n".to_string(),
        Err(err) => format!(
            "io_uring_setup: FAILED: {err} — pinlog cannot run here (check kernel.io_uring_disabled and seccomp)\n"
        ),
    }
}

fn data_dir_section(data_dir: &Path, data: &Result<DataDirReport, ConfigError>) -> String {
    match data {
        Ok(report) => format!(
            "{}: filesystem {}, O_DIRECT ok, 4 KiB O_DIRECT write + fdatasync (new file) {} µs\n",
            report.path.display(),
            report.fs_type,
            report.direct_write_sync.as_micros()
        ),
        Err(err) => format!("{}: FAILED: {err}\n", data_dir.display()),
    }
}

/// The default config for `data_dir` and the plan it gives on this host (`shard_cores = "all"`, `raft_core = "auto"`).
fn default_plan(data_dir: &Path, cores: &[usize]) -> Result<(Config, CorePlan), ConfigError> {
    let layer = Settings {
        data_dir: Some(data_dir.to_owned()),
        ..Settings::default()
    };
    let config = Config::from_settings(Settings::embedded_default()?.merge(layer))?;
    let plan = plan_cores_for_host(&config, cores)?;
    Ok((config, plan))
}

fn mib(bytes: u64) -> String {
    format!("{} MiB", bytes / (1024 * 1024))
}

/// Bytes the default config's shards register with io_uring (`None` when there is no plan).
fn registered_bytes(defaults: &Result<(Config, CorePlan), ConfigError>) -> Option<u64> {
    let (config, plan) = defaults.as_ref().ok()?;
    Some(
        IO_ARENA_RINGS_PER_SHARD
            * plan.shard_cpus.len() as u64
            * config.shard_io_memory_bytes as u64,
    )
}

/// Memory the default config lets its shards hold at most, beside the code, the indexes and the metadata: per
/// shard, the tails' written batches, the requests in progress (unwritten appends included) and the I/O arena.
fn shard_memory_bytes(defaults: &Result<(Config, CorePlan), ConfigError>) -> Option<u64> {
    let (config, plan) = defaults.as_ref().ok()?;
    let per_shard = config.tail_cache_shard_bytes
        + config.inflight_request_bytes_max
        + config.shard_io_memory_bytes;
    Some(plan.shard_cpus.len() as u64 * per_shard as u64)
}

/// Share of the host's memory past which the shards' bounds are worth lowering: the page cache, the clients on
/// the same host and the kernel's socket buffers need the rest.
const SHARD_MEMORY_SHARE_MAX: f64 = 0.5;

fn memory_section(held: Option<u64>, total: Result<u64, std::io::Error>) -> String {
    let total = match total {
        Ok(total) => total,
        Err(err) => return format!("MemTotal: unknown ({err})\n"),
    };
    let Some(held) = held else {
        return format!("MemTotal = {}\n", mib(total));
    };
    let share = held as f64 / total as f64;
    let note = if share > SHARD_MEMORY_SHARE_MAX {
        "more than half the host's memory: lower tail_cache_shard_bytes first (fetches of older data then read \
         the disk), then inflight_request_bytes_max"
    } else {
        "fits"
    };
    format!(
        "MemTotal = {}\nthe shards may hold {} (shards x (tail_cache_shard_bytes + inflight_request_bytes_max + \
         shard_io_memory_bytes)), {:.1} % of it: {note}\n",
        mib(total),
        mib(held),
        share * 100.0
    )
}

fn memlock_section(registered: Option<u64>) -> String {
    match memlock_limit() {
        Ok((soft, hard)) => {
            let show = |limit: Option<u64>| limit.map_or_else(|| "unlimited".to_string(), mib);
            let needed = registered.map_or_else(|| "unknown".to_string(), mib);
            let fits = registered.map(|need| memlock_fits(need).unwrap_or(false));
            let note = match fits {
                Some(false) => format!(
                    "the shards' I/O arenas (shard_io_memory_bytes x shards x {IO_ARENA_RINGS_PER_SHARD} rings) need \
                     {needed} and this process lacks CAP_IPC_LOCK: glommio would not register them and each I/O \
                     would pin its pages itself; raise the limit (ulimit -l / LimitMEMLOCK) to register them"
                ),
                _ => format!(
                    "the shards' I/O arenas ({needed} registered) fit (the limit, or CAP_IPC_LOCK, which lifts it)"
                ),
            };
            format!(
                "RLIMIT_MEMLOCK soft = {}, hard = {}: {note}\n",
                show(soft),
                show(hard)
            )
        }
        Err(err) => format!("RLIMIT_MEMLOCK: unknown ({err})\n"),
    }
}

fn recommended_snippet(
    data_dir: &Path,
    plan: Option<&CorePlan>,
    data: &Result<DataDirReport, ConfigError>,
) -> String {
    let mut out = match data {
        Ok(report) => format!(
            "# {} is on {} and O_DIRECT works there.\n",
            report.path.display(),
            report.fs_type
        ),
        Err(err) => format!(
            "# {} cannot be used ({err}); choose a directory on ext4 or xfs.\n",
            data_dir.display()
        ),
    };
    out.push_str(&format!(
        "data_dir = {:?}\n",
        data_dir.display().to_string()
    ));
    if let Some(plan) = plan {
        out.push_str(&format!("# {}\n", plan.reason));
    }
    out.push_str("shard_cores = \"all\"\nraft_core = \"auto\"\n");
    out.push_str(
        "# Acknowledged data survives power loss; group commit shares one fdatasync among concurrent appends.\n",
    );
    if let Ok(report) = data {
        out.push_str(&flush_note(report.direct_write_sync));
    }
    out.push_str("flush_policy = \"durable\"\n");
    out
}

fn flush_note(sync: Duration) -> String {
    let micros = sync.as_micros();
    if micros > SLOW_FLUSH_US {
        format!(
            "# A 4 KiB write + fdatasync took {micros} µs here: keep many appends in flight (batching producers), or use \
             flush_policy = \"interval\" if losing up to flush_interval_ms of acked data on power loss is acceptable.\n"
        )
    } else {
        format!("# A 4 KiB write + fdatasync took {micros} µs here: durable flushing is cheap on this disk.\n")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::disk_tempdir;

    #[test]
    fn report_has_every_section_and_a_parseable_snippet() {
        let tmp = disk_tempdir();
        let report = tune_report(tmp.path());
        for section in [
            "[cores]",
            "[io_uring]",
            "[memlock]",
            "[memory]",
            "[data dir]",
            "[kernel]",
            "[recommended pinlog.toml]",
        ] {
            assert!(report.contains(section), "missing {section} in:\n{report}");
        }
        assert!(report.contains("available_parallelism = "), "{report}");
        assert!(report.contains("RLIMIT_MEMLOCK soft = "), "{report}");
        assert!(report.contains("O_DIRECT ok"), "{report}");
        let snippet = report.split("[recommended pinlog.toml]\n").nth(1).unwrap();
        let settings = Settings::from_toml(snippet, Path::new("snippet")).unwrap();
        assert_eq!(settings.data_dir.as_deref(), Some(tmp.path()));
        assert!(
            snippet
                .lines()
                .filter(|line| !line.starts_with('#'))
                .count()
                >= 4,
            "{snippet}"
        );
    }

    #[test]
    fn memory_section_says_what_the_shards_may_hold_and_when_it_is_too_much() {
        let gib = 1u64 << 30;
        let fits = memory_section(Some(gib), Ok(10 * gib));
        assert!(
            fits.contains("MemTotal = 10240 MiB\nthe shards may hold 1024 MiB")
                && fits.contains("10.0 % of it: fits"),
            "{fits}"
        );
        let over = memory_section(Some(3 * gib), Ok(4 * gib));
        assert!(
            over.contains("75.0 % of it: more than half the host's memory: lower tail_cache_shard_bytes first"),
            "{over}"
        );
        let unknown = memory_section(Some(gib), Err(std::io::Error::other("no /proc")));
        assert_eq!(unknown, "MemTotal: unknown (no /proc)\n");
    }

    #[test]
    fn report_explains_a_bad_data_dir() {
        let report = tune_report(Path::new("/proc"));
        assert!(
            report.contains("/proc: FAILED: invalid config: data_dir = \"/proc\""),
            "{report}"
        );
        assert!(report.contains("# /proc cannot be used"), "{report}");
    }
}
