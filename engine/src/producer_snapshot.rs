//! Producer state snapshots: `<offset, 20 digits>.snapshot` holds the idempotent producer state
//! covering every batch below `offset`, so opening a partition replays only the batches after
//! the newest usable snapshot instead of the whole log.
//!
//! Written (temp file, fdatasync, rename, directory fsync) by the group-commit task after a
//! segment roll and by `close`; the newest `SNAPSHOTS_KEPT` are kept. A snapshot beyond the
//! recovered log end describes batches a crash discarded: it is deleted at open, never loaded.
//! A snapshot that fails its CRC is deleted and the next older one is tried. Byte layout in
//! FORMAT.md.

use crate::producer_state::{BatchMeta, ProducerEntry, ProducerStateMap, PRODUCER_BATCHES_KEPT};
use crate::segment::{read_file, remove_if_exists, write_file_atomic};
use std::collections::VecDeque;
use std::io;
use std::path::{Path, PathBuf};

/// Snapshot files kept on disk (older ones are deleted after each write).
pub const SNAPSHOTS_KEPT: usize = 2;
const SNAPSHOT_VERSION: u16 = 1;
const SNAPSHOT_HEADER_BYTES: usize = 18;
const ENTRY_HEADER_BYTES: usize = 19;
const BATCH_META_BYTES: usize = 32;

pub fn snapshot_path(dir: &Path, offset: i64) -> PathBuf {
    dir.join(format!("{offset:020}.snapshot"))
}

pub fn encode(map: &ProducerStateMap, offset: i64) -> Vec<u8> {
    let mut ids: Vec<&i64> = map.producers.keys().collect();
    ids.sort_unstable();
    let mut out = vec![0u8; 4];
    out.extend_from_slice(&SNAPSHOT_VERSION.to_be_bytes());
    out.extend_from_slice(&offset.to_be_bytes());
    let count = u32::try_from(ids.len()).expect("producer count fits u32");
    out.extend_from_slice(&count.to_be_bytes());
    for id in ids {
        let e = &map.producers[id];
        out.extend_from_slice(&id.to_be_bytes());
        out.extend_from_slice(&e.epoch.to_be_bytes());
        out.extend_from_slice(&e.last_timestamp.to_be_bytes());
        out.push(u8::try_from(e.batches.len()).expect("at most PRODUCER_BATCHES_KEPT"));
        for b in &e.batches {
            out.extend_from_slice(&b.first_seq.to_be_bytes());
            out.extend_from_slice(&b.last_seq.to_be_bytes());
            out.extend_from_slice(&b.base_offset.to_be_bytes());
            out.extend_from_slice(&b.last_offset.to_be_bytes());
            out.extend_from_slice(&b.max_timestamp.to_be_bytes());
        }
    }
    let crc = crc32c::crc32c(&out[4..]);
    out[0..4].copy_from_slice(&crc.to_be_bytes());
    out
}

/// Big-endian field reader over a snapshot; `None` when the bytes run out.
struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> Option<[u8; N]> {
        let (head, rest) = self.0.split_first_chunk::<N>()?;
        self.0 = rest;
        Some(*head)
    }
}

/// `(offset, state)`, or `None` if the bytes are not a well-formed snapshot.
pub fn decode(bytes: &[u8]) -> Option<(i64, ProducerStateMap)> {
    if bytes.len() < SNAPSHOT_HEADER_BYTES {
        return None;
    }
    let mut r = Reader(bytes);
    let crc = u32::from_be_bytes(r.take()?);
    if crc != crc32c::crc32c(&bytes[4..]) || u16::from_be_bytes(r.take()?) != SNAPSHOT_VERSION {
        return None;
    }
    let offset = i64::from_be_bytes(r.take()?);
    let count = u32::from_be_bytes(r.take()?);
    let mut map = ProducerStateMap::default();
    for _ in 0..count {
        if r.0.len() < ENTRY_HEADER_BYTES {
            return None;
        }
        let id = i64::from_be_bytes(r.take()?);
        let epoch = i16::from_be_bytes(r.take()?);
        let last_timestamp = i64::from_be_bytes(r.take()?);
        let n = usize::from(r.take::<1>()?[0]);
        if n == 0 || n > PRODUCER_BATCHES_KEPT || r.0.len() < n * BATCH_META_BYTES {
            return None;
        }
        let mut batches = VecDeque::with_capacity(PRODUCER_BATCHES_KEPT);
        for _ in 0..n {
            batches.push_back(BatchMeta {
                first_seq: i32::from_be_bytes(r.take()?),
                last_seq: i32::from_be_bytes(r.take()?),
                base_offset: i64::from_be_bytes(r.take()?),
                last_offset: i64::from_be_bytes(r.take()?),
                max_timestamp: i64::from_be_bytes(r.take()?),
            });
        }
        let entry = ProducerEntry {
            epoch,
            batches,
            last_timestamp,
        };
        if map.producers.insert(id, entry).is_some() {
            return None;
        }
    }
    r.0.is_empty().then_some((offset, map))
}

/// Offsets of the snapshot files in `dir`, ascending.
pub fn list(dir: &Path) -> io::Result<Vec<i64>> {
    let mut offsets = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.extension().and_then(|e| e.to_str()) == Some("snapshot") {
            if let Some(offset) = path
                .file_stem()
                .and_then(|s| s.to_str())
                .and_then(|s| s.parse().ok())
            {
                offsets.push(offset);
            }
        }
    }
    offsets.sort_unstable();
    Ok(offsets)
}

async fn remove(dir: &Path, offset: i64) -> io::Result<()> {
    remove_if_exists(&snapshot_path(dir, offset)).await
}

/// The newest usable snapshot at or below `end` (deleting those above `end` and corrupt ones)
/// and the offsets of the snapshot files left on disk.
pub async fn load(
    dir: &Path,
    end: i64,
) -> io::Result<(Option<(i64, ProducerStateMap)>, VecDeque<i64>)> {
    let mut offsets: VecDeque<i64> = list(dir)?.into();
    while offsets.back().is_some_and(|&o| o > end) {
        let stale = offsets.pop_back().expect("checked");
        remove(dir, stale).await?;
        tracing::info!(dir = %dir.display(), offset = stale, end, "deleted producer snapshot beyond the log end");
    }
    while let Some(&offset) = offsets.back() {
        let bytes = read_file(&snapshot_path(dir, offset)).await?;
        match bytes.as_deref().and_then(decode) {
            Some((o, map)) if o == offset => return Ok((Some((o, map)), offsets)),
            _ => {
                tracing::warn!(dir = %dir.display(), offset, "deleting unreadable producer snapshot");
                offsets.pop_back();
                remove(dir, offset).await?;
            }
        }
    }
    Ok((None, offsets))
}

/// Write the snapshot for `offset`, then delete all but the newest `SNAPSHOTS_KEPT`.
pub async fn write(
    dir: &Path,
    offset: i64,
    bytes: &[u8],
    on_disk: &mut VecDeque<i64>,
) -> io::Result<()> {
    write_file_atomic(&snapshot_path(dir, offset), bytes).await?;
    if on_disk.back() != Some(&offset) {
        on_disk.push_back(offset);
    }
    while on_disk.len() > SNAPSHOTS_KEPT {
        let old = on_disk.pop_front().expect("len checked");
        remove(dir, old).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::{build_batch, peek, set_producer, BatchHeader};

    #[test]
    fn encode_decode_roundtrip_and_corruption() {
        let mut map = ProducerStateMap::default();
        for (pid, seq, base) in [(3i64, 0i32, 0i64), (3, 2, 2), (900, 7, 4)] {
            let mut b = build_batch(2, 4, 500);
            set_producer(&mut b, pid, 2, seq);
            map.record(&BatchHeader {
                base_offset: base,
                ..peek(&b).unwrap()
            });
        }
        let bytes = encode(&map, 6);
        let (offset, back) = decode(&bytes).unwrap();
        assert_eq!((offset, &back), (6, &map));
        for i in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[i] ^= 0x10;
            assert!(decode(&bad).is_none(), "flip at {i} detected");
        }
        assert!(decode(&bytes[..bytes.len() - 1]).is_none());
        assert_eq!(
            decode(&encode(&ProducerStateMap::default(), 0)).unwrap().0,
            0
        );
    }
}
