//! `pinlog topic|group|cluster`: rpk-style admin commands that speak the Kafka protocol to any broker given by
//! `--brokers`, through pinlog-net's blocking client. Each prints aligned columns (or one JSON document with
//! `--format json`) and exits 1 with the Kafka error name when the broker refuses something, 2 when it cannot be
//! reached.

mod cluster;
mod group;
mod output;
mod topic;

use std::process::ExitCode;
use std::time::Duration;

use kafka_protocol::error::ParseResponseErrorCode;
use kafka_protocol::messages::ApiKey;
use pinlog_net::client::{ClientError, ClientSpec, Conn};
use pinlog_tuning::{AdminTarget, ClusterArgs, GroupArgs, TopicArgs};

pub use output::Section;

/// The APIs and versions the admin commands speak (each within what pinlog and the codecs implement).
const VERSIONS: &[(ApiKey, i16, i16)] = &[
    (ApiKey::Metadata, 1, 12),
    (ApiKey::CreateTopics, 2, 7),
    // v6 names topics in another field (`topics`); 1-5 are enough to delete by name.
    (ApiKey::DeleteTopics, 1, 5),
    (ApiKey::CreatePartitions, 0, 3),
    (ApiKey::DescribeConfigs, 1, 4),
    (ApiKey::IncrementalAlterConfigs, 0, 1),
    (ApiKey::ListOffsets, 1, 6),
    (ApiKey::FindCoordinator, 1, 3),
    (ApiKey::ListGroups, 0, 4),
    (ApiKey::DescribeGroups, 0, 5),
    // v8 moves to a list of groups; one group per request is what the commands need.
    (ApiKey::OffsetFetch, 1, 7),
    (ApiKey::OffsetCommit, 2, 8),
    (ApiKey::DeleteGroups, 0, 2),
    (ApiKey::DescribeCluster, 0, 1),
];

/// Why an admin command failed.
#[derive(Debug)]
pub enum AdminError {
    /// The broker refused with a Kafka error code.
    Kafka { code: i16, message: String },
    /// The broker could not be reached or spoke nonsense.
    Client(ClientError),
    /// The command line asks for something impossible.
    Usage(String),
}

impl From<ClientError> for AdminError {
    fn from(err: ClientError) -> AdminError {
        match err {
            ClientError::Broker { what, code } => AdminError::Kafka {
                code,
                message: what,
            },
            other => AdminError::Client(other),
        }
    }
}

impl AdminError {
    pub fn kafka(code: i16, message: impl Into<String>) -> AdminError {
        AdminError::Kafka {
            code,
            message: message.into(),
        }
    }

    fn report(&self) -> ExitCode {
        match self {
            AdminError::Kafka { code, message } => {
                eprintln!("error: {}: {message}", error_name(*code));
                ExitCode::from(1)
            }
            AdminError::Client(err) => {
                eprintln!("error: {err}");
                ExitCode::from(2)
            }
            AdminError::Usage(message) => {
                eprintln!("error: {message}");
                ExitCode::from(2)
            }
        }
    }
}

/// Kafka's name for an error code (`36` → `TOPIC_ALREADY_EXISTS`).
pub fn error_name(code: i16) -> String {
    match code.err() {
        None => "NONE".to_owned(),
        Some(kafka_protocol::error::ResponseError::Unknown(code)) => {
            format!("UNKNOWN_ERROR_{code}")
        }
        Some(err) => screaming_snake(&format!("{err:?}")),
    }
}

fn screaming_snake(camel: &str) -> String {
    let mut out = String::with_capacity(camel.len() + 8);
    for (i, c) in camel.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_uppercase());
    }
    out
}

/// A connection to the broker named by `--brokers`, with the target's output format.
pub struct Session {
    pub conn: Conn,
    pub target: AdminTarget,
}

impl Session {
    fn open(target: &AdminTarget) -> Result<Session, AdminError> {
        let conn = connect(&target.brokers, target)?;
        Ok(Session {
            conn,
            target: target.clone(),
        })
    }
}

pub fn connect(addr: &str, target: &AdminTarget) -> Result<Conn, AdminError> {
    let spec = ClientSpec {
        client_id: "pinlog-admin",
        versions: VERSIONS,
        io_timeout: Duration::from_millis(target.timeout_ms.max(1)),
    };
    Ok(Conn::connect(addr, spec)?)
}

/// What a command printed and whether everything it asked for succeeded.
pub struct Outcome {
    pub sections: Vec<Section>,
    /// Per-item failures (e.g. one of three topics to delete): printed after the output, exit 1.
    pub failures: Vec<AdminError>,
}

impl Outcome {
    pub fn ok(sections: Vec<Section>) -> Outcome {
        Outcome {
            sections,
            failures: Vec::new(),
        }
    }
}

fn finish(target: &AdminTarget, outcome: Result<Outcome, AdminError>) -> ExitCode {
    match outcome {
        Ok(outcome) => {
            output::print(target.format, &outcome.sections);
            let mut code = ExitCode::SUCCESS;
            for failure in &outcome.failures {
                code = failure.report();
            }
            code
        }
        Err(err) => err.report(),
    }
}

pub fn run_topic(args: TopicArgs) -> ExitCode {
    let outcome = Session::open(&args.target).and_then(|mut s| topic::run(&mut s, args.command));
    finish(&args.target, outcome)
}

pub fn run_group(args: GroupArgs) -> ExitCode {
    let outcome = Session::open(&args.target).and_then(|mut s| group::run(&mut s, args.command));
    finish(&args.target, outcome)
}

pub fn run_cluster(args: ClusterArgs) -> ExitCode {
    let outcome = Session::open(&args.target).and_then(|mut s| cluster::run(&mut s, args.command));
    finish(&args.target, outcome)
}

/// `key=value` from the command line.
pub fn key_value(text: &str) -> Result<(String, String), AdminError> {
    match text.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), v.to_owned())),
        _ => Err(AdminError::Usage(format!(
            "expected KEY=VALUE, got {text:?}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_names_are_kafkas() {
        assert_eq!(error_name(0), "NONE");
        assert_eq!(error_name(36), "TOPIC_ALREADY_EXISTS");
        assert_eq!(error_name(3), "UNKNOWN_TOPIC_OR_PARTITION");
        assert_eq!(error_name(40), "INVALID_CONFIG");
        assert_eq!(error_name(-1), "UNKNOWN_SERVER_ERROR");
        assert_eq!(error_name(9999), "UNKNOWN_ERROR_9999");
    }

    #[test]
    fn key_values_split_on_the_first_equals_sign() {
        assert_eq!(key_value("a=b=c").unwrap(), ("a".into(), "b=c".into()));
        assert_eq!(key_value("a=").unwrap(), ("a".into(), "".into()));
        assert!(key_value("=b").is_err());
        assert!(key_value("ab").is_err());
    }
}
