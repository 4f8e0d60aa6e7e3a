//! The 4- and 5-bit 32-weight block types (Q4_0, Q4_1, Q5_0, Q5_1) for the NEON
//! [`block32`](super::block32) tile. Scalar references: `vec_dot_q{4,5}_{0,1}_q8_1_ref`
//! in [`crate::cpu::scalar::dot`]; block layouts are ggml's (`ggml-common.h`,
//! ggml-org/llama.cpp@04e1dd75).
//!
//! Byte `i` of `qs` holds weight `i` in its low nibble and weight `i + 16` in its
//! high one, so the low nibbles are weights `0..16` and the high ones `16..32`, in
//! order. Bit `i` of the little-endian `qh` word is the fifth bit of weight `i`.
//! Q4_0 and Q5_0 subtract their offset (8, 16) from the integer quants, as the
//! reference does; Q4_1 and Q5_1 keep unsigned quants and add `m·s` in the tile.

use super::block32::Block32;
use std::arch::aarch64::*;

/// Q4_0: `{d: f16, qs: [u8; 16]}`, `x = d·(q − 8)`.
pub(super) struct Q4_0;
/// Q4_1: `{d: f16, m: f16, qs: [u8; 16]}`, `x = d·q + m`.
pub(super) struct Q4_1;
/// Q5_0: `{d: f16, qh: u32, qs: [u8; 16]}`, `x = d·(q − 16)`.
pub(super) struct Q5_0;
/// Q5_1: `{d: f16, m: f16, qh: u32, qs: [u8; 16]}`, `x = d·q + m`.
pub(super) struct Q5_1;

/// The quants `q − offset` of a block with nibbles at `qs` and, when `qh` is
/// given, fifth bits there: weights `0..16` and `16..32`.
///
/// # Safety
/// `qs` is valid for reading 16 bytes and `qh`, if any, for 4.
#[inline]
unsafe fn unpack(qs: *const u8, qh: Option<*const u8>, offset: i8) -> [int8x16_t; 2] {
    let v = vld1q_u8(qs);
    let mut q = [vandq_u8(v, vdupq_n_u8(0x0F)), vshrq_n_u8::<4>(v)];
    if let Some(qh) = qh {
        let h = std::ptr::read_unaligned(qh as *const [u8; 4]);
        // Byte i of each half of `bit` is 1 << i: `tst` against bytes 2k, 2k + 1
        // of qh, each repeated 8 times, marks the weights of q[k] whose bit is set.
        let bit = vcombine_u8(
            vcreate_u8(0x8040_2010_0804_0201),
            vcreate_u8(0x8040_2010_0804_0201),
        );
        for (k, qk) in q.iter_mut().enumerate() {
            let spread = vcombine_u8(vdup_n_u8(h[2 * k]), vdup_n_u8(h[2 * k + 1]));
            let set = vtstq_u8(spread, bit);
            *qk = vorrq_u8(*qk, vandq_u8(set, vdupq_n_u8(0x10)));
        }
    }
    q.map(|v| vsubq_s8(vreinterpretq_s8_u8(v), vdupq_n_s8(offset)))
}

impl Block32 for Q4_0 {
    const SIZE: usize = 18;
    const M: Option<usize> = None;

    #[inline]
    unsafe fn quants(p: *const u8) -> [int8x16_t; 2] {
        unpack(p.add(2), None, 8)
    }
}

impl Block32 for Q4_1 {
    const SIZE: usize = 20;
    const M: Option<usize> = Some(2);

    #[inline]
    unsafe fn quants(p: *const u8) -> [int8x16_t; 2] {
        unpack(p.add(4), None, 0)
    }
}

impl Block32 for Q5_0 {
    const SIZE: usize = 22;
    const M: Option<usize> = None;

    #[inline]
    unsafe fn quants(p: *const u8) -> [int8x16_t; 2] {
        unpack(p.add(6), Some(p.add(2)), 16)
    }
}

impl Block32 for Q5_1 {
    const SIZE: usize = 24;
    const M: Option<usize> = Some(2);

    #[inline]
    unsafe fn quants(p: *const u8) -> [int8x16_t; 2] {
        unpack(p.add(8), Some(p.add(4)), 0)
    }
}
