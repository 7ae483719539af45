//! The records inside a v2 batch, read without copying: compaction needs each record's key,
//! offset delta, timestamp and whether its value is null, and produce on compacted topics
//! needs to refuse keyless records. Nothing else in the engine looks inside a batch.
//!
//! Record layout (after the 61-byte batch header, possibly compressed as a whole):
//! ```text
//! length varint | attributes i8 | timestampDelta varlong | offsetDelta varint
//! keyLength varint (-1 = null) | key | valueLength varint (-1 = null) | value
//! headerCount varint | headers: (keyLength varint | key | valueLength varint | value)*
//! ```
//! Varints are zigzag-encoded base-128 (protobuf style), at most 5 bytes (varint) or 10
//! bytes (varlong). `length` counts the bytes after itself.

use crate::batch::{BatchHeader, HEADER_BYTES};
use crate::compression::{self, CODEC_NONE};
use crate::error::AppendError;
use std::borrow::Cow;
use std::io;

/// The records area of `batch` (the whole batch, header included), decompressed if needed.
pub fn records_area<'a>(batch: &'a [u8], h: &BatchHeader) -> io::Result<Cow<'a, [u8]>> {
    let data = &batch[HEADER_BYTES..h.total_bytes];
    match h.compression() {
        CODEC_NONE => Ok(Cow::Borrowed(data)),
        codec => compression::decompress(codec, data).map(Cow::Owned),
    }
}

/// Compacted topics: every record of a produced batch must have a key (Kafka refuses keyless
/// records there with INVALID_RECORD). Control batches are exempt.
pub fn require_keys(batch: &[u8], h: &BatchHeader) -> Result<(), AppendError> {
    if h.is_control() {
        return Ok(());
    }
    let area = records_area(batch, h)
        .map_err(|e| AppendError::CorruptMessage(format!("cannot decompress records: {e}")))?;
    for record in records(&area, h.record_count) {
        let record = record.map_err(|e| AppendError::CorruptMessage(e.to_string()))?;
        if record.key.is_none() {
            return Err(AppendError::InvalidRecord(
                "compacted topic refuses a record without a key".into(),
            ));
        }
    }
    Ok(())
}

/// Why the records of a batch could not be parsed. Never a panic: the bytes may come from a
/// producer.
#[derive(thiserror::Error, Debug, PartialEq, Eq)]
#[error("malformed record: {0}")]
pub struct MalformedRecord(pub &'static str);

/// One record, borrowed from the (decompressed) records area of its batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordView<'a> {
    pub offset_delta: i32,
    pub timestamp_delta: i64,
    pub key: Option<&'a [u8]>,
    /// A tombstone on compacted topics.
    pub value_is_null: bool,
    /// The whole record, length prefix included: what compaction copies to keep it.
    pub bytes: &'a [u8],
}

/// Iterator over the `count` records in `buf`; yields an error (then stops) on malformed
/// bytes, a wrong count or trailing bytes.
pub struct Records<'a> {
    buf: &'a [u8],
    pos: usize,
    left: i32,
    done: bool,
}

pub fn records(buf: &[u8], count: i32) -> Records<'_> {
    Records {
        buf,
        pos: 0,
        left: count,
        done: false,
    }
}

impl<'a> Iterator for Records<'a> {
    type Item = Result<RecordView<'a>, MalformedRecord>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        if self.left <= 0 {
            self.done = true;
            return (self.pos != self.buf.len())
                .then_some(Err(MalformedRecord("bytes after the last record")));
        }
        self.left -= 1;
        let parsed = parse_record(self.buf, &mut self.pos);
        if parsed.is_err() {
            self.done = true;
        }
        Some(parsed)
    }
}

fn parse_record<'a>(buf: &'a [u8], pos: &mut usize) -> Result<RecordView<'a>, MalformedRecord> {
    let start = *pos;
    let length = varint(buf, pos)?;
    let length = usize::try_from(length).map_err(|_| MalformedRecord("negative record length"))?;
    let end = pos
        .checked_add(length)
        .filter(|&e| e <= buf.len())
        .ok_or(MalformedRecord("record longer than its batch"))?;
    let body = &buf[..end];
    *pos += 1; // attributes: unused in v2
    let timestamp_delta = varlong(body, pos)?;
    let offset_delta = varint(body, pos)?;
    let key = nullable_bytes(body, pos)?;
    let value_is_null = nullable_bytes(body, pos)?.is_none();
    let headers = varint(body, pos)?;
    if headers < 0 {
        return Err(MalformedRecord("negative header count"));
    }
    for _ in 0..headers {
        if nullable_bytes(body, pos)?.is_none() {
            return Err(MalformedRecord("null header key"));
        }
        nullable_bytes(body, pos)?;
    }
    if *pos != end {
        return Err(MalformedRecord("record length disagrees with its fields"));
    }
    Ok(RecordView {
        offset_delta,
        timestamp_delta,
        key,
        value_is_null,
        bytes: &buf[start..end],
    })
}

/// A varint length followed by that many bytes; length -1 is null.
fn nullable_bytes<'a>(buf: &'a [u8], pos: &mut usize) -> Result<Option<&'a [u8]>, MalformedRecord> {
    let len = varint(buf, pos)?;
    if len == -1 {
        return Ok(None);
    }
    let len = usize::try_from(len).map_err(|_| MalformedRecord("negative field length"))?;
    let end = pos
        .checked_add(len)
        .filter(|&e| e <= buf.len())
        .ok_or(MalformedRecord("field longer than its record"))?;
    let bytes = &buf[*pos..end];
    *pos = end;
    Ok(Some(bytes))
}

fn varint(buf: &[u8], pos: &mut usize) -> Result<i32, MalformedRecord> {
    let v = zigzag(buf, pos, 5)?;
    i32::try_from(v).map_err(|_| MalformedRecord("varint out of range"))
}

fn varlong(buf: &[u8], pos: &mut usize) -> Result<i64, MalformedRecord> {
    zigzag(buf, pos, 10)
}

fn zigzag(buf: &[u8], pos: &mut usize, max_bytes: usize) -> Result<i64, MalformedRecord> {
    let mut raw: u64 = 0;
    for i in 0..max_bytes {
        let byte = *buf.get(*pos).ok_or(MalformedRecord("truncated varint"))?;
        *pos += 1;
        raw |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Ok((raw >> 1) as i64 ^ -((raw & 1) as i64));
        }
    }
    Err(MalformedRecord("varint too long"))
}

/// Test support: append one encoded record to `out`.
#[cfg(test)]
pub(crate) fn encode_record(
    out: &mut Vec<u8>,
    offset_delta: i32,
    timestamp_delta: i64,
    key: Option<&[u8]>,
    value: Option<&[u8]>,
) {
    fn put(out: &mut Vec<u8>, v: i64) {
        let mut z = ((v << 1) ^ (v >> 63)) as u64;
        while z >= 0x80 {
            out.push((z as u8) | 0x80);
            z >>= 7;
        }
        out.push(z as u8);
    }
    fn put_bytes(out: &mut Vec<u8>, b: Option<&[u8]>) {
        match b {
            Some(b) => {
                put(out, b.len() as i64);
                out.extend_from_slice(b);
            }
            None => put(out, -1),
        }
    }
    let mut body = vec![0u8];
    put(&mut body, timestamp_delta);
    put(&mut body, i64::from(offset_delta));
    put_bytes(&mut body, key);
    put_bytes(&mut body, value);
    put(&mut body, 1);
    put_bytes(&mut body, Some(b"h"));
    put_bytes(&mut body, None);
    put(out, body.len() as i64);
    out.extend_from_slice(&body);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_what_it_encodes_and_refuses_garbage() {
        let mut buf = Vec::new();
        encode_record(&mut buf, 0, 5, Some(b"k1"), Some(b"value"));
        encode_record(&mut buf, 300, -70_000, None, None);
        let all: Vec<_> = records(&buf, 2).collect::<Result<_, _>>().unwrap();
        assert_eq!(all[0].key, Some(&b"k1"[..]));
        assert_eq!((all[0].offset_delta, all[0].timestamp_delta), (0, 5));
        assert!(!all[0].value_is_null);
        assert_eq!((all[1].key, all[1].value_is_null), (None, true));
        assert_eq!(
            (all[1].offset_delta, all[1].timestamp_delta),
            (300, -70_000)
        );
        assert_eq!(all[0].bytes.len() + all[1].bytes.len(), buf.len());

        assert!(records(&buf, 1).any(|r| r.is_err()), "trailing bytes");
        assert!(records(&buf, 3).any(|r| r.is_err()), "count too high");
        for cut in 1..buf.len() {
            assert!(
                records(&buf[..cut], 2).any(|r| r.is_err()),
                "truncated at {cut}"
            );
        }
        assert!(
            records(&[0xff; 12], 1).any(|r| r.is_err()),
            "endless varint"
        );
    }
}
