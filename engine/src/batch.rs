//! Kafka record batch (magic v2) header: parsing, validation and the in-place patches the
//! leader makes. baseOffset and partitionLeaderEpoch lie outside the CRC, so the producer's CRC
//! stays valid; only LogAppendTime topics (attributes bit 3 + maxTimestamp) and compaction
//! (fewer records) change covered bytes, and then the CRC is recomputed (`seal`), as Kafka does.
//!
//! Layout (big endian), byte positions from the batch start:
//! ```text
//!  0 baseOffset i64 | 8 batchLength i32 | 12 partitionLeaderEpoch i32 | 16 magic i8 | 17 crc u32
//! 21 attributes i16 | 23 lastOffsetDelta i32 | 27 baseTimestamp i64 | 35 maxTimestamp i64
//! 43 producerId i64 | 51 producerEpoch i16 | 53 baseSequence i32 | 57 recordCount i32 | 61 records
//! ```
//! The CRC-32C covers bytes 21.. to the end of the batch.

use crate::error::AppendError;

/// Size of the fixed v2 header.
pub const HEADER_BYTES: usize = 61;
/// baseOffset + batchLength: the bytes not counted by batchLength.
pub const LOG_OVERHEAD_BYTES: usize = 12;
/// Smallest legal batchLength (a header without records).
pub const BATCH_LENGTH_MIN_BYTES: i32 = (HEADER_BYTES - LOG_OVERHEAD_BYTES) as i32;

const LEADER_EPOCH_POS: usize = 12;
const MAGIC_POS: usize = 16;
const CRC_POS: usize = 17;
const ATTRIBUTES_POS: usize = 21;
const LAST_OFFSET_DELTA_POS: usize = 23;
const BASE_TIMESTAMP_POS: usize = 27;
const MAX_TIMESTAMP_POS: usize = 35;
const PRODUCER_ID_POS: usize = 43;
const PRODUCER_EPOCH_POS: usize = 51;
const BASE_SEQUENCE_POS: usize = 53;
const RECORD_COUNT_POS: usize = 57;
const MAGIC_V2: i8 = 2;

/// attributes bits 0-2: compression codec (0 none, 1 gzip, 2 snappy, 3 lz4, 4 zstd).
pub const ATTR_COMPRESSION_MASK: i16 = 0x07;
/// attributes bit 3: maxTimestamp is the broker's append time.
pub const ATTR_LOG_APPEND_TIME: i16 = 0x08;
/// attributes bit 5: a control batch (transaction marker).
pub const ATTR_CONTROL: i16 = 0x20;

/// The header fields the engine uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchHeader {
    pub base_offset: i64,
    /// Whole batch size on disk: 12 + batchLength.
    pub total_bytes: usize,
    pub last_offset_delta: i32,
    pub max_timestamp: i64,
    pub record_count: i32,
    pub attributes: i16,
    pub base_timestamp: i64,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
}

impl BatchHeader {
    pub fn last_offset(&self) -> i64 {
        self.base_offset + i64::from(self.last_offset_delta)
    }

    /// Compression codec id (attributes bits 0-2).
    pub fn compression(&self) -> u8 {
        (self.attributes & ATTR_COMPRESSION_MASK) as u8
    }

    pub fn is_control(&self) -> bool {
        self.attributes & ATTR_CONTROL != 0
    }

    /// A batch the idempotent-producer rules apply to.
    pub fn is_idempotent(&self) -> bool {
        self.producer_id >= 0 && self.base_sequence >= 0 && !self.is_control()
    }

    /// Sequence number of the batch's last record.
    pub fn last_sequence(&self) -> i32 {
        sequence_add(self.base_sequence, self.last_offset_delta)
    }

    /// Timestamp of a record with `timestamp_delta` (LogAppendTime batches: the batch's).
    pub fn record_timestamp(&self, timestamp_delta: i64) -> i64 {
        if self.attributes & ATTR_LOG_APPEND_TIME != 0 {
            self.max_timestamp
        } else {
            self.base_timestamp.saturating_add(timestamp_delta)
        }
    }
}

/// Kafka's sequence arithmetic: sequences are non-negative and wrap from i32::MAX to 0.
pub fn sequence_add(sequence: i32, n: i32) -> i32 {
    let wrapped = (i64::from(sequence) + i64::from(n)).rem_euclid(i64::from(i32::MAX) + 1);
    i32::try_from(wrapped).expect("reduced modulo 2^31")
}

fn i32_at(buf: &[u8], pos: usize) -> i32 {
    i32::from_be_bytes(buf[pos..pos + 4].try_into().expect("4-byte slice"))
}

fn i64_at(buf: &[u8], pos: usize) -> i64 {
    i64::from_be_bytes(buf[pos..pos + 8].try_into().expect("8-byte slice"))
}

/// Header of an already validated batch at the start of `buf` (no CRC check).
/// `None` if `buf` is shorter than a header or the length field is impossible.
pub fn peek(buf: &[u8]) -> Option<BatchHeader> {
    if buf.len() < HEADER_BYTES {
        return None;
    }
    let batch_length = i32_at(buf, 8);
    if batch_length < BATCH_LENGTH_MIN_BYTES {
        return None;
    }
    Some(BatchHeader {
        base_offset: i64_at(buf, 0),
        total_bytes: LOG_OVERHEAD_BYTES + batch_length as usize,
        last_offset_delta: i32_at(buf, LAST_OFFSET_DELTA_POS),
        max_timestamp: i64_at(buf, MAX_TIMESTAMP_POS),
        record_count: i32_at(buf, RECORD_COUNT_POS),
        attributes: i16::from_be_bytes([buf[ATTRIBUTES_POS], buf[ATTRIBUTES_POS + 1]]),
        base_timestamp: i64_at(buf, BASE_TIMESTAMP_POS),
        producer_id: i64_at(buf, PRODUCER_ID_POS),
        producer_epoch: i16::from_be_bytes([buf[PRODUCER_EPOCH_POS], buf[PRODUCER_EPOCH_POS + 1]]),
        base_sequence: i32_at(buf, BASE_SEQUENCE_POS),
    })
}

/// Fully validate a produced batch at the start of `buf` (which may hold more batches after
/// it): magic, lengths, size limit, CRC-32C, record count. Never panics on any input.
pub fn validate(buf: &[u8], max_batch_bytes: usize) -> Result<BatchHeader, AppendError> {
    let header = validate_frame(buf, max_batch_bytes)?;
    if header.record_count <= 0 {
        return Err(AppendError::CorruptMessage(format!(
            "batch holds {} records",
            header.record_count
        )));
    }
    if i64::from(header.last_offset_delta) != i64::from(header.record_count) - 1 {
        return Err(AppendError::InvalidRecord(format!(
            "lastOffsetDelta {} does not match recordCount {}",
            header.last_offset_delta, header.record_count
        )));
    }
    Ok(header)
}

/// Validate a batch read back from a segment. Compaction removes records but keeps
/// lastOffsetDelta, so a stored batch may hold fewer records than its offset span.
pub fn validate_stored(buf: &[u8]) -> Result<BatchHeader, AppendError> {
    let header = validate_frame(buf, usize::MAX)?;
    if header.record_count <= 0 || header.record_count - 1 > header.last_offset_delta {
        return Err(AppendError::CorruptMessage(format!(
            "stored batch holds {} records for lastOffsetDelta {}",
            header.record_count, header.last_offset_delta
        )));
    }
    Ok(header)
}

/// Magic, lengths, size limit and CRC-32C of the batch at the start of `buf`.
fn validate_frame(buf: &[u8], max_batch_bytes: usize) -> Result<BatchHeader, AppendError> {
    if buf.len() <= MAGIC_POS {
        return Err(AppendError::CorruptMessage(format!(
            "truncated batch: {} bytes, header needs {HEADER_BYTES}",
            buf.len()
        )));
    }
    let magic = buf[MAGIC_POS] as i8;
    if magic != MAGIC_V2 {
        return Err(AppendError::UnsupportedForMessageFormat(magic));
    }
    if buf.len() < HEADER_BYTES {
        return Err(AppendError::CorruptMessage(format!(
            "truncated batch: {} bytes, header needs {HEADER_BYTES}",
            buf.len()
        )));
    }
    let batch_length = i32_at(buf, 8);
    if batch_length < BATCH_LENGTH_MIN_BYTES {
        return Err(AppendError::CorruptMessage(format!(
            "batchLength {batch_length} below the minimum {BATCH_LENGTH_MIN_BYTES}"
        )));
    }
    let total = LOG_OVERHEAD_BYTES + batch_length as usize;
    if total > max_batch_bytes {
        return Err(AppendError::MessageTooLarge {
            size: total,
            max: max_batch_bytes,
        });
    }
    if total > buf.len() {
        return Err(AppendError::CorruptMessage(format!(
            "truncated batch: batchLength says {total} bytes, {} present",
            buf.len()
        )));
    }
    let stored_crc = u32::from_be_bytes(buf[CRC_POS..CRC_POS + 4].try_into().expect("4 bytes"));
    let actual_crc = crc32c::crc32c(&buf[ATTRIBUTES_POS..total]);
    if stored_crc != actual_crc {
        return Err(AppendError::CorruptMessage(format!(
            "CRC-32C mismatch: stored {stored_crc:#010x}, computed {actual_crc:#010x}"
        )));
    }
    Ok(peek(buf).expect("length checked above"))
}

/// Assign the leader's fields in the engine's own copy of a validated batch.
pub fn patch(batch: &mut [u8], base_offset: i64, leader_epoch: i32) {
    batch[0..8].copy_from_slice(&base_offset.to_be_bytes());
    batch[LEADER_EPOCH_POS..LEADER_EPOCH_POS + 4].copy_from_slice(&leader_epoch.to_be_bytes());
}

/// LogAppendTime: mark the batch (attributes bit 3), set maxTimestamp to `now_ms`, re-seal.
pub fn stamp_log_append_time(batch: &mut [u8], now_ms: i64) {
    let attributes = i16::from_be_bytes([batch[ATTRIBUTES_POS], batch[ATTRIBUTES_POS + 1]]);
    batch[ATTRIBUTES_POS..ATTRIBUTES_POS + 2]
        .copy_from_slice(&(attributes | ATTR_LOG_APPEND_TIME).to_be_bytes());
    batch[MAX_TIMESTAMP_POS..MAX_TIMESTAMP_POS + 8].copy_from_slice(&now_ms.to_be_bytes());
    seal(batch);
}

/// Compaction: append to `out` a batch with the original header (`header`: its first
/// `HEADER_BYTES`; baseOffset, lastOffsetDelta, attributes and sequence fields unchanged), the
/// new record count and the new records area, then seal it.
pub fn rebuild(header: &[u8], record_count: i32, records: &[u8], out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(&header[..HEADER_BYTES]);
    out[start + RECORD_COUNT_POS..start + RECORD_COUNT_POS + 4]
        .copy_from_slice(&record_count.to_be_bytes());
    out.extend_from_slice(records);
    seal(&mut out[start..]);
}

/// Set batchLength from the slice length and recompute the CRC-32C.
pub fn seal(batch: &mut [u8]) {
    let batch_length = i32::try_from(batch.len() - LOG_OVERHEAD_BYTES).expect("batch below 2 GiB");
    batch[8..12].copy_from_slice(&batch_length.to_be_bytes());
    let crc = crc32c::crc32c(&batch[ATTRIBUTES_POS..]);
    batch[CRC_POS..CRC_POS + 4].copy_from_slice(&crc.to_be_bytes());
}

/// Test support: set the idempotent-producer fields and re-seal.
#[cfg(test)]
pub(crate) fn set_producer(batch: &mut [u8], producer_id: i64, epoch: i16, base_sequence: i32) {
    batch[PRODUCER_ID_POS..PRODUCER_ID_POS + 8].copy_from_slice(&producer_id.to_be_bytes());
    batch[PRODUCER_EPOCH_POS..PRODUCER_EPOCH_POS + 2].copy_from_slice(&epoch.to_be_bytes());
    batch[BASE_SEQUENCE_POS..BASE_SEQUENCE_POS + 4].copy_from_slice(&base_sequence.to_be_bytes());
    seal(batch);
}

/// Test support: a valid batch of keyed records (offset deltas 0.., timestamp deltas 0),
/// compressed with `codec`.
#[cfg(test)]
pub(crate) type TestRecord<'a> = (Option<&'a [u8]>, Option<&'a [u8]>);

/// Test support (see `build_keyed_batch`): (key, value), `None` = null.
#[cfg(test)]
pub(crate) fn build_keyed_batch(records: &[TestRecord<'_>], timestamp: i64, codec: u8) -> Vec<u8> {
    let mut area = Vec::new();
    for (i, (key, value)) in records.iter().enumerate() {
        crate::records::encode_record(&mut area, i as i32, 0, *key, *value);
    }
    let mut b = build_batch(records.len() as i32, 0, timestamp);
    b[ATTRIBUTES_POS..ATTRIBUTES_POS + 2].copy_from_slice(&i16::from(codec).to_be_bytes());
    if codec == 0 {
        b.extend_from_slice(&area);
    } else {
        crate::compression::compress(codec, &area, &mut b).unwrap();
    }
    seal(&mut b);
    b
}

/// Test support: build a valid v2 batch with `count` dummy records of `value_bytes` each.
#[cfg(test)]
pub(crate) fn build_batch(count: i32, value_bytes: usize, max_timestamp: i64) -> Vec<u8> {
    let records_len = count as usize * value_bytes;
    let mut b = vec![0u8; HEADER_BYTES + records_len];
    let batch_length = (b.len() - LOG_OVERHEAD_BYTES) as i32;
    b[8..12].copy_from_slice(&batch_length.to_be_bytes());
    b[MAGIC_POS] = MAGIC_V2 as u8;
    b[LAST_OFFSET_DELTA_POS..LAST_OFFSET_DELTA_POS + 4].copy_from_slice(&(count - 1).to_be_bytes());
    b[27..35].copy_from_slice(&max_timestamp.to_be_bytes());
    b[MAX_TIMESTAMP_POS..MAX_TIMESTAMP_POS + 8].copy_from_slice(&max_timestamp.to_be_bytes());
    b[PRODUCER_ID_POS..PRODUCER_ID_POS + 8].copy_from_slice(&(-1i64).to_be_bytes());
    b[BASE_SEQUENCE_POS..BASE_SEQUENCE_POS + 4].copy_from_slice(&(-1i32).to_be_bytes());
    b[RECORD_COUNT_POS..RECORD_COUNT_POS + 4].copy_from_slice(&count.to_be_bytes());
    for (i, byte) in b[HEADER_BYTES..].iter_mut().enumerate() {
        *byte = (i % 251) as u8 + 1;
    }
    let crc = crc32c::crc32c(&b[ATTRIBUTES_POS..]);
    b[CRC_POS..CRC_POS + 4].copy_from_slice(&crc.to_be_bytes());
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_batch_parses_and_patch_keeps_crc() {
        let mut b = build_batch(3, 10, 1234);
        let h = validate(&b, 1 << 20).unwrap();
        assert_eq!(h.total_bytes, b.len());
        assert_eq!(h.record_count, 3);
        assert_eq!(h.max_timestamp, 1234);
        patch(&mut b, 77, 5);
        let h = validate(&b, 1 << 20).unwrap();
        assert_eq!(h.base_offset, 77);
        assert_eq!(h.last_offset(), 79);
        assert_eq!(i32_at(&b, LEADER_EPOCH_POS), 5);
    }

    #[test]
    fn rejects_bad_input_with_the_right_error() {
        let good = build_batch(2, 8, 1);
        let mut bad_crc = good.clone();
        *bad_crc.last_mut().unwrap() ^= 0xff;
        assert_eq!(validate(&bad_crc, 1 << 20).unwrap_err().kafka_code(), 2);
        let mut magic1 = good.clone();
        magic1[MAGIC_POS] = 1;
        assert_eq!(validate(&magic1, 1 << 20).unwrap_err().kafka_code(), 43);
        assert_eq!(
            validate(&good[..good.len() - 1], 1 << 20)
                .unwrap_err()
                .kafka_code(),
            2
        );
        assert_eq!(validate(&good[..5], 1 << 20).unwrap_err().kafka_code(), 2);
        assert_eq!(validate(&good, 20).unwrap_err().kafka_code(), 10);
        let mut count = good.clone();
        count[RECORD_COUNT_POS..RECORD_COUNT_POS + 4].copy_from_slice(&5i32.to_be_bytes());
        let crc = crc32c::crc32c(&count[ATTRIBUTES_POS..]);
        count[CRC_POS..CRC_POS + 4].copy_from_slice(&crc.to_be_bytes());
        assert_eq!(validate(&count, 1 << 20).unwrap_err().kafka_code(), 87);
        let mut neg_len = good.clone();
        neg_len[8..12].copy_from_slice(&(-5i32).to_be_bytes());
        assert_eq!(validate(&neg_len, 1 << 20).unwrap_err().kafka_code(), 2);
        let mut stamped = good;
        stamp_log_append_time(&mut stamped, 99);
        let h = validate(&stamped, 1 << 20).expect("re-sealed after stamping");
        assert_eq!((h.max_timestamp, h.record_timestamp(5)), (99, 99));
    }

    #[test]
    fn sequences_wrap_to_zero() {
        assert_eq!(sequence_add(5, 3), 8);
        assert_eq!(sequence_add(i32::MAX, 1), 0);
        assert_eq!(sequence_add(i32::MAX - 1, 3), 1);
    }
}
