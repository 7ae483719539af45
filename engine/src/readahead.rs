//! Read-ahead for a sequential reader of on-disk data (a consumer catching up from an old offset).
//!
//! Without it a catch-up consumer alternates: the fetch waits for the disk, then the disk idles while the response
//! crosses the network and the client walks it. When a disk read starts where the previous one of the same log ended,
//! the log starts reading the next window of the segment in the background; the next fetch at that position takes
//! the window (awaiting it if the read is still in flight) instead of issuing its own read.
//!
//! One window per partition; windows are only started for a second sequential read, so one random read costs no
//! extra I/O. The bytes of all windows of a shard (one thread) are bounded by [`SHARD_READAHEAD_BYTES_MAX`].

use glommio::io::{DmaFile, ReadResult};
use glommio::Task;
use std::cell::Cell;
use std::io;
use std::rc::Rc;

/// Bytes all read-ahead windows of one shard may hold or have in flight.
pub const SHARD_READAHEAD_BYTES_MAX: u64 = 64 << 20;

thread_local! {
    /// Bytes held by this shard's windows.
    static SHARD_BYTES: Cell<u64> = const { Cell::new(0) };
}

/// A shard's read-ahead bytes, returned to the budget when dropped.
struct Budget(u64);

impl Budget {
    /// `len` bytes of the shard's budget, if that many are free.
    fn admit(len: u64) -> Option<Budget> {
        SHARD_BYTES.with(|b| {
            let admitted = b.get() + len <= SHARD_READAHEAD_BYTES_MAX;
            admitted.then(|| {
                b.set(b.get() + len);
                Budget(len)
            })
        })
    }
}

impl Drop for Budget {
    fn drop(&mut self) {
        SHARD_BYTES.with(|b| b.set(b.get() - self.0));
    }
}

/// A read at aligned position `start` of `file`, started ahead of need.
pub(crate) struct Window {
    file: Rc<DmaFile>,
    start: u64,
    task: Task<io::Result<ReadResult>>,
    budget: Budget,
}

impl Window {
    /// The bytes read ahead (waiting for the read if it is still in flight).
    pub(crate) async fn finish(self) -> io::Result<ReadResult> {
        let Window { task, budget, .. } = self;
        let read = task.await;
        drop(budget);
        read
    }
}

/// The read-ahead state of one partition log.
#[derive(Default)]
pub(crate) struct Readahead {
    window: Option<Window>,
    /// File (by address) and position where the last disk read of this log ended: the next read starting there is
    /// sequential. The address is only compared, never followed.
    last_end: Option<(usize, u64)>,
    /// Reads served by a window.
    hits: u64,
}

impl Readahead {
    /// The window starting at `start` of `file`, if one was read (or is being read) ahead. Any other window is
    /// dropped (its read cancelled): the reader moved elsewhere.
    pub(crate) fn take(&mut self, file: &Rc<DmaFile>, start: u64) -> Option<Window> {
        let window = self
            .window
            .take()
            .filter(|w| Rc::ptr_eq(&w.file, file) && w.start == start);
        self.hits += u64::from(window.is_some());
        window
    }

    /// Reads served by a window so far (tests).
    #[cfg(test)]
    pub(crate) fn hits(&self) -> u64 {
        self.hits
    }

    /// A disk read of `file` covered `[start, end)`; if it continued the previous one, read `[end, end + len)` ahead
    /// (`end` aligned, `len` clipped to `file_end`) when the shard's budget allows.
    pub(crate) fn after_read(
        &mut self,
        file: &Rc<DmaFile>,
        start: u64,
        end: u64,
        len: u64,
        file_end: u64,
    ) {
        let id = Rc::as_ptr(file) as usize;
        let sequential = self.last_end == Some((id, start));
        self.last_end = Some((id, end));
        let len = len.min(file_end.saturating_sub(end));
        if !sequential || len == 0 || self.window.is_some() {
            return;
        }
        let Some(budget) = Budget::admit(len) else {
            return;
        };
        let reader = file.clone();
        let task = glommio::spawn_local(async move {
            reader
                .read_at_aligned(end, len as usize)
                .await
                .map_err(io::Error::from)
        });
        self.window = Some(Window {
            file: file.clone(),
            start: end,
            task,
            budget,
        });
    }

    /// Cancel the window and forget the position (log closing, segments replaced).
    pub(crate) fn clear(&mut self) {
        self.window = None;
        self.last_end = None;
    }
}
