//! The length + CRC32C frame every file of the raft shard is made of (layout in `FORMAT.md`).

/// `len: u32 LE` then `crc32c(payload): u32 LE`.
pub(crate) const FRAME_HEADER_BYTES: usize = 8;
/// Larger than any metadata entry or snapshot we expect by far; a bigger length is a corrupt header.
pub(crate) const FRAME_PAYLOAD_BYTES_MAX: usize = 256 << 20;

pub(crate) fn encode(payload: &[u8], out: &mut Vec<u8>) {
    assert!(
        payload.len() <= FRAME_PAYLOAD_BYTES_MAX,
        "frame payload of {} bytes",
        payload.len()
    );
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc32c::crc32c(payload).to_le_bytes());
    out.extend_from_slice(payload);
}

#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Decoded<'a> {
    /// A whole frame whose checksum matches; the next frame starts at `next`.
    Frame { payload: &'a [u8], next: usize },
    /// The buffer ends inside the frame: a write that never completed.
    Torn,
    /// The header is impossible or the checksum does not match; the frame ends at `end` (if the length is sane).
    Corrupt { end: Option<usize> },
}

pub(crate) fn decode(buf: &[u8], at: usize) -> Decoded<'_> {
    let Some(header) = buf.get(at..at + FRAME_HEADER_BYTES) else {
        return Decoded::Torn;
    };
    let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
    let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
    if len > FRAME_PAYLOAD_BYTES_MAX {
        return Decoded::Corrupt { end: None };
    }
    let start = at + FRAME_HEADER_BYTES;
    let Some(payload) = buf.get(start..start + len) else {
        return Decoded::Torn;
    };
    if crc32c::crc32c(payload) != crc {
        return Decoded::Corrupt {
            end: Some(start + len),
        };
    }
    Decoded::Frame {
        payload,
        next: start + len,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_decode_in_sequence_and_damage_is_classified() {
        let mut buf = Vec::new();
        encode(b"first", &mut buf);
        encode(b"", &mut buf);
        let Decoded::Frame { payload, next } = decode(&buf, 0) else {
            panic!("whole frame")
        };
        assert_eq!(payload, b"first");
        assert_eq!(
            decode(&buf, next),
            Decoded::Frame {
                payload: b"",
                next: buf.len()
            }
        );
        assert_eq!(decode(&buf, buf.len()), Decoded::Torn);
        assert_eq!(decode(&buf[..10], 0), Decoded::Torn);
        let mut flipped = buf.clone();
        flipped[9] ^= 1;
        assert_eq!(decode(&flipped, 0), Decoded::Corrupt { end: Some(13) });
        let mut huge = buf.clone();
        huge[3] = 0xff;
        assert_eq!(decode(&huge, 0), Decoded::Corrupt { end: None });
    }
}
