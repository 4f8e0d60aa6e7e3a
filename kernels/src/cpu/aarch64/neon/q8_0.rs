//! Q8_0 weights for the NEON [`block32`](super::block32) tile. Scalar reference:
//! `vec_dot_q8_0_q8_1_ref` in [`crate::cpu::scalar::dot`].

use super::block32::Block32;
use std::arch::aarch64::*;

/// Q8_0: `{d: f16, qs: [i8; 32]}`, `x = d·q`.
pub(super) struct Q8_0;

impl Block32 for Q8_0 {
    const SIZE: usize = 34;
    const M: Option<usize> = None;
    const GROUP: usize = 1;

    #[inline]
    unsafe fn quants(p: *const u8) -> [int8x16_t; 2] {
        [
            vld1q_s8(p.add(2) as *const i8),
            vld1q_s8(p.add(18) as *const i8),
        ]
    }
}
