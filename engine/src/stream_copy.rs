//! Copies into buffers that only the device reads (group-commit DMA buffers) with non-temporal stores: the CPU does
//! not first read each destination cache line in (a normal store's read-for-ownership) and does not fill its caches
//! with bytes it will never read again.

/// Below this, a copy is too short for streaming stores to pay for their setup.
const STREAM_BYTES_MIN: usize = 4096;

/// Copies `src` into `dst` (same length). Call [`publish`] once after the last copy, before the buffer is handed to
/// the kernel.
pub fn copy_for_device(dst: &mut [u8], src: &[u8]) {
    assert_eq!(dst.len(), src.len(), "copy_for_device lengths");
    #[cfg(target_arch = "x86_64")]
    if src.len() >= STREAM_BYTES_MIN {
        // SAFETY: SSE2 is part of x86_64; both slices are valid for `len` bytes and do not overlap (`&mut`).
        unsafe { stream_sse2(dst.as_mut_ptr(), src.as_ptr(), src.len()) };
        return;
    }
    dst.copy_from_slice(src);
}

/// Orders every streaming store before what follows (the write that hands the buffer to the device).
pub fn publish() {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: SSE2 is part of x86_64; a fence has no other effect.
    unsafe {
        std::arch::x86_64::_mm_sfence()
    };
}

#[cfg(target_arch = "x86_64")]
unsafe fn stream_sse2(dst: *mut u8, src: *const u8, len: usize) {
    use std::arch::x86_64::{__m128i, _mm_loadu_si128, _mm_stream_si128};
    // The head, up to the first 16-byte aligned destination address, and the tail are copied normally.
    let head = dst.align_offset(16).min(len);
    std::ptr::copy_nonoverlapping(src, dst, head);
    let mut at = head;
    while at + 64 <= len {
        for lane in 0..4 {
            let from = src.add(at + lane * 16) as *const __m128i;
            let to = dst.add(at + lane * 16) as *mut __m128i;
            _mm_stream_si128(to, _mm_loadu_si128(from));
        }
        at += 64;
    }
    while at + 16 <= len {
        _mm_stream_si128(
            dst.add(at) as *mut __m128i,
            _mm_loadu_si128(src.add(at) as *const __m128i),
        );
        at += 16;
    }
    std::ptr::copy_nonoverlapping(src.add(at), dst.add(at), len - at);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every length around the thresholds, at every destination misalignment, copies exactly and touches nothing
    /// outside the destination.
    #[test]
    fn copies_exactly_at_any_alignment_and_length() {
        let src: Vec<u8> = (0..20_000u32).map(|i| (i * 7 + 3) as u8).collect();
        for len in [0, 1, 15, 16, 63, 64, 4095, 4096, 4097, 4160, 5000, 19_999] {
            for misalign in 0..17 {
                let mut buf = vec![0xAAu8; len + 64];
                copy_for_device(&mut buf[misalign..misalign + len], &src[..len]);
                publish();
                assert!(
                    buf[misalign..misalign + len] == src[..len],
                    "len {len} misalign {misalign}"
                );
                assert!(
                    buf[..misalign].iter().all(|&b| b == 0xAA),
                    "before, len {len}"
                );
                assert!(
                    buf[misalign + len..].iter().all(|&b| b == 0xAA),
                    "after, len {len}"
                );
            }
        }
    }
}
