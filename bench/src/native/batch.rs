//! Kafka record batches (magic v2), written and read without per-record allocation.
//!
//! The native driver builds each batch straight into one reused buffer (the CRC32C is patched in at the end) and
//! walks fetched batches in place, reading only what the bench needs: record count, key and value lengths, and the
//! value's send stamp. Layout (all big-endian; offsets from the batch start):
//!
//! ```text
//!  0 baseOffset i64 | 8 batchLength i32 | 12 partitionLeaderEpoch i32 | 16 magic i8 = 2 | 17 crc u32 (CRC32C of
//! 21..end) | 21 attributes i16 | 23 lastOffsetDelta i32 | 27 baseTimestamp i64 | 35 maxTimestamp i64
//! | 43 producerId i64 | 51 producerEpoch i16 | 53 baseSequence i32 | 57 recordCount i32 | 61 records...
//! record: length varint | attributes i8 | timestampDelta varlong | offsetDelta varint | keyLength varint | key
//!         | valueLength varint | value | headerCount varint
//! ```

/// Bytes before the first record.
pub const BATCH_HEADER_BYTES: usize = 61;
/// Bytes of `baseOffset` and `batchLength`, which `batchLength` does not count.
pub const BATCH_LOG_OVERHEAD_BYTES: usize = 12;
const CRC_AT: usize = 17;
const ATTRIBUTES_AT: usize = 21;
const LAST_OFFSET_DELTA_AT: usize = 23;
const RECORD_COUNT_AT: usize = 57;
/// Bits of `attributes` that name the compression codec.
const COMPRESSION_MASK: i16 = 0x07;
/// Largest encoded record header (5 varints of at most 5 or 10 bytes plus attributes).
const RECORD_OVERHEAD_BYTES_MAX: usize = 5 + 1 + 10 + 5 + 5 + 5 + 5;

/// Why a fetched batch could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BatchError {
    #[error("batch magic {0} is not 2")]
    Magic(i8),
    #[error("batch is compressed (codec {0}); the native driver reads only uncompressed batches")]
    Compressed(i16),
    #[error("batch is truncated inside a record")]
    Truncated,
}

/// Builds one uncompressed batch into a reused buffer.
#[derive(Debug)]
pub struct BatchBuilder {
    buf: Vec<u8>,
    base_timestamp_ms: i64,
    max_timestamp_ms: i64,
    records: i32,
    payload_bytes: u64,
}

impl BatchBuilder {
    pub fn with_capacity(bytes: usize) -> BatchBuilder {
        BatchBuilder {
            buf: Vec::with_capacity(bytes + BATCH_HEADER_BYTES),
            base_timestamp_ms: 0,
            max_timestamp_ms: 0,
            records: 0,
            payload_bytes: 0,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.records == 0
    }

    pub fn records(&self) -> u64 {
        self.records as u64
    }

    /// Key plus value bytes of the records so far (the bench's MB/s count payload, not framing).
    pub fn payload_bytes(&self) -> u64 {
        self.payload_bytes
    }

    /// Encoded size if a record of this key and value were added.
    pub fn size_with(&self, key: Option<&[u8]>, value: &[u8]) -> usize {
        let base = if self.buf.is_empty() {
            BATCH_HEADER_BYTES
        } else {
            self.buf.len()
        };
        base + RECORD_OVERHEAD_BYTES_MAX + key.map_or(0, <[u8]>::len) + value.len()
    }

    /// Appends a record with timestamp `timestamp_ms`.
    pub fn push(&mut self, timestamp_ms: i64, key: Option<&[u8]>, value: &[u8]) {
        if self.records == 0 {
            self.buf.clear();
            self.buf.resize(BATCH_HEADER_BYTES, 0);
            self.base_timestamp_ms = timestamp_ms;
            self.max_timestamp_ms = timestamp_ms;
        }
        self.max_timestamp_ms = self.max_timestamp_ms.max(timestamp_ms);
        let mut head = [0u8; 32];
        head[0] = 0; // record attributes
        let mut n = 1;
        n += put_varlong(&mut head[n..], timestamp_ms - self.base_timestamp_ms);
        n += put_varlong(&mut head[n..], i64::from(self.records));
        n += put_varlong(&mut head[n..], key.map_or(-1, |k| k.len() as i64));
        let key_len = key.map_or(0, <[u8]>::len);
        let mut value_len = [0u8; 10];
        let v = put_varlong(&mut value_len, value.len() as i64);
        let length = n + key_len + v + value.len() + 1; // + header count
        let mut length_buf = [0u8; 10];
        let l = put_varlong(&mut length_buf, length as i64);
        self.buf.extend_from_slice(&length_buf[..l]);
        self.buf.extend_from_slice(&head[..n]);
        if let Some(k) = key {
            self.buf.extend_from_slice(k);
        }
        self.buf.extend_from_slice(&value_len[..v]);
        self.buf.extend_from_slice(value);
        self.buf.push(0); // no headers
        self.records += 1;
        self.payload_bytes += (key_len + value.len()) as u64;
    }

    /// Writes the header and CRC and returns the finished batch; the builder is empty afterwards.
    pub fn finish(&mut self) -> &[u8] {
        assert!(self.records > 0, "an empty batch is never sent");
        let batch_length = (self.buf.len() - BATCH_LOG_OVERHEAD_BYTES) as i32;
        let b = &mut self.buf;
        b[0..8].copy_from_slice(&0i64.to_be_bytes());
        b[8..12].copy_from_slice(&batch_length.to_be_bytes());
        b[12..16].copy_from_slice(&(-1i32).to_be_bytes());
        b[16] = 2;
        b[ATTRIBUTES_AT..ATTRIBUTES_AT + 2].copy_from_slice(&0i16.to_be_bytes());
        b[LAST_OFFSET_DELTA_AT..LAST_OFFSET_DELTA_AT + 4]
            .copy_from_slice(&(self.records - 1).to_be_bytes());
        b[27..35].copy_from_slice(&self.base_timestamp_ms.to_be_bytes());
        b[35..43].copy_from_slice(&self.max_timestamp_ms.to_be_bytes());
        b[43..51].copy_from_slice(&(-1i64).to_be_bytes());
        b[51..53].copy_from_slice(&(-1i16).to_be_bytes());
        b[53..57].copy_from_slice(&(-1i32).to_be_bytes());
        b[RECORD_COUNT_AT..RECORD_COUNT_AT + 4].copy_from_slice(&self.records.to_be_bytes());
        let crc = crc32c::crc32c(&b[ATTRIBUTES_AT..]);
        b[CRC_AT..CRC_AT + 4].copy_from_slice(&crc.to_be_bytes());
        self.records = 0;
        self.payload_bytes = 0;
        &self.buf
    }
}

/// Zig-zag varint encoding of `v` into `out`; returns the bytes written.
fn put_varlong(out: &mut [u8], v: i64) -> usize {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    let mut n = 0;
    while z >= 0x80 {
        out[n] = (z as u8) | 0x80;
        z >>= 7;
        n += 1;
    }
    out[n] = z as u8;
    n + 1
}

/// Zig-zag varint decoding; `None` if `buf` ends inside it.
fn get_varlong(buf: &[u8], at: &mut usize) -> Option<i64> {
    let mut z = 0u64;
    let mut shift = 0;
    loop {
        let byte = *buf.get(*at)?;
        *at += 1;
        z |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some((z >> 1) as i64 ^ -((z & 1) as i64));
        }
        shift += 7;
        if shift > 63 {
            return None;
        }
    }
}

/// The fixed header fields of one batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    pub base_offset: i64,
    /// Bytes of the whole batch including the 12-byte log overhead.
    pub total_bytes: usize,
    pub attributes: i16,
    pub last_offset_delta: i32,
    pub record_count: i32,
}

impl BatchHeader {
    pub fn next_offset(&self) -> i64 {
        self.base_offset + i64::from(self.last_offset_delta) + 1
    }
}

/// Reads the header of the batch at the start of `buf`; `Ok(None)` if `buf` holds no complete batch (a fetch
/// response may end with a partial one).
pub fn parse_header(buf: &[u8]) -> Result<Option<BatchHeader>, BatchError> {
    if buf.len() < BATCH_HEADER_BYTES {
        return Ok(None);
    }
    let batch_length = i32::from_be_bytes(buf[8..12].try_into().expect("4 bytes"));
    let total_bytes = BATCH_LOG_OVERHEAD_BYTES + batch_length.max(0) as usize;
    if total_bytes < BATCH_HEADER_BYTES || buf.len() < total_bytes {
        return Ok(None);
    }
    let magic = buf[16] as i8;
    if magic != 2 {
        return Err(BatchError::Magic(magic));
    }
    Ok(Some(BatchHeader {
        base_offset: i64::from_be_bytes(buf[0..8].try_into().expect("8 bytes")),
        total_bytes,
        attributes: i16::from_be_bytes(
            buf[ATTRIBUTES_AT..ATTRIBUTES_AT + 2]
                .try_into()
                .expect("2 bytes"),
        ),
        last_offset_delta: i32::from_be_bytes(
            buf[LAST_OFFSET_DELTA_AT..LAST_OFFSET_DELTA_AT + 4]
                .try_into()
                .expect("4 bytes"),
        ),
        record_count: i32::from_be_bytes(
            buf[RECORD_COUNT_AT..RECORD_COUNT_AT + 4]
                .try_into()
                .expect("4 bytes"),
        ),
    }))
}

/// Calls `on_record(key_len, value)` for every record of the complete, uncompressed batch `batch`.
pub fn for_each_record(
    header: &BatchHeader,
    batch: &[u8],
    mut on_record: impl FnMut(usize, &[u8]),
) -> Result<(), BatchError> {
    let codec = header.attributes & COMPRESSION_MASK;
    if codec != 0 {
        return Err(BatchError::Compressed(codec));
    }
    let body = &batch[..header.total_bytes];
    let mut at = BATCH_HEADER_BYTES;
    for _ in 0..header.record_count {
        let length = get_varlong(body, &mut at).ok_or(BatchError::Truncated)?;
        let end = at + usize::try_from(length).map_err(|_| BatchError::Truncated)?;
        if end > body.len() {
            return Err(BatchError::Truncated);
        }
        at += 1; // attributes
        get_varlong(body, &mut at).ok_or(BatchError::Truncated)?; // timestamp delta
        get_varlong(body, &mut at).ok_or(BatchError::Truncated)?; // offset delta
        let key_len = get_varlong(body, &mut at)
            .ok_or(BatchError::Truncated)?
            .max(0) as usize;
        at += key_len;
        let value_len = get_varlong(body, &mut at)
            .ok_or(BatchError::Truncated)?
            .max(0) as usize;
        let value = body.get(at..at + value_len).ok_or(BatchError::Truncated)?;
        if at + value_len > end {
            return Err(BatchError::Truncated);
        }
        on_record(key_len, value);
        at = end;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varlong_round_trips() {
        for v in [
            0i64,
            1,
            -1,
            63,
            -64,
            64,
            300,
            -300,
            i32::MAX as i64,
            i64::MIN,
            i64::MAX,
        ] {
            let mut buf = [0u8; 10];
            let n = put_varlong(&mut buf, v);
            let mut at = 0;
            assert_eq!(get_varlong(&buf[..n], &mut at), Some(v));
            assert_eq!(at, n);
        }
        let mut at = 0;
        assert_eq!(get_varlong(&[0x80], &mut at), None);
    }

    fn sample_batch() -> Vec<u8> {
        let mut b = BatchBuilder::with_capacity(1024);
        b.push(1000, None, b"first-value");
        b.push(1005, Some(b"k1"), b"second");
        b.push(1002, Some(b""), &[7u8; 300]);
        assert_eq!(b.records(), 3);
        assert_eq!(b.payload_bytes(), 11 + 2 + 6 + 300);
        b.finish().to_vec()
    }

    #[test]
    fn built_batch_parses_back() {
        let batch = sample_batch();
        let h = parse_header(&batch).unwrap().unwrap();
        assert_eq!(h.total_bytes, batch.len());
        assert_eq!(h.record_count, 3);
        assert_eq!(h.next_offset(), 3);
        let mut seen = Vec::new();
        for_each_record(&h, &batch, |k, v| seen.push((k, v.to_vec()))).unwrap();
        assert_eq!(seen[0], (0, b"first-value".to_vec()));
        assert_eq!(seen[1], (2, b"second".to_vec()));
        assert_eq!(seen[2], (0, vec![7u8; 300]));
    }

    #[test]
    fn crc_covers_attributes_to_end() {
        let batch = sample_batch();
        let stored = u32::from_be_bytes(batch[CRC_AT..CRC_AT + 4].try_into().unwrap());
        assert_eq!(stored, crc32c::crc32c(&batch[ATTRIBUTES_AT..]));
        assert_eq!(i64::from_be_bytes(batch[27..35].try_into().unwrap()), 1000);
        assert_eq!(i64::from_be_bytes(batch[35..43].try_into().unwrap()), 1005);
    }

    #[test]
    fn builder_is_reusable() {
        let mut b = BatchBuilder::with_capacity(64);
        b.push(1, None, b"a");
        let first = b.finish().to_vec();
        assert!(b.is_empty());
        b.push(1, None, b"a");
        assert_eq!(b.finish(), &first[..]);
    }

    #[test]
    fn partial_and_bad_batches() {
        let batch = sample_batch();
        assert_eq!(parse_header(&batch[..batch.len() - 1]).unwrap(), None);
        assert_eq!(parse_header(&batch[..10]).unwrap(), None);
        let mut bad = batch.clone();
        bad[16] = 1;
        assert_eq!(parse_header(&bad), Err(BatchError::Magic(1)));
        let mut zipped = batch.clone();
        zipped[ATTRIBUTES_AT + 1] = 3;
        let h = parse_header(&zipped).unwrap().unwrap();
        assert_eq!(
            for_each_record(&h, &zipped, |_, _| {}),
            Err(BatchError::Compressed(3))
        );
        let mut lying = batch;
        lying[RECORD_COUNT_AT + 3] = 9;
        let h = parse_header(&lying).unwrap().unwrap();
        assert_eq!(
            for_each_record(&h, &lying, |_, _| {}),
            Err(BatchError::Truncated)
        );
    }

    #[test]
    fn size_with_is_an_upper_bound() {
        let mut b = BatchBuilder::with_capacity(1024);
        let estimate = b.size_with(Some(b"key"), &[1u8; 100]);
        b.push(0, Some(b"key"), &[1u8; 100]);
        assert!(b.finish().len() <= estimate);
    }
}
