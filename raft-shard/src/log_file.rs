//! The raft log in `<dir>/raft.log`: an 8-byte magic, then one frame per raft entry (protobuf `Entry`), appended
//! and fdatasync'ed once per Ready.
//!
//! Raft may overwrite a suffix of its log (a follower learning of a new leader's entries). The file stays
//! append-only: a later frame whose index is at or below an earlier one replaces that entry and everything after
//! it, so replay reproduces the log raft saw. After each snapshot the file is rewritten to the entries after it.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use protobuf::Message;
use raft::eraftpb::Entry;

use crate::durable;
use crate::error::RaftShardError;
use crate::frame::{self, Decoded};

pub(crate) const FILE_NAME: &str = "raft.log";
const MAGIC: &[u8; durable::MAGIC_BYTES] = b"PLRFTLG2";

pub(crate) struct LogFile {
    dir: PathBuf,
    path: PathBuf,
    file: File,
    /// Reused encode buffer, so an append allocates only when it outgrows every earlier one.
    buf: Vec<u8>,
}

impl LogFile {
    /// Opens (or creates) the log and returns the entries it holds, in index order without gaps.
    ///
    /// A torn or checksum-failing last frame is a write that was never acknowledged (the fdatasync did not
    /// return): it is cut off. Damage before the last frame is corruption of acknowledged entries: an error.
    pub fn open(dir: &Path) -> Result<(LogFile, Vec<Entry>), RaftShardError> {
        let path = dir.join(FILE_NAME);
        if !path.exists() {
            durable::write_and_rename(dir, FILE_NAME, MAGIC)?;
        }
        let bytes = std::fs::read(&path).map_err(RaftShardError::io("read", &path))?;
        if bytes.get(..durable::MAGIC_BYTES) != Some(MAGIC.as_slice()) {
            return Err(RaftShardError::corrupt(&path, "wrong magic"));
        }
        let (entries, valid_bytes) = replay(&path, &bytes)?;
        let file = OpenOptions::new()
            .append(true)
            .open(&path)
            .map_err(RaftShardError::io("open", &path))?;
        if valid_bytes < bytes.len() {
            tracing::warn!(path = %path.display(), cut_bytes = bytes.len() - valid_bytes, "raft log: cutting off a torn last write");
            file.set_len(valid_bytes as u64)
                .map_err(RaftShardError::io("truncate", &path))?;
            file.sync_data()
                .map_err(RaftShardError::io("fdatasync", &path))?;
        }
        Ok((
            LogFile {
                dir: dir.to_owned(),
                path,
                file,
                buf: Vec::new(),
            },
            entries,
        ))
    }

    /// Appends the entries and makes them durable before returning.
    pub fn append(&mut self, entries: &[Entry]) -> Result<(), RaftShardError> {
        self.buf.clear();
        encode_entries(entries, &mut self.buf, &self.path)?;
        self.file
            .write_all(&self.buf)
            .map_err(RaftShardError::io("write", &self.path))?;
        self.file
            .sync_data()
            .map_err(RaftShardError::io("fdatasync", &self.path))
    }

    /// Replaces the whole log with `entries` (atomically: a crash leaves the old or the new log).
    pub fn rewrite(&mut self, entries: &[Entry]) -> Result<(), RaftShardError> {
        let mut bytes = MAGIC.to_vec();
        encode_entries(entries, &mut bytes, &self.path)?;
        durable::write_and_rename(&self.dir, FILE_NAME, &bytes)?;
        self.file = OpenOptions::new()
            .append(true)
            .open(&self.path)
            .map_err(RaftShardError::io("open", &self.path))?;
        Ok(())
    }
}

fn encode_entries(entries: &[Entry], out: &mut Vec<u8>, path: &Path) -> Result<(), RaftShardError> {
    for entry in entries {
        let payload = entry
            .write_to_bytes()
            .map_err(|e| RaftShardError::corrupt(path, e.to_string()))?;
        frame::encode(&payload, out);
    }
    Ok(())
}

/// Decodes every frame; returns the resulting log and how many leading bytes of the file are valid.
fn replay(path: &Path, bytes: &[u8]) -> Result<(Vec<Entry>, usize), RaftShardError> {
    let mut entries: Vec<Entry> = Vec::new();
    let mut at = durable::MAGIC_BYTES;
    while at < bytes.len() {
        let payload = match frame::decode(bytes, at) {
            Decoded::Frame { payload, next } => {
                at = next;
                payload
            }
            Decoded::Torn => return Ok((entries, at)),
            Decoded::Corrupt { end: Some(end) } if end == bytes.len() => return Ok((entries, at)),
            Decoded::Corrupt { .. } => {
                return Err(RaftShardError::corrupt(
                    path,
                    format!("bad frame at byte {at} before the end of the log"),
                ))
            }
        };
        let entry = Entry::parse_from_bytes(payload).map_err(|e| {
            RaftShardError::corrupt(path, format!("bad entry before byte {at}: {e}"))
        })?;
        let keep = entries.partition_point(|e| e.index < entry.index);
        entries.truncate(keep);
        if let Some(last) = entries.last() {
            if last.index + 1 != entry.index {
                return Err(RaftShardError::corrupt(
                    path,
                    format!("gap after index {}: {}", last.index, entry.index),
                ));
            }
        }
        entries.push(entry);
    }
    Ok((entries, at))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(index: u64, term: u64) -> Entry {
        Entry {
            index,
            term,
            data: vec![index as u8; 3].into(),
            ..Default::default()
        }
    }

    fn indexes_terms(entries: &[Entry]) -> Vec<(u64, u64)> {
        entries.iter().map(|e| (e.index, e.term)).collect()
    }

    #[test]
    fn appended_entries_survive_reopen_and_overwrites_replace_the_suffix() {
        let dir = crate::test_dir();
        let (mut log, entries) = LogFile::open(dir.path()).expect("create");
        assert!(entries.is_empty());
        log.append(&[entry(1, 1), entry(2, 1), entry(3, 1)])
            .expect("append");
        log.append(&[entry(2, 2)]).expect("overwrite from 2");
        drop(log);
        let (_, entries) = LogFile::open(dir.path()).expect("reopen");
        assert_eq!(indexes_terms(&entries), vec![(1, 1), (2, 2)]);
        assert_eq!(entries[1].data.as_ref(), &[2, 2, 2]);
    }

    #[test]
    fn a_torn_last_write_is_cut_off_and_earlier_damage_is_an_error() {
        let dir = crate::test_dir();
        let (mut log, _) = LogFile::open(dir.path()).expect("create");
        log.append(&[entry(1, 1), entry(2, 1)]).expect("append");
        drop(log);
        let path = dir.path().join(FILE_NAME);
        let whole = std::fs::read(&path).expect("read");
        std::fs::write(&path, &whole[..whole.len() - 2]).expect("tear");
        let (mut log, entries) = LogFile::open(dir.path()).expect("recovers");
        assert_eq!(indexes_terms(&entries), vec![(1, 1)]);
        log.append(&[entry(2, 2)]).expect("append after the cut");
        drop(log);
        let (_, entries) = LogFile::open(dir.path()).expect("reopen");
        assert_eq!(indexes_terms(&entries), vec![(1, 1), (2, 2)]);

        let mut damaged = std::fs::read(&path).expect("read");
        damaged[durable::MAGIC_BYTES + frame::FRAME_HEADER_BYTES] ^= 0xff;
        std::fs::write(&path, &damaged).expect("damage the first entry");
        assert!(matches!(
            LogFile::open(dir.path()),
            Err(RaftShardError::Corrupt { .. })
        ));
    }

    #[test]
    fn rewrite_keeps_only_the_given_entries() {
        let dir = crate::test_dir();
        let (mut log, _) = LogFile::open(dir.path()).expect("create");
        log.append(&[entry(1, 1), entry(2, 1), entry(3, 1)])
            .expect("append");
        log.rewrite(&[entry(3, 1)]).expect("compact");
        log.append(&[entry(4, 1)]).expect("append after rewrite");
        drop(log);
        let (_, entries) = LogFile::open(dir.path()).expect("reopen");
        assert_eq!(indexes_terms(&entries), vec![(3, 1), (4, 1)]);
    }
}
