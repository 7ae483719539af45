//! pinlog-bench: the benchmark suite for pinlog and any Kafka-compatible broker.
//!
//! A run reads a workload file ([`workload`]), creates a fresh topic ([`native::admin`]), drives load through one of
//! two drivers behind one interface ([`driver`]: [`native`] or [`rdkafka_driver`]), measures throughput, latency
//! and CPU ([`stats`], [`cpu`]), and writes a JSON result ([`result`]) that carries the machine's physical limits
//! ([`limits`]) so every figure is read against what the hardware can do. [`report`], [`plot`] and [`compare`] turn
//! result files into tables and SVG plots.

pub mod client_windows;
pub mod compare;
pub mod cpu;
pub mod disk_floor;
pub mod driver;
pub mod error;
pub mod limits;
pub mod machine;
pub mod memory;
pub mod native;
pub mod null_broker;
pub mod payload;
pub mod plot;
pub mod protocol_floor;
pub mod rdkafka_driver;
pub mod report;
pub mod result;
pub mod runner;
pub mod server_metrics;
pub mod stats;
pub mod workload;
