//! The engine's hot functions, exported for pinlog-bench's criterion micro-benchmarks only (cargo feature
//! `bench-internals`, enabled by pinlog-bench's dev-dependency): re-exports of the real functions, never copies,
//! so a benchmark measures the code that runs.

pub use crate::batch::{patch, validate, BatchHeader};
pub use crate::index::OffsetIndex;
