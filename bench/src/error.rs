//! The bench's one error type: every failure says what was being done and against what.

use thiserror::Error;

#[derive(Debug, Error)]
pub enum BenchError {
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("workload {path}: {reason}")]
    Workload { path: String, reason: String },
    #[error("kafka protocol ({what}): {reason}")]
    Protocol { what: String, reason: String },
    #[error("broker answered {what} with error code {code}")]
    Broker { what: String, code: i16 },
    #[error("rdkafka ({what}): {source}")]
    Rdkafka {
        what: String,
        #[source]
        source: rdkafka::error::KafkaError,
    },
    #[error("{tool} failed: {reason}")]
    Tool { tool: String, reason: String },
    #[error("result {path}: {reason}")]
    Result { path: String, reason: String },
    #[error("unsupported by the {driver} driver: {what}")]
    Unsupported { driver: String, what: String },
    #[error("plot {path}: {reason}")]
    Plot { path: String, reason: String },
}

impl BenchError {
    pub fn io(what: impl Into<String>, source: std::io::Error) -> BenchError {
        BenchError::Io {
            what: what.into(),
            source,
        }
    }

    pub fn protocol(what: impl Into<String>, reason: impl ToString) -> BenchError {
        BenchError::Protocol {
            what: what.into(),
            reason: reason.to_string(),
        }
    }
}
