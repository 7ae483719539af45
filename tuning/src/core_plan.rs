//! Which core runs which executor: the data shards and the metadata raft shard.
//!
//! pinlog is thread-per-core: each shard is a glommio executor pinned to one core. The raft shard runs the
//! Raft loop synchronously and blocks in fdatasync, so ideally it has a core of its own. But on small hosts
//! a dedicated core costs a large share of data-path capacity (half of a 2-core host) while metadata
//! traffic is tiny, so there it is co-located with the last shard as its own thread — its blocking
//! fdatasync then runs on that thread, never on the shard's executor. The rules:
//!
//! - `shard_cores = "all"`, `raft_core = "auto"`: with >= 4 cores the raft shard takes the last core and
//!   shards the rest; with 1-3 cores shards take every core and the raft shard shares the last.
//! - An explicit `raft_core` is honoured; with `"all"` on >= 4 cores shards skip it, else it is shared.
//! - A count or list that leaves a core free gives the raft shard a free core ("auto": the highest).
//! - A `raft_core` inside an explicit shard list is an error when a free core exists for it.
//!
//! The plan is a pure function of the config and the host's core ids, so it is tested for any host size.

use crate::config::{validate_core_spec, Config};
use crate::core_spec::{CoreSpec, RaftCore};
use crate::error::ConfigError;

/// Hosts with at least this many cores give the raft shard a core of its own under `shard_cores = "all"`.
pub const RAFT_DEDICATED_HOST_CORES_MIN: usize = 4;

/// The executors' placement, logged at start-up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CorePlan {
    /// One data shard per entry, shard id = index.
    pub shard_cpus: Vec<usize>,
    /// The metadata raft shard's core.
    pub raft_cpu: usize,
    /// True when `raft_cpu` is also in `shard_cpus` (the raft shard runs as a separate thread there).
    pub raft_shares_core: bool,
    /// Why this plan, for the start-up log line.
    pub reason: String,
}

/// Plans cores for this host: the cores of the process affinity mask (`core_affinity::get_core_ids`).
pub fn plan_cores(config: &Config) -> Result<CorePlan, ConfigError> {
    plan_cores_for_host(config, &host_core_ids())
}

/// The core ids this process may run on, ascending. Falls back to `0..available_parallelism` when the
/// affinity mask cannot be read.
pub fn host_core_ids() -> Vec<usize> {
    let mut ids: Vec<usize> = match core_affinity::get_core_ids() {
        Some(ids) if !ids.is_empty() => ids.into_iter().map(|core| core.id).collect(),
        _ => (0..std::thread::available_parallelism().map_or(1, usize::from)).collect(),
    };
    ids.sort_unstable();
    ids.dedup();
    ids
}

/// Formats core ids compactly: `0-3,6`.
pub fn format_core_ids(ids: &[usize]) -> String {
    let mut parts = Vec::new();
    let mut index = 0;
    while index < ids.len() {
        let start = ids[index];
        while index + 1 < ids.len() && ids[index + 1] == ids[index] + 1 {
            index += 1;
        }
        let end = ids[index];
        parts.push(if start == end {
            start.to_string()
        } else {
            format!("{start}-{end}")
        });
        index += 1;
    }
    parts.join(",")
}

/// [`plan_cores`] for a given set of host core ids (ascending, non-empty), so any host size is testable.
pub fn plan_cores_for_host(config: &Config, host: &[usize]) -> Result<CorePlan, ConfigError> {
    assert!(!host.is_empty(), "a host has at least one core");
    assert!(
        host.windows(2).all(|pair| pair[0] < pair[1]),
        "host core ids are ascending and distinct"
    );
    validate_core_spec(&config.shard_cores)?;
    let missing = |key: &'static str, value: String, id: usize| {
        let reason = format!(
            "core {id} does not exist (host has cores {})",
            format_core_ids(host)
        );
        ConfigError::invalid(key, value, reason)
    };
    if let RaftCore::Core(id) = config.raft_core {
        if !host.contains(&id) {
            return Err(missing("raft_core", config.raft_core.to_string(), id));
        }
    }
    let plan = match &config.shard_cores {
        CoreSpec::All => plan_all(config.raft_core, host),
        CoreSpec::Count(count) => {
            if *count > host.len() {
                let reason = format!(
                    "host has only {} cores ({})",
                    host.len(),
                    format_core_ids(host)
                );
                return Err(ConfigError::invalid("shard_cores", count, reason));
            }
            plan_count(*count, config.raft_core, host)
        }
        CoreSpec::List(ids) => {
            if let Some(id) = ids.iter().find(|id| !host.contains(id)) {
                return Err(missing("shard_cores", config.shard_cores.to_string(), *id));
            }
            plan_list(ids, config.raft_core, host)?
        }
    };
    assert!(!plan.shard_cpus.is_empty(), "a plan has at least one shard");
    assert_eq!(
        plan.raft_shares_core,
        plan.shard_cpus.contains(&plan.raft_cpu),
        "raft_shares_core is consistent"
    );
    Ok(plan)
}

/// Why the raft shard shares a core; `why` says why no core is free.
fn co_located_reason(why: &str, raft_cpu: usize) -> String {
    format!(
        "{why}, so the raft shard runs as its own thread on core {raft_cpu} beside a shard: metadata raft \
         traffic is tiny and a dedicated core would cut data-path capacity; its blocking fdatasync runs on \
         that thread, never on the shard's executor"
    )
}

fn dedicated_reason(raft_cpu: usize, why: &str) -> String {
    format!("the raft shard has core {raft_cpu} to itself: {why}")
}

fn plan_all(raft: RaftCore, host: &[usize]) -> CorePlan {
    let last = host[host.len() - 1];
    let raft_cpu = match raft {
        RaftCore::Auto => last,
        RaftCore::Core(id) => id,
    };
    if host.len() >= RAFT_DEDICATED_HOST_CORES_MIN {
        let shard_cpus = host.iter().copied().filter(|&id| id != raft_cpu).collect();
        let why = format!("{} cores leave {} for shards", host.len(), host.len() - 1);
        return CorePlan {
            shard_cpus,
            raft_cpu,
            raft_shares_core: false,
            reason: dedicated_reason(raft_cpu, &why),
        };
    }
    let why = format!(
        "{} core(s), fewer than {RAFT_DEDICATED_HOST_CORES_MIN}: shards use every core",
        host.len()
    );
    let reason = co_located_reason(&why, raft_cpu);
    CorePlan {
        shard_cpus: host.to_vec(),
        raft_cpu,
        raft_shares_core: true,
        reason,
    }
}

fn plan_count(count: usize, raft: RaftCore, host: &[usize]) -> CorePlan {
    let raft_cpu = match raft {
        RaftCore::Auto if count < host.len() => host[host.len() - 1],
        RaftCore::Auto => host[count - 1],
        RaftCore::Core(id) => id,
    };
    if count < host.len() {
        let shard_cpus = host
            .iter()
            .copied()
            .filter(|&id| id != raft_cpu)
            .take(count)
            .collect();
        let why = format!(
            "shard_cores = {count} leaves {} of {} cores free",
            host.len() - count,
            host.len()
        );
        return CorePlan {
            shard_cpus,
            raft_cpu,
            raft_shares_core: false,
            reason: dedicated_reason(raft_cpu, &why),
        };
    }
    CorePlan {
        shard_cpus: host.to_vec(),
        raft_cpu,
        raft_shares_core: true,
        reason: co_located_reason(&format!("shard_cores = {count} takes every core"), raft_cpu),
    }
}

fn plan_list(ids: &[usize], raft: RaftCore, host: &[usize]) -> Result<CorePlan, ConfigError> {
    let free: Vec<usize> = host
        .iter()
        .copied()
        .filter(|id| !ids.contains(id))
        .collect();
    let raft_cpu = match (raft, free.last()) {
        (RaftCore::Core(id), _) => id,
        (RaftCore::Auto, Some(&id)) => id,
        (RaftCore::Auto, None) => *ids
            .iter()
            .max()
            .expect("shard_cores lists were checked non-empty"),
    };
    let shares = ids.contains(&raft_cpu);
    // An explicit raft core listed as a shard core is a contradiction the operator must resolve; sharing a core
    // is only ever chosen by "auto", where it is logged as a choice.
    if shares && matches!(raft, RaftCore::Core(_)) {
        let remedy = if free.is_empty() {
            "use raft_core = \"auto\" to co-locate it on a host this small, or free a core"
                .to_string()
        } else {
            format!(
                "give it a free core ({}) or use raft_core = \"auto\"",
                format_core_ids(&free)
            )
        };
        let reason = format!(
            "raft_core = {raft_cpu} is also in shard_cores = {}; {remedy}",
            CoreSpec::List(ids.to_vec())
        );
        return Err(ConfigError::invalid("raft_core", raft_cpu, reason));
    }
    let reason = if shares {
        co_located_reason("shard_cores lists every core", raft_cpu)
    } else {
        dedicated_reason(raft_cpu, "shard_cores does not list it")
    };
    Ok(CorePlan {
        shard_cpus: ids.to_vec(),
        raft_cpu,
        raft_shares_core: shares,
        reason,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::Settings;

    fn config(shard_cores: CoreSpec, raft_core: RaftCore) -> Config {
        let defaults = Settings::embedded_default().unwrap();
        Config {
            shard_cores,
            raft_core,
            ..Config::from_settings(defaults).unwrap()
        }
    }

    fn host(cores: usize) -> Vec<usize> {
        (0..cores).collect()
    }

    fn plan(cores: usize, shard_cores: CoreSpec, raft_core: RaftCore) -> Result<CorePlan, String> {
        plan_cores_for_host(&config(shard_cores, raft_core), &host(cores))
            .map_err(|err| err.to_string())
    }

    fn placement(plan: &CorePlan) -> (Vec<usize>, usize, bool) {
        (
            plan.shard_cpus.clone(),
            plan.raft_cpu,
            plan.raft_shares_core,
        )
    }

    #[test]
    fn default_plan_one_core_co_locates() {
        let plan = plan(1, CoreSpec::All, RaftCore::Auto).unwrap();
        assert_eq!(placement(&plan), (vec![0], 0, true));
        assert!(
            plan.reason.contains("own thread on core 0 beside a shard"),
            "{}",
            plan.reason
        );
    }

    #[test]
    fn default_plan_two_cores_uses_all_for_shards_and_shares_the_last() {
        let plan = plan(2, CoreSpec::All, RaftCore::Auto).unwrap();
        assert_eq!(placement(&plan), (vec![0, 1], 1, true));
        assert!(
            plan.reason.contains("metadata raft traffic is tiny"),
            "{}",
            plan.reason
        );
        assert!(
            plan.reason.contains("never on the shard's executor"),
            "{}",
            plan.reason
        );
    }

    #[test]
    fn default_plan_three_cores_still_co_locates() {
        assert_eq!(
            placement(&plan(3, CoreSpec::All, RaftCore::Auto).unwrap()),
            (vec![0, 1, 2], 2, true)
        );
    }

    #[test]
    fn default_plan_four_and_eight_cores_dedicate_the_last() {
        let four = plan(4, CoreSpec::All, RaftCore::Auto).unwrap();
        assert_eq!(placement(&four), (vec![0, 1, 2], 3, false));
        assert!(four.reason.contains("core 3 to itself"), "{}", four.reason);
        assert_eq!(
            placement(&plan(8, CoreSpec::All, RaftCore::Auto).unwrap()),
            ((0..7).collect(), 7, false)
        );
    }

    #[test]
    fn explicit_raft_core_with_all() {
        assert_eq!(
            placement(&plan(8, CoreSpec::All, RaftCore::Core(0)).unwrap()),
            ((1..8).collect(), 0, false)
        );
        assert_eq!(
            placement(&plan(2, CoreSpec::All, RaftCore::Core(0)).unwrap()),
            (vec![0, 1], 0, true)
        );
    }

    #[test]
    fn count_leaving_a_core_free_dedicates_it() {
        assert_eq!(
            placement(&plan(2, CoreSpec::Count(1), RaftCore::Auto).unwrap()),
            (vec![0], 1, false)
        );
        assert_eq!(
            placement(&plan(8, CoreSpec::Count(3), RaftCore::Auto).unwrap()),
            (vec![0, 1, 2], 7, false)
        );
        assert_eq!(
            placement(&plan(4, CoreSpec::Count(2), RaftCore::Core(0)).unwrap()),
            (vec![1, 2], 0, false)
        );
        assert_eq!(
            placement(&plan(4, CoreSpec::Count(4), RaftCore::Auto).unwrap()),
            (vec![0, 1, 2, 3], 3, true)
        );
    }

    #[test]
    fn list_plans() {
        assert_eq!(
            placement(&plan(4, CoreSpec::List(vec![0, 1]), RaftCore::Auto).unwrap()),
            (vec![0, 1], 3, false)
        );
        assert_eq!(
            placement(&plan(2, CoreSpec::List(vec![1, 0]), RaftCore::Auto).unwrap()),
            (vec![1, 0], 1, true)
        );
        assert!(
            plan(2, CoreSpec::List(vec![0, 1]), RaftCore::Core(0)).is_err(),
            "an explicit raft core inside the shard list is refused even without a free core"
        );
        assert_eq!(
            placement(&plan(4, CoreSpec::List(vec![2]), RaftCore::Core(0)).unwrap()),
            (vec![2], 0, false)
        );
    }

    #[test]
    fn raft_core_inside_shard_list_with_a_free_core_is_an_error() {
        let err = plan(2, CoreSpec::List(vec![1]), RaftCore::Core(1)).unwrap_err();
        assert_eq!(
            err,
            "invalid config: raft_core = 1: raft_core = 1 is also in shard_cores = [1]; give it a free core (0) or use \
             raft_core = \"auto\""
        );
    }

    #[test]
    fn missing_cores_are_errors_naming_the_host_cores() {
        assert_eq!(
            plan(2, CoreSpec::List(vec![7]), RaftCore::Auto).unwrap_err(),
            "invalid config: shard_cores = [7]: core 7 does not exist (host has cores 0-1)"
        );
        assert_eq!(
            plan(2, CoreSpec::All, RaftCore::Core(5)).unwrap_err(),
            "invalid config: raft_core = 5: core 5 does not exist (host has cores 0-1)"
        );
        assert_eq!(
            plan(2, CoreSpec::Count(3), RaftCore::Auto).unwrap_err(),
            "invalid config: shard_cores = 3: host has only 2 cores (0-1)"
        );
    }

    #[test]
    fn sparse_affinity_masks_are_respected() {
        let config = config(CoreSpec::All, RaftCore::Auto);
        let plan = plan_cores_for_host(&config, &[2, 3, 6, 7, 9]).unwrap();
        assert_eq!(placement(&plan), (vec![2, 3, 6, 7], 9, false));
        assert_eq!(format_core_ids(&[0, 1, 2, 3, 6, 8, 9]), "0-3,6,8-9");
    }

    #[test]
    fn this_host_plans_with_defaults() {
        let plan = plan_cores(&config(CoreSpec::All, RaftCore::Auto)).unwrap();
        assert!(host_core_ids().contains(&plan.raft_cpu));
    }
}
