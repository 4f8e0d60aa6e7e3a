//! IQ4_NL weights for the NEON [`block32`](super::block32) tile. Scalar reference:
//! `vec_dot_iq4_nl_q8_1_ref` in [`crate::cpu::scalar::dot`]; layout ggml's
//! `block_iq4_nl` (ggml-org/llama.cpp@0c1e5709 `ggml-common.h`).
//!
//! Byte `i` of `qs` holds the table index of weight `i` in its low nibble and that
//! of weight `i + 16` in its high one; one `tbl` per half looks the 16 indices up in
//! the 16-entry table, giving the signed quants the tile multiplies (`smull` of
//! i8 × i8 is exact for the table's ±127).

use super::block32::Block32;
use mamba_format::quant::iq4_nl::KVALUES_IQ4NL;
use std::arch::aarch64::*;

/// IQ4_NL: `{d: f16, qs: [u8; 16]}`, `x = d·K[q]`.
pub(super) struct Iq4Nl;

impl Block32 for Iq4Nl {
    const SIZE: usize = 18;
    const M: Option<usize> = None;

    #[inline]
    unsafe fn quants(p: *const u8) -> [int8x16_t; 2] {
        let table = vld1q_s8(KVALUES_IQ4NL.as_ptr());
        let v = vld1q_u8(p.add(2));
        [
            vqtbl1q_s8(table, vandq_u8(v, vdupq_n_u8(0x0F))),
            vqtbl1q_s8(table, vshrq_n_u8::<4>(v)),
        ]
    }
}
