//! The native driver's connections: pinlog-net's blocking client (`pinlog_net::client`) with the APIs and versions
//! this driver speaks. A broker that does not answer within `IO_TIMEOUT` is reported, not waited on forever.

use std::time::Duration;

use kafka_protocol::messages::ApiKey;
use pinlog_net::client::{ClientError, ClientSpec};
pub use pinlog_net::client::{Conn, ConnReader, ConnSender};

use crate::error::BenchError;

pub const IO_TIMEOUT: Duration = Duration::from_secs(60);

const SPEC: ClientSpec = ClientSpec {
    client_id: "pinlog-bench",
    versions: &[
        (ApiKey::Produce, 3, 9),
        (ApiKey::Fetch, 4, 12),
        (ApiKey::ListOffsets, 1, 6),
        (ApiKey::Metadata, 1, 12),
        (ApiKey::CreateTopics, 2, 7),
    ],
    io_timeout: IO_TIMEOUT,
};

/// Connects and negotiates the driver's versions.
pub fn connect(addr: &str) -> Result<Conn, BenchError> {
    Ok(Conn::connect(addr, SPEC)?)
}

impl From<ClientError> for BenchError {
    fn from(err: ClientError) -> BenchError {
        match err {
            ClientError::Io { what, source } => BenchError::Io { what, source },
            ClientError::Broker { what, code } => BenchError::Broker { what, code },
            other => BenchError::protocol("client", other),
        }
    }
}
