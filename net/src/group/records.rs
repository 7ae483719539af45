//! The records of `__consumer_offsets`, byte for byte as Kafka writes them, so the topic reads the same to Kafka
//! tools and a log written by pinlog could be replayed by Kafka (and the other way round).
//!
//! Keys (big endian, strings are i16 length + UTF-8):
//! ```text
//! offset commit   key v1: version=1 i16 | group str | topic str | partition i32
//! group metadata  key v2: version=2 i16 | group str
//! ```
//! Values: offset commit v3 (`offset i64 | leader_epoch i32 | metadata str | commit_timestamp i64`) and group
//! metadata v3 (`protocol_type str | generation i32 | protocol str? | leader str? | state_timestamp i64 |
//! members [member_id str | instance_id str? | client_id str | client_host str | rebalance_timeout i32 |
//! session_timeout i32 | subscription bytes | assignment bytes]`). pinlog writes those versions and reads every
//! version Kafka has written (offset v0-v4, group v0-v4; v4 of both is the "flexible" encoding with compact
//! strings and tagged fields). A null value is a tombstone: the offset or the group was deleted.
//!
//! The records travel in uncompressed v2 record batches (CRC-32C), encoded and checked by `kafka-protocol`.

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::indexmap::IndexMap;
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

const OFFSET_KEY_VERSION: i16 = 1;
const GROUP_KEY_VERSION: i16 = 2;
const OFFSET_VALUE_VERSION: i16 = 3;
const GROUP_VALUE_VERSION: i16 = 3;
/// The first "flexible" version of both value schemas.
const FLEXIBLE_VALUE_VERSION: i16 = 4;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RecordError {
    #[error("record truncated at byte {0}")]
    Truncated(usize),
    #[error("unknown {what} version {version}")]
    UnknownVersion { what: &'static str, version: i16 },
    #[error("invalid UTF-8 in a string at byte {0}")]
    Utf8(usize),
    #[error("record without a key")]
    NoKey,
    #[error("malformed record batch: {0}")]
    Batch(String),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OffsetValue {
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: String,
    pub commit_timestamp: i64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberValue {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub rebalance_timeout_ms: i32,
    pub session_timeout_ms: i32,
    pub subscription: Bytes,
    pub assignment: Bytes,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupValue {
    pub protocol_type: String,
    pub generation: i32,
    pub protocol: Option<String>,
    pub leader: Option<String>,
    pub state_timestamp: i64,
    pub members: Vec<MemberValue>,
}

/// One decoded record of `__consumer_offsets`; `None` values are tombstones.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GroupRecord {
    Offset {
        group: String,
        topic: String,
        partition: i32,
        value: Option<OffsetValue>,
    },
    Group {
        group: String,
        value: Option<GroupValue>,
    },
}

impl GroupRecord {
    /// Key and value bytes, as stored.
    pub fn encode(&self) -> (Bytes, Option<Bytes>) {
        let mut key = BytesMut::new();
        match self {
            GroupRecord::Offset {
                group,
                topic,
                partition,
                value,
            } => {
                key.put_i16(OFFSET_KEY_VERSION);
                put_str(&mut key, group);
                put_str(&mut key, topic);
                key.put_i32(*partition);
                (key.freeze(), value.as_ref().map(encode_offset_value))
            }
            GroupRecord::Group { group, value } => {
                key.put_i16(GROUP_KEY_VERSION);
                put_str(&mut key, group);
                (key.freeze(), value.as_ref().map(encode_group_value))
            }
        }
    }

    pub fn decode(key: &[u8], value: Option<&[u8]>) -> Result<GroupRecord, RecordError> {
        let mut k = Reader::new(key, false);
        match k.i16()? {
            0 | 1 => Ok(GroupRecord::Offset {
                group: k.string()?,
                topic: k.string()?,
                partition: k.i32()?,
                value: value.map(decode_offset_value).transpose()?,
            }),
            2 => Ok(GroupRecord::Group {
                group: k.string()?,
                value: value.map(decode_group_value).transpose()?,
            }),
            version => Err(RecordError::UnknownVersion {
                what: "key",
                version,
            }),
        }
    }
}

fn encode_offset_value(v: &OffsetValue) -> Bytes {
    let mut out = BytesMut::with_capacity(24 + v.metadata.len());
    out.put_i16(OFFSET_VALUE_VERSION);
    out.put_i64(v.offset);
    out.put_i32(v.leader_epoch);
    put_str(&mut out, &v.metadata);
    out.put_i64(v.commit_timestamp);
    out.freeze()
}

fn decode_offset_value(bytes: &[u8]) -> Result<OffsetValue, RecordError> {
    let version = Reader::new(bytes, false).i16()?;
    let mut r = Reader::new(&bytes[2..], version >= FLEXIBLE_VALUE_VERSION);
    if !(0..=FLEXIBLE_VALUE_VERSION).contains(&version) {
        return Err(RecordError::UnknownVersion {
            what: "offset value",
            version,
        });
    }
    let offset = r.i64()?;
    let leader_epoch = if version >= 3 { r.i32()? } else { -1 };
    let metadata = r.string()?;
    let commit_timestamp = r.i64()?;
    if version == 1 {
        r.i64()?; // expire timestamp, superseded by the broker's retention
    }
    r.tagged_fields()?;
    Ok(OffsetValue {
        offset,
        leader_epoch,
        metadata,
        commit_timestamp,
    })
}

fn encode_group_value(v: &GroupValue) -> Bytes {
    let mut out = BytesMut::with_capacity(64);
    out.put_i16(GROUP_VALUE_VERSION);
    put_str(&mut out, &v.protocol_type);
    out.put_i32(v.generation);
    put_nullable_str(&mut out, v.protocol.as_deref());
    put_nullable_str(&mut out, v.leader.as_deref());
    out.put_i64(v.state_timestamp);
    out.put_i32(v.members.len() as i32);
    for m in &v.members {
        put_str(&mut out, &m.member_id);
        put_nullable_str(&mut out, m.instance_id.as_deref());
        put_str(&mut out, &m.client_id);
        put_str(&mut out, &m.client_host);
        out.put_i32(m.rebalance_timeout_ms);
        out.put_i32(m.session_timeout_ms);
        put_bytes(&mut out, &m.subscription);
        put_bytes(&mut out, &m.assignment);
    }
    out.freeze()
}

fn decode_group_value(bytes: &[u8]) -> Result<GroupValue, RecordError> {
    let version = Reader::new(bytes, false).i16()?;
    if !(0..=FLEXIBLE_VALUE_VERSION).contains(&version) {
        return Err(RecordError::UnknownVersion {
            what: "group value",
            version,
        });
    }
    let mut r = Reader::new(&bytes[2..], version >= FLEXIBLE_VALUE_VERSION);
    let protocol_type = r.string()?;
    let generation = r.i32()?;
    let protocol = r.nullable_string()?;
    let leader = r.nullable_string()?;
    let state_timestamp = if version >= 2 { r.i64()? } else { -1 };
    let count = r.array_len()?;
    let mut members = Vec::with_capacity(count.min(1024));
    for _ in 0..count {
        let member_id = r.string()?;
        let instance_id = if version >= 3 {
            r.nullable_string()?
        } else {
            None
        };
        let client_id = r.string()?;
        let client_host = r.string()?;
        let rebalance_timeout_ms = if version >= 1 { r.i32()? } else { -1 };
        let session_timeout_ms = r.i32()?;
        let subscription = r.bytes()?;
        let assignment = r.bytes()?;
        r.tagged_fields()?;
        members.push(MemberValue {
            member_id,
            instance_id,
            client_id,
            client_host,
            rebalance_timeout_ms: if rebalance_timeout_ms < 0 {
                session_timeout_ms
            } else {
                rebalance_timeout_ms
            },
            session_timeout_ms,
            subscription,
            assignment,
        });
    }
    r.tagged_fields()?;
    Ok(GroupValue {
        protocol_type,
        generation,
        protocol,
        leader,
        state_timestamp,
        members,
    })
}

/// One uncompressed v2 batch holding `records` (base offset 0; the log assigns the real one).
pub fn encode_batch(records: &[GroupRecord], now_ms: i64) -> Result<Bytes, RecordError> {
    let encoded: Vec<Record> = records
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let (key, value) = r.encode();
            Record {
                transactional: false,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: -1,
                producer_id: -1,
                producer_epoch: -1,
                timestamp_type: TimestampType::Creation,
                offset: i as i64,
                sequence: -1,
                timestamp: now_ms,
                key: Some(key),
                value,
                headers: IndexMap::new(),
            }
        })
        .collect();
    let mut out = BytesMut::new();
    let options = RecordEncodeOptions {
        version: 2,
        compression: Compression::None,
    };
    RecordBatchEncoder::encode(&mut out, &encoded, &options)
        .map_err(|e| RecordError::Batch(e.to_string()))?;
    Ok(out.freeze())
}

/// Decodes whole batches as the log returns them; yields each record with its offset.
pub fn decode_batches(mut bytes: Bytes) -> Result<Vec<(i64, Record)>, RecordError> {
    let mut out = Vec::new();
    while !bytes.is_empty() {
        let set = RecordBatchDecoder::decode(&mut bytes)
            .map_err(|e| RecordError::Batch(e.to_string()))?;
        out.extend(set.records.into_iter().map(|r| (r.offset, r)));
    }
    Ok(out)
}

fn put_str(out: &mut BytesMut, s: &str) {
    out.put_i16(s.len() as i16);
    out.put_slice(s.as_bytes());
}

fn put_nullable_str(out: &mut BytesMut, s: Option<&str>) {
    match s {
        Some(s) => put_str(out, s),
        None => out.put_i16(-1),
    }
}

fn put_bytes(out: &mut BytesMut, b: &[u8]) {
    out.put_i32(b.len() as i32);
    out.put_slice(b);
}

/// Reads the classic (fixed-width lengths) or the flexible (varint lengths, tagged fields) encoding.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    flexible: bool,
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8], flexible: bool) -> Reader<'a> {
        Reader {
            buf,
            pos: 0,
            flexible,
        }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], RecordError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|end| *end <= self.buf.len())
            .ok_or(RecordError::Truncated(self.pos))?;
        let slice = &self.buf[self.pos..end];
        self.pos = end;
        Ok(slice)
    }

    fn i16(&mut self) -> Result<i16, RecordError> {
        Ok(i16::from_be_bytes(
            self.take(2)?.try_into().expect("2 bytes"),
        ))
    }

    fn i32(&mut self) -> Result<i32, RecordError> {
        Ok(i32::from_be_bytes(
            self.take(4)?.try_into().expect("4 bytes"),
        ))
    }

    fn i64(&mut self) -> Result<i64, RecordError> {
        Ok(i64::from_be_bytes(
            self.take(8)?.try_into().expect("8 bytes"),
        ))
    }

    fn varint(&mut self) -> Result<u64, RecordError> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = self.take(1)?[0];
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(RecordError::Truncated(self.pos))
    }

    /// A length: -1 means null. Flexible encodings store length + 1 as an unsigned varint.
    fn len(&mut self, wide: bool) -> Result<i64, RecordError> {
        if self.flexible {
            Ok(self.varint()? as i64 - 1)
        } else if wide {
            Ok(i64::from(self.i32()?))
        } else {
            Ok(i64::from(self.i16()?))
        }
    }

    fn nullable_string(&mut self) -> Result<Option<String>, RecordError> {
        let len = self.len(false)?;
        if len < 0 {
            return Ok(None);
        }
        let at = self.pos;
        let raw = self.take(len as usize)?;
        std::str::from_utf8(raw)
            .map(|s| Some(s.to_owned()))
            .map_err(|_| RecordError::Utf8(at))
    }

    fn string(&mut self) -> Result<String, RecordError> {
        Ok(self.nullable_string()?.unwrap_or_default())
    }

    fn bytes(&mut self) -> Result<Bytes, RecordError> {
        let len = self.len(true)?;
        if len < 0 {
            return Ok(Bytes::new());
        }
        Ok(Bytes::copy_from_slice(self.take(len as usize)?))
    }

    fn array_len(&mut self) -> Result<usize, RecordError> {
        Ok(self.len(true)?.max(0) as usize)
    }

    fn tagged_fields(&mut self) -> Result<(), RecordError> {
        if !self.flexible {
            return Ok(());
        }
        for _ in 0..self.varint()? {
            self.varint()?;
            let size = self.varint()? as usize;
            self.take(size)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group_value() -> GroupValue {
        GroupValue {
            protocol_type: "consumer".into(),
            generation: 7,
            protocol: Some("range".into()),
            leader: Some("m-1".into()),
            state_timestamp: 1234,
            members: vec![MemberValue {
                member_id: "m-1".into(),
                instance_id: Some("i-1".into()),
                client_id: "c".into(),
                client_host: "/127.0.0.1".into(),
                rebalance_timeout_ms: 300_000,
                session_timeout_ms: 10_000,
                subscription: Bytes::from_static(b"sub"),
                assignment: Bytes::from_static(b"\x00\x01assign"),
            }],
        }
    }

    #[test]
    fn offset_record_has_kafkas_exact_bytes() {
        let record = GroupRecord::Offset {
            group: "g".into(),
            topic: "t".into(),
            partition: 3,
            value: Some(OffsetValue {
                offset: 42,
                leader_epoch: 5,
                metadata: "m".into(),
                commit_timestamp: 99,
            }),
        };
        let (key, value) = record.encode();
        assert_eq!(&key[..], b"\x00\x01\x00\x01g\x00\x01t\x00\x00\x00\x03");
        let value = value.unwrap();
        assert_eq!(
            &value[..],
            b"\x00\x03\0\0\0\0\0\0\0\x2a\0\0\0\x05\x00\x01m\0\0\0\0\0\0\0\x63"
        );
        assert_eq!(GroupRecord::decode(&key, Some(&value)).unwrap(), record);
    }

    #[test]
    fn group_record_and_tombstone_round_trip() {
        let record = GroupRecord::Group {
            group: "g".into(),
            value: Some(group_value()),
        };
        let (key, value) = record.encode();
        assert_eq!(&key[..], b"\x00\x02\x00\x01g");
        assert_eq!(GroupRecord::decode(&key, value.as_deref()).unwrap(), record);
        let tombstone = GroupRecord::Group {
            group: "g".into(),
            value: None,
        };
        let (key, value) = tombstone.encode();
        assert!(value.is_none());
        assert_eq!(GroupRecord::decode(&key, None).unwrap(), tombstone);
    }

    #[test]
    fn reads_older_and_flexible_versions() {
        // offset value v1: offset, metadata, commit ts, expire ts
        let v1 = b"\x00\x01\0\0\0\0\0\0\0\x07\x00\x00\0\0\0\0\0\0\0\x01\0\0\0\0\0\0\0\x02";
        let v = decode_offset_value(v1).unwrap();
        assert_eq!((v.offset, v.leader_epoch, v.commit_timestamp), (7, -1, 1));
        // offset value v4 (flexible): offset, epoch, compact metadata "ab", commit ts, no tags
        let v4 = b"\x00\x04\0\0\0\0\0\0\0\x09\0\0\0\x02\x03ab\0\0\0\0\0\0\0\x05\x00";
        let v = decode_offset_value(v4).unwrap();
        assert_eq!(
            (v.offset, v.leader_epoch, v.metadata.as_str()),
            (9, 2, "ab")
        );
    }

    #[test]
    fn bad_input_is_an_error_not_a_panic() {
        let (key, value) = GroupRecord::Group {
            group: "g".into(),
            value: Some(group_value()),
        }
        .encode();
        let value = value.unwrap();
        for cut in 0..value.len() {
            assert!(decode_group_value(&value[..cut]).is_err(), "cut at {cut}");
        }
        assert!(GroupRecord::decode(&key[..3], None).is_err());
        assert!(matches!(
            GroupRecord::decode(b"\x00\x09", None),
            Err(RecordError::UnknownVersion { .. })
        ));
    }

    #[test]
    fn batch_round_trip_keeps_keys_values_and_tombstones() {
        let records = vec![
            GroupRecord::Group {
                group: "g".into(),
                value: Some(group_value()),
            },
            GroupRecord::Offset {
                group: "g".into(),
                topic: "t".into(),
                partition: 0,
                value: None,
            },
        ];
        let batch = encode_batch(&records, 1000).unwrap();
        assert_eq!(batch[16], 2, "magic v2");
        let decoded = decode_batches(batch).unwrap();
        assert_eq!(decoded.len(), 2);
        for ((offset, record), expected) in decoded.iter().zip(&records) {
            let back =
                GroupRecord::decode(record.key.as_ref().unwrap(), record.value.as_deref()).unwrap();
            assert_eq!(&back, expected);
            assert!(*offset >= 0);
        }
    }
}
