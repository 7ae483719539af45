//! The native driver: Kafka over blocking std sockets with pinlog's own codecs (kafka-protocol for requests, a
//! hand-written v2 batch builder/reader for records). It exists to put more load on a broker per client CPU than
//! librdkafka can on a small host. Limits: no compression, no idempotence, keys do not choose partitions.

pub mod admin;
pub mod batch;
pub mod conn;
mod consumer;
mod producer;

use std::sync::Arc;

use crate::driver::{ConsumeJob, Driver, DriverKind, ProduceJob};
use crate::error::BenchError;
use crate::stats::{Live, WorkerReport};

/// The native load driver.
pub struct NativeDriver;

impl Driver for NativeDriver {
    fn kind(&self) -> DriverKind {
        DriverKind::Native
    }

    fn produce(&self, job: &ProduceJob<'_>, live: &Arc<Live>) -> Result<WorkerReport, BenchError> {
        producer::produce(job, live)
    }

    fn consume(&self, job: &ConsumeJob<'_>, live: &Arc<Live>) -> Result<WorkerReport, BenchError> {
        consumer::consume(job, live)
    }
}
