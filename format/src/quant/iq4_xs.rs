//! IQ4_XS: 4-bit non-linear quants in 256-weight super-blocks of 8 sub-blocks of 32,
//! each with a 6-bit scale: `x = d * (ls[s] - 32) * KVALUES[q]`, with the IQ4_NL
//! table [`KVALUES_IQ4NL`].
//!
//! Layout: ggml `block_iq4_xs` (`ggml-common.h`): `{ ggml_half d; uint16_t scales_h;
//! uint8_t scales_l[4]; uint8_t qs[128]; }`, 136 bytes (4.25 bits per weight).
//! `ls[s]` has its low 4 bits in nibble `s % 2` of `scales_l[s / 2]` and its top 2
//! bits in bits `2s..2s+2` of the little-endian `scales_h`. Each 16 bytes
//! `qs[16s..16s+16]` hold sub-block `s` as an IQ4_NL block does: byte `j` is weight
//! `32s + j` (low nibble) and `32s + j + 16` (high nibble).
//!
//! Reference: ggml-org/llama.cpp@0c1e5709 `ggml/src/ggml-quants.c`,
//! `quantize_row_iq4_xs_ref` (= `quantize_iq4_xs` without importance weights, over
//! `quantize_row_iq4_nl_impl` with `ntry = 7`) / `dequantize_row_iq4_xs`.

use super::iq4_nl::{quantize_sub_blocks, KVALUES_IQ4NL};
use super::k_common::QK_K;
use super::{f16_from_le, QuantKind, QuantType};
use bytemuck::{Pod, Zeroable};

/// One IQ4_XS super-block.
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
#[repr(C)]
pub struct BlockIq4Xs {
    /// Super-block scale, f16 little-endian.
    pub d: [u8; 2],
    /// High 2 bits of the eight 6-bit sub-block scales, `u16` little-endian.
    pub scales_h: [u8; 2],
    /// Low 4 bits of the sub-block scales, two per byte.
    pub scales_l: [u8; QK_K / 64],
    /// Table indices, 16 bytes per sub-block.
    pub qs: [u8; QK_K / 2],
}
const _: () = assert!(std::mem::size_of::<BlockIq4Xs>() == 136);

/// Descriptor row.
pub const KIND: QuantKind = QuantKind {
    ty: QuantType::IQ4_XS,
    name: "iq4_xs",
    block_size: QK_K,
    type_size: std::mem::size_of::<BlockIq4Xs>(),
    quantize_row_ref,
    dequantize_row_ref,
    rmse_budget: 0.10,
};

/// The 6-bit scale of sub-block `s` (0..8), minus 32.
#[inline]
pub fn scale(b: &BlockIq4Xs, s: usize) -> i32 {
    let h = u16::from_le_bytes(b.scales_h);
    let ls =
        ((b.scales_l[s / 2] >> (4 * (s % 2))) & 0xF) as i32 | (((h >> (2 * s)) & 3) << 4) as i32;
    ls - 32
}

/// Quantizes one super-block (ggml `quantize_iq4_xs` without importance weights).
pub fn quantize_block(x: &[f32]) -> BlockIq4Xs {
    let mut l = [0u8; QK_K];
    let mut qs = [0u8; QK_K / 2];
    let (d, sb) = quantize_sub_blocks(x, 7, &mut l, &mut qs);
    BlockIq4Xs {
        d,
        scales_h: sb.scales_h.to_le_bytes(),
        scales_l: sb.scales_l,
        qs,
    }
}

/// Scalar reference quantizer.
pub fn quantize_row_ref(src: &[f32], dst: &mut [u8]) {
    let blocks: &mut [BlockIq4Xs] = bytemuck::cast_slice_mut(dst);
    for (b, x) in blocks.iter_mut().zip(src.chunks_exact(QK_K)) {
        *b = quantize_block(x);
    }
}

/// Scalar reference dequantizer.
pub fn dequantize_row_ref(src: &[u8], dst: &mut [f32]) {
    let blocks: &[BlockIq4Xs] = bytemuck::cast_slice(src);
    for (b, y) in blocks.iter().zip(dst.chunks_exact_mut(QK_K)) {
        let d = f16_from_le(b.d);
        for (s, (q, y)) in
            b.qs.chunks_exact(16)
                .zip(y.chunks_exact_mut(32))
                .enumerate()
        {
            let dl = d * scale(b, s) as f32;
            let (lo, hi) = y.split_at_mut(16);
            for ((q, l), h) in q.iter().zip(lo).zip(hi) {
                *l = dl * KVALUES_IQ4NL[(q & 0xF) as usize] as f32;
                *h = dl * KVALUES_IQ4NL[(q >> 4) as usize] as f32;
            }
        }
    }
}
