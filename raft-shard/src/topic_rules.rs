//! The checks a new topic must pass, in Kafka's order, each with the Kafka error code a client expects.

use crate::state::{BrokerMeta, NewTopic};

/// Kafka protocol error codes the state machine answers with.
pub mod codes {
    pub const UNKNOWN_SERVER_ERROR: i16 = -1;
    pub const NONE: i16 = 0;
    pub const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
    pub const INVALID_TOPIC_EXCEPTION: i16 = 17;
    pub const TOPIC_ALREADY_EXISTS: i16 = 36;
    pub const INVALID_PARTITIONS: i16 = 37;
    pub const INVALID_REPLICATION_FACTOR: i16 = 38;
    pub const INVALID_CONFIG: i16 = 40;
    pub const INVALID_REQUEST: i16 = 42;
}

/// Kafka's `Topic.MAX_NAME_LENGTH`.
pub const TOPIC_NAME_CHARS_MAX: usize = 249;
/// More partitions than this in one topic is a typo, not a plan; each one is a directory and open files.
pub const TOPIC_PARTITIONS_MAX: i32 = 100_000;

pub enum TopicCheck {
    Valid,
    Invalid { error_code: i16, message: String },
}

/// `leader` is the broker that would lead every partition (none registered yet: no replica can be placed).
pub fn check(topic: &NewTopic, leader: Option<&BrokerMeta>, exists: bool) -> TopicCheck {
    let invalid = |error_code, message| TopicCheck::Invalid {
        error_code,
        message,
    };
    if let Err(reason) = valid_name(&topic.name) {
        return invalid(
            codes::INVALID_TOPIC_EXCEPTION,
            format!("invalid topic name '{}': {reason}", topic.name),
        );
    }
    if !(1..=TOPIC_PARTITIONS_MAX).contains(&topic.partitions) {
        return invalid(
            codes::INVALID_PARTITIONS,
            format!(
                "partitions must be between 1 and {TOPIC_PARTITIONS_MAX}, got {}",
                topic.partitions
            ),
        );
    }
    if leader.is_none() {
        return invalid(
            codes::INVALID_REPLICATION_FACTOR,
            "no broker is registered yet".to_owned(),
        );
    }
    // Partition data is not replicated yet: every partition has exactly one replica, its leader.
    if !matches!(topic.replication_factor, -1 | 1) {
        return invalid(
            codes::INVALID_REPLICATION_FACTOR,
            format!(
                "replication factor must be 1 (or -1 for the default), got {}",
                topic.replication_factor
            ),
        );
    }
    if exists {
        return invalid(
            codes::TOPIC_ALREADY_EXISTS,
            format!("topic '{}' already exists", topic.name),
        );
    }
    TopicCheck::Valid
}

/// Kafka's `Topic.validate`: 1..=249 chars of `[a-zA-Z0-9._-]`, and not `.` or `..`.
fn valid_name(name: &str) -> Result<(), &'static str> {
    if name.is_empty() {
        return Err("empty");
    }
    if name == "." || name == ".." {
        return Err("'.' and '..' are reserved");
    }
    if name.len() > TOPIC_NAME_CHARS_MAX {
        return Err("longer than 249 characters");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        return Err("only ASCII letters, digits, '.', '_' and '-' are allowed");
    }
    Ok(())
}
