//! raft-rs logs through slog; this drain forwards its records to `tracing` (target `raft`), so there is one log
//! stream. raft's info lines are lifecycle (elections, leader changes), which matches our info.

use slog::{Drain, Level, OwnedKVList, Record};

struct TracingDrain;

impl Drain for TracingDrain {
    type Ok = ();
    type Err = slog::Never;

    fn log(&self, record: &Record<'_>, _values: &OwnedKVList) -> Result<(), slog::Never> {
        match record.level() {
            Level::Critical | Level::Error => tracing::error!(target: "raft", "{}", record.msg()),
            Level::Warning => tracing::warn!(target: "raft", "{}", record.msg()),
            Level::Info => tracing::info!(target: "raft", "{}", record.msg()),
            Level::Debug => tracing::debug!(target: "raft", "{}", record.msg()),
            Level::Trace => tracing::trace!(target: "raft", "{}", record.msg()),
        }
        Ok(())
    }
}

pub(crate) fn raft_logger(node_id: i32) -> slog::Logger {
    slog::Logger::root(TracingDrain.fuse(), slog::o!("node" => node_id))
}
