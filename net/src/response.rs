//! A response frame as a list of pieces, so that a Fetch answer carries its record sets by reference instead of
//! copying them into the frame. The record sets are already in memory (slices of the tail cache or of a disk read);
//! the kernel copies them into the socket once, and that is the only copy on the way out.
//!
//! The codec (kafka-protocol) encodes into a [`PieceBuf`] that was given the record sets to refer to ([`ByReference`]),
//! in the order the codec writes them. When the codec writes a slice that *is* the next of those (same address, same
//! length), the piece built so far is closed and the record set's own pieces follow it. Every other byte, and
//! one-piece record sets smaller than [`BY_REFERENCE_BYTES_MIN`], is copied as before. The connection's writer hands
//! all pieces of a frame to one `sendmsg` (see `connection.rs`).
//!
//! The codec takes a record set as one `Bytes`. A set of several pieces (a tail read across produce requests) is
//! given to it as a *stand-in*: a slice of the right length of a zeroed region that is never read, only recognised.

use std::ops::Range;

use bytes::buf::UninitSlice;
use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::protocol::buf::ByteBufMut;
use pinlog_engine::RecordSet;

/// Record sets at least this large are sent by reference. Below it, copying into the frame costs less than the
/// extra iovec and the frame piece it splits off.
pub const BY_REFERENCE_BYTES_MIN: usize = 4096;

/// The largest record set of several pieces that is sent by reference; a larger one (a partition fetch limit above
/// it) is copied into one piece. The stand-in region is address space only: its pages are never touched.
const STAND_IN_BYTES: usize = 64 << 20;

/// A record set the frame sends by reference: what the codec is given to write for it, and the pieces sent instead.
#[derive(Clone, Debug)]
pub struct ByReference {
    written: Bytes,
    records: RecordSet,
}

impl ByReference {
    /// What the codec should be given for `records`, and the record set to refer to instead, if any: a set of one
    /// piece is given as itself and referred to if it is large; a set of several pieces is given as a stand-in and
    /// always referred to.
    pub fn plan(records: RecordSet) -> (Bytes, Option<ByReference>) {
        let len = records.len();
        let records = match records.as_one_piece() {
            Some(_) => records,
            None if len <= STAND_IN_BYTES => {
                let written = Bytes::from_static(&stand_in()[..len]);
                return (written.clone(), Some(ByReference { written, records }));
            }
            None => RecordSet::from(records.into_contiguous()),
        };
        let written = records.as_one_piece().expect("one piece").clone();
        let by_reference = (len >= BY_REFERENCE_BYTES_MIN).then(|| ByReference {
            written: written.clone(),
            records,
        });
        (written, by_reference)
    }

    /// Bytes sent by reference.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The zeroed region stand-ins are slices of, allocated once per process. An allocation this large is its own
/// anonymous mapping: zero pages the kernel never backs, since nothing reads them.
fn stand_in() -> &'static [u8] {
    static REGION: std::sync::OnceLock<&'static [u8]> = std::sync::OnceLock::new();
    REGION.get_or_init(|| Box::leak(vec![0u8; STAND_IN_BYTES].into_boxed_slice()))
}

/// An encoded response, size prefix included.
#[derive(Debug)]
pub enum ResponseFrame {
    /// One contiguous buffer (every response but a Fetch carrying large record sets).
    Whole(Bytes),
    /// Pieces to be sent back to back.
    Pieces(Vec<Bytes>),
}

impl ResponseFrame {
    pub fn pieces(&self) -> &[Bytes] {
        match self {
            ResponseFrame::Whole(bytes) => std::slice::from_ref(bytes),
            ResponseFrame::Pieces(pieces) => pieces,
        }
    }

    /// Bytes on the wire.
    pub fn len(&self) -> usize {
        self.pieces().iter().map(Bytes::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl From<Bytes> for ResponseFrame {
    fn from(bytes: Bytes) -> ResponseFrame {
        ResponseFrame::Whole(bytes)
    }
}

/// The codec's output buffer: copies what it is given, except the record sets it was told to refer to.
pub struct PieceBuf {
    /// Closed pieces, in order.
    done: Vec<Bytes>,
    /// Bytes in `done`.
    done_bytes: usize,
    /// The piece being written.
    current: BytesMut,
    /// Record sets still to be met, in the order the codec writes them; `next` is the first of them.
    by_reference: std::vec::IntoIter<ByReference>,
    next: Option<ByReference>,
}

impl PieceBuf {
    /// `copied_capacity`: how many bytes will be copied (the frame size less the referenced record sets).
    pub fn new(copied_capacity: usize, by_reference: Vec<ByReference>) -> PieceBuf {
        let mut by_reference = by_reference.into_iter();
        let next = by_reference.next();
        PieceBuf {
            done: Vec::new(),
            done_bytes: 0,
            current: BytesMut::with_capacity(copied_capacity),
            by_reference,
            next,
        }
    }

    fn refer(&mut self, records: RecordSet) {
        if !self.current.is_empty() {
            let piece = self.current.split().freeze();
            self.done_bytes += piece.len();
            self.done.push(piece);
        }
        for piece in records.pieces() {
            self.done_bytes += piece.len();
            self.done.push(piece.clone());
        }
        self.next = self.by_reference.next();
    }

    /// The frame; `None` if a record set to refer to was never written by the codec (the frame would carry a
    /// stand-in's zeros in its place, so it must not be sent).
    pub fn finish(mut self) -> Option<ResponseFrame> {
        if self.next.is_some() {
            return None;
        }
        if self.done.is_empty() {
            return Some(ResponseFrame::Whole(self.current.freeze()));
        }
        if !self.current.is_empty() {
            self.done.push(self.current.freeze());
        }
        Some(ResponseFrame::Pieces(self.done))
    }
}

// SAFETY: every method that hands out or advances writable memory delegates to `current`, a `BytesMut`, whose own
// `BufMut` implementation upholds the contract; `put_slice` only appends whole, initialised pieces.
unsafe impl BufMut for PieceBuf {
    fn remaining_mut(&self) -> usize {
        self.current.remaining_mut()
    }

    unsafe fn advance_mut(&mut self, cnt: usize) {
        // SAFETY: the caller initialised `cnt` bytes of the chunk `current` handed out.
        unsafe { self.current.advance_mut(cnt) }
    }

    fn chunk_mut(&mut self) -> &mut UninitSlice {
        self.current.chunk_mut()
    }

    fn put_slice(&mut self, src: &[u8]) {
        if let Some(next) = &self.next {
            if src.as_ptr() == next.written.as_ptr() && src.len() == next.written.len() {
                let records = next.records.clone();
                self.refer(records);
                return;
            }
        }
        self.current.extend_from_slice(src);
    }
}

/// Offsets count every byte of the frame. The message codecs never seek; only the record codecs do, which pinlog
/// does not run on a response. Seeking back into a closed piece would be a bug in this module's use.
impl ByteBufMut for PieceBuf {
    fn offset(&self) -> usize {
        self.done_bytes + self.current.len()
    }

    fn seek(&mut self, offset: usize) {
        assert!(
            offset >= self.done_bytes,
            "seek into a closed response piece"
        );
        self.current.resize(offset - self.done_bytes, 0);
    }

    fn range(&mut self, r: Range<usize>) -> &mut [u8] {
        assert!(
            r.start >= self.done_bytes,
            "range in a closed response piece"
        );
        let d = self.done_bytes;
        &mut self.current[r.start - d..r.end - d]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn concat(frame: &ResponseFrame) -> Vec<u8> {
        frame
            .pieces()
            .iter()
            .flat_map(|p| p.iter().copied())
            .collect()
    }

    /// `records` planned for the codec: what it is given to write, and the reference.
    fn planned(records: RecordSet) -> (Bytes, ByReference) {
        let (written, by_reference) = ByReference::plan(records);
        (written, by_reference.expect("referred to"))
    }

    #[test]
    fn refers_to_the_named_slices_and_copies_the_rest() {
        let big = Bytes::from(vec![7u8; 10_000]);
        let other = Bytes::from(vec![9u8; 10_000]);
        let (written, by_reference) = planned(big.clone().into());
        assert_eq!(
            written.as_ptr(),
            big.as_ptr(),
            "one piece is given as itself"
        );
        let mut buf = PieceBuf::new(16, vec![by_reference]);
        buf.put_i32(1);
        buf.put_slice(&other); // same length, other address: copied
        buf.put_slice(&written);
        buf.put_u8(2);
        let frame = buf.finish().expect("every reference met");
        let pieces = frame.pieces();
        assert_eq!(pieces.len(), 3);
        assert_eq!(pieces[1].as_ptr(), big.as_ptr(), "referenced, not copied");
        let mut want = 1i32.to_be_bytes().to_vec();
        want.extend_from_slice(&other);
        want.extend_from_slice(&big);
        want.push(2);
        assert_eq!(concat(&frame), want);
        assert_eq!(frame.len(), want.len());
    }

    #[test]
    fn several_pieces_stand_in_for_one_slice_and_small_ones_are_copied() {
        let a = Bytes::from(vec![1u8; 100]);
        let b = Bytes::from(vec![2u8; 9000]);
        let mut several = RecordSet::from(a.clone());
        several.push(b.clone());
        let (written, by_reference) = planned(several);
        assert_eq!(written.len(), 9100);
        assert_ne!(written.as_ptr(), a.as_ptr(), "a stand-in");
        let small = Bytes::from(vec![3u8; 100]);
        let (small_written, none) = ByReference::plan(small.clone().into());
        assert!(none.is_none(), "a small piece is copied by the codec");
        let mut buf = PieceBuf::new(8, vec![by_reference]);
        buf.put_slice(&small_written);
        buf.put_slice(&written);
        let frame = buf.finish().expect("every reference met");
        let pieces = frame.pieces();
        assert_eq!(pieces.len(), 3);
        assert_eq!(
            (pieces[1].as_ptr(), pieces[2].as_ptr()),
            (a.as_ptr(), b.as_ptr())
        );
        assert_eq!(concat(&frame), [&small[..], &a[..], &b[..]].concat());
    }

    #[test]
    fn a_reference_never_written_fails_the_frame() {
        let mut several = RecordSet::from(Bytes::from(vec![1u8; 10]));
        several.push(Bytes::from(vec![2u8; 10]));
        let (_, by_reference) = planned(several);
        let mut buf = PieceBuf::new(8, vec![by_reference]);
        buf.put_i64(5);
        assert!(buf.finish().is_none(), "a stand-in's zeros are never sent");
    }

    #[test]
    fn without_references_one_whole_buffer() {
        let mut buf = PieceBuf::new(8, Vec::new());
        buf.put_i64(5);
        assert_eq!(buf.offset(), 8);
        assert!(matches!(buf.finish(), Some(ResponseFrame::Whole(b)) if b.len() == 8));
    }

    #[test]
    fn offsets_span_pieces() {
        let big = Bytes::from(vec![1u8; 5000]);
        let (written, by_reference) = planned(big.into());
        let mut buf = PieceBuf::new(8, vec![by_reference]);
        buf.put_i16(3);
        buf.put_slice(&written);
        assert_eq!(buf.offset(), 5002);
        buf.put_i32(0);
        buf.range(5002..5006).copy_from_slice(&[1, 2, 3, 4]);
        let frame = buf.finish().expect("every reference met");
        assert_eq!(&concat(&frame)[5002..], &[1, 2, 3, 4]);
    }
}
