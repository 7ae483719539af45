//! The raft hard state (term, vote, commit) in `<dir>/hardstate`, replaced atomically on every change.

use std::path::Path;

use protobuf::Message;
use raft::eraftpb::HardState;

use crate::durable;
use crate::error::RaftShardError;

pub(crate) const FILE_NAME: &str = "hardstate";
const MAGIC: &[u8; durable::MAGIC_BYTES] = b"PLRFTHS1";

pub(crate) fn store(dir: &Path, hs: &HardState) -> Result<(), RaftShardError> {
    let payload = hs
        .write_to_bytes()
        .map_err(|e| RaftShardError::corrupt(dir.join(FILE_NAME), e.to_string()))?;
    durable::replace(dir, FILE_NAME, MAGIC, &payload)
}

pub(crate) fn load(dir: &Path) -> Result<Option<HardState>, RaftShardError> {
    let Some(payload) = durable::read(dir, FILE_NAME, MAGIC)? else {
        return Ok(None);
    };
    HardState::parse_from_bytes(&payload)
        .map(Some)
        .map_err(|e| RaftShardError::corrupt(dir.join(FILE_NAME), e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hard_state_round_trips_and_is_replaced() {
        let dir = crate::test_dir();
        assert_eq!(load(dir.path()).expect("no file is fine"), None);
        let mut hs = HardState {
            term: 3,
            vote: 1,
            commit: 17,
            ..Default::default()
        };
        store(dir.path(), &hs).expect("store");
        hs.commit = 18;
        store(dir.path(), &hs).expect("store again");
        assert_eq!(load(dir.path()).expect("load"), Some(hs));
        assert!(!dir.path().join("hardstate.tmp").exists());
        std::fs::write(
            dir.path().join(FILE_NAME),
            b"PLRFTHS1\x01\x00\x00\x00\x00\x00\x00\x00x",
        )
        .expect("damage");
        assert!(matches!(
            load(dir.path()),
            Err(RaftShardError::Corrupt { .. })
        ));
    }
}
