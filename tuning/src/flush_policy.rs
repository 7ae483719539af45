//! The durability choice, named the same in config, flags and docs (`flush_policy`).
//!
//! The engine owns what each policy does; this crate only names and parses it, so the binary can map it
//! to the engine's `FlushPolicy` without this crate depending on the engine.

use serde::Deserialize;

/// When appended data is fdatasync'ed relative to the produce acknowledgement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum FlushPolicyName {
    /// fdatasync (group-committed) before acks=all is answered: acknowledged data survives power loss.
    Durable,
    /// fdatasync every `flush_interval_ms`; a crash may lose up to one interval of acknowledged data.
    Interval,
    /// Never fdatasync explicitly; the kernel writes back when it likes (benchmarks, scratch data).
    Never,
}

impl std::fmt::Display for FlushPolicyName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let name = match self {
            FlushPolicyName::Durable => "durable",
            FlushPolicyName::Interval => "interval",
            FlushPolicyName::Never => "never",
        };
        write!(f, "\"{name}\"")
    }
}
