//! pinlog-tuning: everything the `pinlog` binary decides before the first executor starts.
//!
//! - [`Cli`]: the command line (`serve`, the default, and `tune`).
//! - [`load`]: the [`Config`], merged embedded default < `--config` file < `PINLOG_*` env < flag, then
//!   validated in full so a bad value stops the process with one line naming the key and value.
//! - [`plan_cores`]: which core runs each data shard and the metadata raft shard ([`CorePlan`]).
//! - [`check_data_dir`]: the data directory is writable and really supports O_DIRECT.
//! - [`tune_report`]: `pinlog tune`, a host report with a recommended config.
//!
//! This crate is used by the binary only and depends on no other pinlog crate: it names choices (e.g.
//! [`FlushPolicyName`]) and the binary maps them onto the engine's types.

mod admin_args;
mod cli;
mod config;
mod core_plan;
mod core_spec;
mod data_dir;
mod error;
mod flush_policy;
mod host;
mod settings;
#[cfg(test)]
mod test_support;
mod tune;

pub use admin_args::{
    AdminTarget, ClusterArgs, ClusterCommand, GroupArgs, GroupCommand, OutputFormat, TopicArgs,
    TopicCommand,
};
pub use cli::{Cli, Command, ServeArgs, TuneArgs, DATA_DIR_DEFAULT};
pub use config::{load, Config, MAX_REQUEST_BYTES_MIN, SEGMENT_BYTES_MIN};
pub use core_plan::{
    format_core_ids, host_core_ids, plan_cores, plan_cores_for_host, CorePlan,
    RAFT_DEDICATED_HOST_CORES_MIN,
};
pub use core_spec::{CoreSpec, RaftCore};
pub use data_dir::{check_data_dir, DataDirReport, DIRECT_PROBE_BYTES};
pub use error::ConfigError;
pub use flush_policy::FlushPolicyName;
pub use host::{
    io_uring_available, kernel_release, memlock_fits, memlock_limit, IO_ARENA_RINGS_PER_SHARD,
};
pub use settings::{Settings, DEFAULT_CONFIG_TOML};
pub use tune::tune_report;
