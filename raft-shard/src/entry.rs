//! What a raft entry of the metadata group carries: the command (entry data) and who proposed it (entry context).
//!
//! Both layouts are specified in `FORMAT.md`. The context is not part of the state machine: it only routes the
//! outcome back to the shard that asked, and only within the process run (`incarnation`) that proposed it, so an
//! entry replayed after a restart never answers a proposal id of the new run.

use rkyv::{Archive, Deserialize, Serialize};

use crate::state::MetadataCommand;

/// The entry data: a command plus the entropy the state machine needs to apply it deterministically.
#[derive(Clone, Debug, PartialEq, Eq, Archive, Serialize, Deserialize)]
pub(crate) struct LoggedCommand {
    pub command: MetadataCommand,
    /// One fresh uuid v4 per topic of a CreateTopics that is not `validate_only`, drawn by the proposer.
    pub topic_ids: Vec<[u8; 16]>,
}

impl LoggedCommand {
    /// Draws the topic ids the command will need.
    pub fn new(command: MetadataCommand) -> LoggedCommand {
        let topic_ids = match &command {
            MetadataCommand::CreateTopics {
                topics,
                validate_only: false,
            } => topics
                .iter()
                .map(|_| *uuid::Uuid::new_v4().as_bytes())
                .collect(),
            _ => Vec::new(),
        };
        LoggedCommand { command, topic_ids }
    }

    pub fn encode(&self) -> Vec<u8> {
        match rkyv::to_bytes::<rkyv::rancor::Error>(self) {
            Ok(bytes) => bytes.into_vec(),
            // Serializing plain owned data into a growable buffer has no failure mode but allocation.
            Err(err) => panic!("rkyv cannot serialize a metadata command: {err}"),
        }
    }

    pub fn decode(bytes: &[u8]) -> Result<LoggedCommand, String> {
        // rkyv needs its input aligned; entry bytes come from protobuf at any address.
        let mut aligned = rkyv::util::AlignedVec::<16>::with_capacity(bytes.len());
        aligned.extend_from_slice(bytes);
        rkyv::from_bytes::<LoggedCommand, rkyv::rancor::Error>(&aligned).map_err(|e| e.to_string())
    }
}

/// The shard number the raft loop uses for its own proposals (broker registration); no shard gets their outcome.
pub(crate) const INTERNAL_SHARD: u32 = u32::MAX;
/// incarnation u64 + shard u32 + proposal id u64, little-endian.
const ORIGIN_BYTES: usize = 20;

/// Who proposed an entry: the process run, the shard, and the shard's proposal id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Origin {
    pub incarnation: u64,
    pub shard: u32,
    pub id: u64,
}

impl Origin {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(ORIGIN_BYTES);
        out.extend_from_slice(&self.incarnation.to_le_bytes());
        out.extend_from_slice(&self.shard.to_le_bytes());
        out.extend_from_slice(&self.id.to_le_bytes());
        out
    }

    /// `None` for entries without an origin (a new leader's empty entry) or with a context this code did not write.
    pub fn decode(context: &[u8]) -> Option<Origin> {
        let bytes: &[u8; ORIGIN_BYTES] = context.try_into().ok()?;
        let (incarnation, rest) = bytes.split_at(8);
        let (shard, id) = rest.split_at(4);
        Some(Origin {
            incarnation: u64::from_le_bytes(incarnation.try_into().ok()?),
            shard: u32::from_le_bytes(shard.try_into().ok()?),
            id: u64::from_le_bytes(id.try_into().ok()?),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::NewTopic;

    #[test]
    fn command_round_trips_and_draws_one_id_per_created_topic() {
        let topic = |name: &str| NewTopic {
            name: name.into(),
            partitions: 3,
            replication_factor: 1,
            configs: [("cleanup.policy".to_owned(), "compact".to_owned())].into(),
        };
        let command = MetadataCommand::CreateTopics {
            topics: vec![topic("a"), topic("b")],
            validate_only: false,
        };
        let logged = LoggedCommand::new(command);
        assert_eq!(logged.topic_ids.len(), 2);
        assert_ne!(logged.topic_ids[0], logged.topic_ids[1]);
        let bytes = logged.encode();
        // Decoding must not depend on the buffer's alignment.
        let mut shifted = vec![0u8];
        shifted.extend_from_slice(&bytes);
        assert_eq!(
            LoggedCommand::decode(&shifted[1..]).expect("decodes"),
            logged
        );
        assert!(LoggedCommand::decode(&bytes[..bytes.len() / 2]).is_err());
        let validate = LoggedCommand::new(MetadataCommand::CreateTopics {
            topics: vec![topic("c")],
            validate_only: true,
        });
        assert!(validate.topic_ids.is_empty());
    }

    #[test]
    fn origin_round_trips_and_rejects_foreign_contexts() {
        let origin = Origin {
            incarnation: u64::MAX - 1,
            shard: 3,
            id: 42,
        };
        assert_eq!(Origin::decode(&origin.encode()), Some(origin));
        assert_eq!(Origin::decode(&[]), None);
        assert_eq!(Origin::decode(&[1, 2, 3]), None);
    }
}
