//! Per-segment indexes, kept in memory and persisted when a segment is closed:
//! - the sparse offset index maps a relative offset to the file position of the batch that
//!   starts there; one entry for the first batch and then one every `index_interval_bytes`.
//!   A read looks up the last entry at or before its offset and scans batch headers forward.
//! - the time index records (maxTimestamp, relative base offset) every time a batch raises the
//!   segment's maximum timestamp, so the first entry >= t names the first batch whose
//!   maxTimestamp >= t exactly.
//!
//! On-disk encodings are in FORMAT.md. Decoding validates monotonicity; anything odd means the
//! file is stale and the segment is rescanned.

/// Bytes per offset index entry: u32 relative offset + u32 position.
pub const OFFSET_ENTRY_BYTES: usize = 8;
/// Bytes per time index entry: i64 timestamp + u32 relative offset.
pub const TIME_ENTRY_BYTES: usize = 12;

#[derive(Default, Debug, PartialEq, Eq)]
pub struct OffsetIndex {
    entries: Vec<(u32, u32)>,
}

impl OffsetIndex {
    pub fn push(&mut self, relative_offset: u32, position: u32) {
        if let Some(&(r, p)) = self.entries.last() {
            assert!(
                relative_offset > r && position > p,
                "offset index must grow strictly"
            );
        }
        self.entries.push((relative_offset, position));
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn last(&self) -> Option<(u32, u32)> {
        self.entries.last().copied()
    }

    /// The last entry whose relative offset is <= `relative_offset`, else the segment start.
    pub fn lookup(&self, relative_offset: u32) -> (u32, u32) {
        let i = self.entries.partition_point(|&(r, _)| r <= relative_offset);
        if i == 0 {
            (0, 0)
        } else {
            self.entries[i - 1]
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.entries.len() * OFFSET_ENTRY_BYTES);
        for &(r, p) in &self.entries {
            out.extend_from_slice(&r.to_be_bytes());
            out.extend_from_slice(&p.to_be_bytes());
        }
        out
    }

    /// `None` if the bytes are not a well-formed, strictly increasing index.
    pub fn decode(bytes: &[u8]) -> Option<OffsetIndex> {
        if !bytes.len().is_multiple_of(OFFSET_ENTRY_BYTES) {
            return None;
        }
        let mut index = OffsetIndex::default();
        for e in bytes.chunks_exact(OFFSET_ENTRY_BYTES) {
            let r = u32::from_be_bytes(e[0..4].try_into().ok()?);
            let p = u32::from_be_bytes(e[4..8].try_into().ok()?);
            if let Some((lr, lp)) = index.last() {
                if r <= lr || p <= lp {
                    return None;
                }
            }
            index.entries.push((r, p));
        }
        Some(index)
    }
}

#[derive(Default, Debug, PartialEq, Eq)]
pub struct TimeIndex {
    entries: Vec<(i64, u32)>,
}

impl TimeIndex {
    /// Record the batch at `relative_offset` if it raises the maximum timestamp.
    pub fn observe(&mut self, max_timestamp: i64, relative_offset: u32) {
        if self.max_timestamp().is_none_or(|m| max_timestamp > m) {
            self.entries.push((max_timestamp, relative_offset));
        }
    }

    pub fn max_timestamp(&self) -> Option<i64> {
        self.entries.last().map(|&(t, _)| t)
    }

    /// First entry with timestamp >= `ts`: (timestamp, relative base offset).
    pub fn lookup(&self, ts: i64) -> Option<(i64, u32)> {
        let i = self.entries.partition_point(|&(t, _)| t < ts);
        self.entries.get(i).copied()
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.entries.len() * TIME_ENTRY_BYTES);
        for &(t, r) in &self.entries {
            out.extend_from_slice(&t.to_be_bytes());
            out.extend_from_slice(&r.to_be_bytes());
        }
        out
    }

    pub fn decode(bytes: &[u8]) -> Option<TimeIndex> {
        if !bytes.len().is_multiple_of(TIME_ENTRY_BYTES) {
            return None;
        }
        let mut index = TimeIndex::default();
        for e in bytes.chunks_exact(TIME_ENTRY_BYTES) {
            let t = i64::from_be_bytes(e[0..8].try_into().ok()?);
            let r = u32::from_be_bytes(e[8..12].try_into().ok()?);
            if let Some(&(lt, lr)) = index.entries.last() {
                if t <= lt || r <= lr {
                    return None;
                }
            }
            index.entries.push((t, r));
        }
        Some(index)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offset_index_lookup_and_roundtrip() {
        let mut i = OffsetIndex::default();
        assert_eq!(i.lookup(5), (0, 0));
        i.push(0, 0);
        i.push(10, 5000);
        i.push(20, 9000);
        assert_eq!(i.lookup(9), (0, 0));
        assert_eq!(i.lookup(10), (10, 5000));
        assert_eq!(i.lookup(1000), (20, 9000));
        assert_eq!(OffsetIndex::decode(&i.encode()).unwrap(), i);
        assert!(OffsetIndex::decode(&[0; 7]).is_none());
        let mut bad = i.encode();
        bad.extend_from_slice(&i.encode()[8..16]);
        assert!(OffsetIndex::decode(&bad).is_none());
    }

    #[test]
    fn time_index_keeps_only_growth() {
        let mut t = TimeIndex::default();
        t.observe(100, 0);
        t.observe(90, 3);
        t.observe(150, 5);
        assert_eq!(t.lookup(50), Some((100, 0)));
        assert_eq!(t.lookup(101), Some((150, 5)));
        assert_eq!(t.lookup(151), None);
        assert_eq!(t.max_timestamp(), Some(150));
        assert_eq!(TimeIndex::decode(&t.encode()).unwrap(), t);
    }
}
