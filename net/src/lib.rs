//! pinlog-net: the Kafka protocol server of one shard.
//!
//! Read this crate top-down, the way a request travels:
//!
//! 1. [`server`] — every shard binds the same port with `SO_REUSEPORT` and accepts its own connections, up to
//!    `max_connections_per_shard`.
//! 2. [`connection`] — a reader reads length-prefixed frames (bounded by `max_request_bytes`), starts each request
//!    in arrival order and hands its response future to a writer through a bounded in-flight queue, so a client can
//!    pipeline requests (librdkafka keeps several produce requests in flight) while responses leave in order.
//! 3. [`api`] — one module per Kafka API: decode with the `kafka-protocol` codecs, act, encode the answer (a Fetch
//!    answer refers to its record sets instead of copying them: [`response`]).
//! 4. [`route`] — a partition's owner shard comes from the metadata snapshot; work for partitions of this shard runs
//!    here ([`partition_ops`]), work for another shard goes over the [`mesh`] of bounded SPSC channels and is merged
//!    back; a fetch sends each other shard one call for all its partitions ([`shard_call`]). A broker never forwards a request to another broker.
//! 5. `pinlog-engine` stores the record batches; `pinlog-raft-shard` owns the metadata.
//!
//! Everything here runs on one glommio executor: `Rc`/`RefCell`, never a lock, never a borrow across `.await`.

pub mod api;
pub mod client;
pub mod codes;
pub mod config_keys;
pub mod connection;
pub mod context;
pub mod fetch_session;
pub mod frame;
pub mod group;
pub mod mesh;
pub mod metrics;
pub mod partition_ops;
pub mod response;
pub mod route;
pub mod runtime;
pub mod server;
pub mod shard_call;

pub use context::NetConfig;
pub use mesh::{build_mesh, MeshEndpoints};
pub use metrics::ShardMetrics;
pub use runtime::{run_shard, ShardParams};
