//! The state machine snapshot in `<dir>/snapshot`: the whole metadata at one applied index, rkyv-encoded.
//!
//! Written at first boot (index 0, so the generated cluster id is durable before anything else happens) and then
//! every `snapshot_every_entries` applied entries, after which the raft log is compacted to the entries after it.

use std::collections::BTreeMap;
use std::path::Path;

use rkyv::{Archive, Deserialize, Serialize};

use crate::durable;
use crate::error::RaftShardError;
use crate::machine::Machine;
use crate::state::{BrokerMeta, TopicMeta};

pub(crate) const FILE_NAME: &str = "snapshot";
// Version 2 added next_producer_id, version 3 broker_configs.
const MAGIC: &[u8; durable::MAGIC_BYTES] = b"PLRFTSN3";

#[derive(Clone, Debug, PartialEq, Eq, Archive, Serialize, Deserialize)]
pub(crate) struct StoredSnapshot {
    /// Raft index and term of the last entry the state includes (0, 0 for the first-boot snapshot).
    pub index: u64,
    pub term: u64,
    /// Raft ids of the voters (the raft `ConfState`) at `index`.
    pub voters: Vec<u64>,
    pub cluster_id: String,
    pub brokers: Vec<BrokerMeta>,
    pub topics: Vec<TopicMeta>,
    pub next_producer_id: i64,
    pub broker_configs: BTreeMap<String, String>,
}

impl StoredSnapshot {
    pub fn of(machine: &Machine, term: u64, voters: Vec<u64>) -> StoredSnapshot {
        StoredSnapshot {
            index: machine.applied_index,
            term,
            voters,
            cluster_id: machine.cluster_id.clone(),
            brokers: machine.brokers.values().cloned().collect(),
            topics: machine.topics.values().cloned().collect(),
            next_producer_id: machine.next_producer_id,
            broker_configs: machine.broker_configs.clone(),
        }
    }

    pub fn machine(&self) -> Machine {
        Machine {
            applied_index: self.index,
            cluster_id: self.cluster_id.clone(),
            brokers: self
                .brokers
                .iter()
                .map(|b| (b.node_id, b.clone()))
                .collect(),
            topics: self
                .topics
                .iter()
                .map(|t| (t.name.clone(), t.clone()))
                .collect(),
            next_producer_id: self.next_producer_id,
            broker_configs: self.broker_configs.clone(),
        }
    }
}

pub(crate) fn store(dir: &Path, snapshot: &StoredSnapshot) -> Result<(), RaftShardError> {
    let payload = rkyv::to_bytes::<rkyv::rancor::Error>(snapshot)
        .map_err(|e| RaftShardError::corrupt(dir.join(FILE_NAME), format!("cannot encode: {e}")))?;
    durable::replace(dir, FILE_NAME, MAGIC, &payload)
}

pub(crate) fn load(dir: &Path) -> Result<Option<StoredSnapshot>, RaftShardError> {
    let Some(payload) = durable::read(dir, FILE_NAME, MAGIC)? else {
        return Ok(None);
    };
    let mut aligned = rkyv::util::AlignedVec::<16>::with_capacity(payload.len());
    aligned.extend_from_slice(&payload);
    rkyv::from_bytes::<StoredSnapshot, rkyv::rancor::Error>(&aligned)
        .map(Some)
        .map_err(|e| RaftShardError::corrupt(dir.join(FILE_NAME), e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entry::LoggedCommand;
    use crate::state::{MetadataCommand, NewTopic};

    #[test]
    fn snapshot_round_trips_the_whole_machine() {
        let dir = crate::test_dir();
        let mut machine = Machine::new("cid".into());
        let register = MetadataCommand::RegisterBroker {
            node_id: 1,
            host: "h".into(),
            port: 9,
            shard_count: 2,
        };
        machine.apply(1, &LoggedCommand::new(register));
        let topic = NewTopic {
            name: "t".into(),
            partitions: 4,
            replication_factor: 1,
            configs: Default::default(),
        };
        machine.apply(
            2,
            &LoggedCommand::new(MetadataCommand::CreateTopics {
                topics: vec![topic],
                validate_only: false,
            }),
        );
        let stored = StoredSnapshot::of(&machine, 5, vec![2]);
        store(dir.path(), &stored).expect("store");
        let loaded = load(dir.path()).expect("load").expect("exists");
        assert_eq!(loaded, stored);
        assert_eq!(loaded.machine(), machine);
    }
}
