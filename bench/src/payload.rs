//! Record contents: every value starts with its send time, so any consumer of any driver measures end-to-end latency
//! (send -> consumed) at microsecond resolution, independent of the broker's millisecond record timestamps.
//!
//! The rest of the value is filler cut from one pre-generated buffer of pseudo-random letters, so building a record
//! allocates nothing and compression codecs see data that is neither all zeros nor incompressible (about 6 bits of
//! entropy per byte).

use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::workload::{RecordSpec, SizeSpec};

/// Bytes at the start of every value that hold the send time (µs since the Unix epoch, big-endian).
pub const STAMP_BYTES: usize = 8;

/// Microseconds since the Unix epoch (wall clock: producer and consumer may be different processes).
pub fn now_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

/// The send time stamped into a value, if it is long enough to hold one.
pub fn stamp_of(value: &[u8]) -> Option<u64> {
    let head: [u8; STAMP_BYTES] = value.get(..STAMP_BYTES)?.try_into().ok()?;
    Some(u64::from_be_bytes(head))
}

/// A small, fast, seedable generator (xorshift64*): record sizes and keys must not cost more than the send.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        debug_assert!(n > 0);
        ((self.next_u64() >> 32) * n) >> 32
    }
}

/// Makes record keys and values for one producer.
pub struct RecordFactory {
    spec: RecordSpec,
    filler: Vec<u8>,
    rng: Rng,
    value: Vec<u8>,
    key: Vec<u8>,
}

impl RecordFactory {
    pub fn new(spec: &RecordSpec, seed: u64) -> RecordFactory {
        let mut rng = Rng::new(seed ^ 0x9e37_79b9_7f4a_7c15);
        let max = spec.size.max_bytes();
        // Twice the largest value so every value can start at a different offset of the filler.
        let filler = (0..2 * max)
            .map(|_| {
                b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
                    [rng.below(64) as usize]
            })
            .collect();
        RecordFactory {
            spec: spec.clone(),
            filler,
            rng,
            value: Vec::with_capacity(max),
            key: Vec::with_capacity(24),
        }
    }

    /// Builds the next record stamped with `stamp_us`; the slices live until the next call.
    pub fn next(&mut self, stamp_us: u64) -> (Option<&[u8]>, &[u8]) {
        let len = match self.spec.size {
            SizeSpec::Fixed { bytes } => bytes,
            SizeSpec::Uniform {
                min_bytes,
                max_bytes,
            } => min_bytes + self.rng.below((max_bytes - min_bytes + 1) as u64) as usize,
        };
        let start = self.rng.below(self.filler.len() as u64 / 2) as usize;
        self.value.clear();
        self.value.extend_from_slice(&stamp_us.to_be_bytes());
        self.value
            .extend_from_slice(&self.filler[start..start + len - STAMP_BYTES]);
        let key = if self.spec.key_space > 0 {
            let k = self.rng.below(self.spec.key_space);
            self.key.clear();
            // Writing into the reused Vec does not allocate once it has grown.
            let _ = write!(self.key, "key-{k}");
            Some(self.key.as_slice())
        } else {
            None
        };
        (key, &self.value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_carry_their_stamp_and_size() {
        let spec = RecordSpec {
            size: SizeSpec::Fixed { bytes: 100 },
            key_space: 0,
        };
        let mut f = RecordFactory::new(&spec, 7);
        let (key, value) = f.next(123_456);
        assert!(key.is_none());
        assert_eq!(value.len(), 100);
        assert_eq!(stamp_of(value), Some(123_456));
        assert!(value[STAMP_BYTES..].iter().all(|b| b.is_ascii_graphic()));
    }

    #[test]
    fn uniform_sizes_stay_in_range_and_vary() {
        let spec = RecordSpec {
            size: SizeSpec::Uniform {
                min_bytes: 50,
                max_bytes: 60,
            },
            key_space: 10,
        };
        let mut f = RecordFactory::new(&spec, 1);
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..1000 {
            let (key, value) = f.next(1);
            let len = value.len();
            assert!((50..=60).contains(&len));
            seen.insert(len);
            let key = std::str::from_utf8(key.unwrap()).unwrap();
            let n: u64 = key.strip_prefix("key-").unwrap().parse().unwrap();
            assert!(n < 10);
        }
        assert_eq!(seen.len(), 11, "every size in range is drawn");
    }

    #[test]
    fn short_values_have_no_stamp() {
        assert_eq!(stamp_of(&[1, 2, 3]), None);
    }

    #[test]
    fn rng_below_is_uniform_enough() {
        let mut rng = Rng::new(42);
        let mut counts = [0u32; 4];
        for _ in 0..40_000 {
            counts[rng.below(4) as usize] += 1;
        }
        assert!(
            counts.iter().all(|&c| (9_000..11_000).contains(&c)),
            "{counts:?}"
        );
    }
}
