//! The answer of a read: whole batches in log order, held as one or more pieces of memory that lie back to back in
//! the log but not in memory (a fresh tail is one buffer per produce request). The Fetch path sends the pieces by
//! reference, so a read that spans many produce requests is neither copied nor cut short. Every piece holds whole
//! batches: no batch straddles two pieces.

use bytes::{Bytes, BytesMut};

#[derive(Clone, Debug, Default)]
pub struct RecordSet {
    head: Bytes,
    /// The pieces after `head`; empty (no allocation) for the usual one-piece answer.
    more: Vec<Bytes>,
}

impl RecordSet {
    /// Bytes in all pieces.
    pub fn len(&self) -> usize {
        self.head.len() + self.more.iter().map(Bytes::len).sum::<usize>()
    }

    pub fn is_empty(&self) -> bool {
        self.head.is_empty() && self.more.is_empty()
    }

    /// The pieces, in log order.
    pub fn pieces(&self) -> impl Iterator<Item = &Bytes> {
        std::iter::once(&self.head).chain(&self.more)
    }

    /// The only piece, if there is one piece.
    pub fn as_one_piece(&self) -> Option<&Bytes> {
        self.more.is_empty().then_some(&self.head)
    }

    /// The batches in one buffer: the piece itself when there is one, else a copy of all of them.
    pub fn into_contiguous(self) -> Bytes {
        if self.more.is_empty() {
            return self.head;
        }
        let mut out = BytesMut::with_capacity(self.len());
        for piece in self.pieces() {
            out.extend_from_slice(piece);
        }
        out.freeze()
    }

    /// Keeps the first `len` bytes (which must end where a piece's batch ends; the caller walks the batches).
    pub fn truncate(&mut self, len: usize) {
        let mut kept = self.head.len().min(len);
        self.head.truncate(kept);
        let mut pieces = 0;
        for piece in &mut self.more {
            if kept == len {
                break;
            }
            let take = piece.len().min(len - kept);
            piece.truncate(take);
            kept += take;
            pieces += 1;
        }
        self.more.truncate(pieces);
    }

    /// Appends `piece` (whole batches that follow the set's last one in the log); empty pieces are skipped.
    pub fn push(&mut self, piece: Bytes) {
        if piece.is_empty() {
            return;
        }
        if self.head.is_empty() {
            debug_assert!(self.more.is_empty(), "pieces follow a non-empty head");
            self.head = piece;
        } else {
            self.more.push(piece);
        }
    }
}

impl From<Bytes> for RecordSet {
    fn from(head: Bytes) -> RecordSet {
        RecordSet {
            head,
            more: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(pieces: &[&[u8]]) -> RecordSet {
        let mut s = RecordSet::default();
        for p in pieces {
            s.push(Bytes::copy_from_slice(p));
        }
        s
    }

    #[test]
    fn pieces_len_and_contiguous_copy() {
        let s = set(&[b"abc", b"", b"de", b"f"]);
        assert_eq!(s.len(), 6);
        assert_eq!(s.pieces().count(), 3, "empty pieces are skipped");
        assert!(s.as_one_piece().is_none());
        assert_eq!(s.clone().into_contiguous(), Bytes::from_static(b"abcdef"));
        let one = set(&[b"xyz"]);
        let piece = one.as_one_piece().expect("one piece").clone();
        assert_eq!(
            one.into_contiguous().as_ptr(),
            piece.as_ptr(),
            "one piece is not copied"
        );
        assert!(RecordSet::default().is_empty());
    }

    #[test]
    fn truncate_keeps_a_prefix_across_pieces() {
        for len in 0..=6 {
            let mut s = set(&[b"abc", b"de", b"f"]);
            s.truncate(len);
            assert_eq!(s.clone().into_contiguous(), b"abcdef"[..len], "len {len}");
            assert!(
                s.pieces().skip(1).all(|p| !p.is_empty()),
                "no empty piece after the head"
            );
        }
    }
}
