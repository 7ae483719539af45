//! Batch compression codecs (attributes bits 0-2), through the `kafka-protocol` crate's
//! implementations of Kafka's framings (gzip, xerial snappy, lz4 frame, zstd). Used only off
//! the plain produce path: compaction (decompress, filter, recompress with the same codec) and
//! the keyless-record check on compacted topics.

use bytes::{Bytes, BytesMut};
use kafka_protocol::compression::{Compressor, Decompressor, Gzip, Lz4, Snappy, Zstd};
use std::io;

pub const CODEC_NONE: u8 = 0;
const CODEC_GZIP: u8 = 1;
const CODEC_SNAPPY: u8 = 2;
const CODEC_LZ4: u8 = 3;
const CODEC_ZSTD: u8 = 4;

fn unknown(codec: u8) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("unknown compression codec {codec}"),
    )
}

/// kafka-protocol reports `anyhow::Error`s; only their text is kept.
fn invalid(e: impl std::fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("{e:#}"))
}

/// The uncompressed records area of a batch compressed with `codec`.
pub fn decompress(codec: u8, data: &[u8]) -> io::Result<Vec<u8>> {
    let mut src = data;
    // Bytes -> Vec reuses the allocation when the Bytes is unique (it is, freshly decoded).
    let take = |b: &mut Bytes| Ok(Vec::from(std::mem::take(b)));
    let result = match codec {
        CODEC_GZIP => Gzip::decompress(&mut src, take),
        CODEC_SNAPPY => Snappy::decompress(&mut src, take),
        CODEC_LZ4 => Lz4::decompress(&mut src, take),
        CODEC_ZSTD => Zstd::decompress(&mut src, take),
        _ => return Err(unknown(codec)),
    };
    result.map_err(invalid)
}

/// Append `data` compressed with `codec` to `out`.
pub fn compress(codec: u8, data: &[u8], out: &mut Vec<u8>) -> io::Result<()> {
    let fill = |tmp: &mut BytesMut| {
        tmp.extend_from_slice(data);
        Ok(())
    };
    let result = match codec {
        CODEC_GZIP => <Gzip as Compressor<Vec<u8>>>::compress(out, fill),
        CODEC_SNAPPY => <Snappy as Compressor<Vec<u8>>>::compress(out, fill),
        CODEC_LZ4 => <Lz4 as Compressor<Vec<u8>>>::compress(out, fill),
        CODEC_ZSTD => <Zstd as Compressor<Vec<u8>>>::compress(out, fill),
        _ => return Err(unknown(codec)),
    };
    result.map_err(invalid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_codec_roundtrips() {
        let data: Vec<u8> = (0..10_000u32).map(|i| (i % 7) as u8).collect();
        for codec in [CODEC_GZIP, CODEC_SNAPPY, CODEC_LZ4, CODEC_ZSTD] {
            let mut out = Vec::new();
            compress(codec, &data, &mut out).unwrap();
            assert!(out.len() < data.len(), "codec {codec} compresses");
            assert_eq!(decompress(codec, &out).unwrap(), data, "codec {codec}");
            // Longer than every codec's magic/header, so no decoder can read it as an empty stream.
            assert!(
                decompress(codec, b"definitely not a compressed stream").is_err(),
                "codec {codec} garbage"
            );
        }
        assert!(decompress(6, &data).is_err());
    }
}
