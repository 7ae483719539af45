//! Errors of the raft shard, each with the file or setting it concerns.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum RaftShardError {
    #[error("invalid raft shard config: {0}")]
    Config(String),
    #[error("{op} {}: {source}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} is corrupt: {reason}", path.display())]
    Corrupt { path: PathBuf, reason: String },
    #[error("raft: {0}")]
    Raft(#[from] raft::Error),
    #[error("cannot start the raft shard executor: {0}")]
    Spawn(String),
    #[error("the raft shard executor panicked")]
    Panicked,
}

impl RaftShardError {
    pub(crate) fn io(
        op: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> RaftShardError {
        let path = path.into();
        move |source| RaftShardError::Io { op, path, source }
    }

    pub(crate) fn corrupt(path: impl Into<PathBuf>, reason: impl Into<String>) -> RaftShardError {
        RaftShardError::Corrupt {
            path: path.into(),
            reason: reason.into(),
        }
    }
}
