//! Q4_K: 4-bit K-quant. 256-weight super-blocks of 8 sub-blocks of 32, each with a
//! 6-bit scale and min: `x = d * sc[j] * q - dmin * m[j]` with `q` in 0..16.
//!
//! Layout: ggml `block_q4_K` (`ggml-common.h`): `{ ggml_half d; ggml_half dmin;
//! uint8_t scales[12]; uint8_t qs[128]; }`, 144 bytes (4.5 bits per weight).
//! `scales` is packed as [`get_scale_min_k4`] reads it. Each 32 bytes of `qs` cover
//! 64 weights: the low nibbles are weights `0..32` of the chunk, the high nibbles
//! weights `32..64`.
//!
//! Reference: ggml `src/ggml-quants.c` (ggml-org/ggml@5136ed06),
//! `quantize_row_q4_K_ref` (the path without importance weights) /
//! `dequantize_row_q4_K`.

use super::k_common::{get_scale_min_k4, quantize_super_block_k4, K_SCALE_SIZE, QK_K};
use super::{f16_from_le, QuantKind, QuantType};
use bytemuck::{Pod, Zeroable};

/// One Q4_K super-block.
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
#[repr(C)]
pub struct BlockQ4K {
    /// Super-block scale for the sub-block scales, f16 little-endian.
    pub d: [u8; 2],
    /// Super-block scale for the sub-block mins, f16 little-endian.
    pub dmin: [u8; 2],
    /// Eight 6-bit scales and eight 6-bit mins, packed.
    pub scales: [u8; K_SCALE_SIZE],
    /// Nibbles, 64 weights per 32 bytes (low nibbles first).
    pub qs: [u8; QK_K / 2],
}
const _: () = assert!(std::mem::size_of::<BlockQ4K>() == 144);

/// Descriptor row.
pub const KIND: QuantKind = QuantKind {
    ty: QuantType::Q4_K,
    name: "q4_k",
    block_size: QK_K,
    type_size: std::mem::size_of::<BlockQ4K>(),
    quantize_row_ref,
    dequantize_row_ref,
    rmse_budget: 0.079,
};

/// Quantizes one super-block (ggml `quantize_row_q4_K_ref`: `make_qkx2_quants` with
/// `nmax = 15, rmin = -1, rdelta = 0.1, nstep = 20`).
pub fn quantize_block(x: &[f32]) -> BlockQ4K {
    let sb = quantize_super_block_k4(x, 15, -1.0, 0.1, 20);
    let mut qs = [0u8; QK_K / 2];
    for (q, l) in qs.chunks_exact_mut(32).zip(sb.l.chunks_exact(64)) {
        for i in 0..32 {
            q[i] = l[i] | (l[i + 32] << 4);
        }
    }
    BlockQ4K {
        d: sb.d,
        dmin: sb.dmin,
        scales: sb.scales,
        qs,
    }
}

/// Scalar reference quantizer.
pub fn quantize_row_ref(src: &[f32], dst: &mut [u8]) {
    let blocks: &mut [BlockQ4K] = bytemuck::cast_slice_mut(dst);
    for (b, x) in blocks.iter_mut().zip(src.chunks_exact(QK_K)) {
        *b = quantize_block(x);
    }
}

/// Scalar reference dequantizer.
pub fn dequantize_row_ref(src: &[u8], dst: &mut [f32]) {
    let blocks: &[BlockQ4K] = bytemuck::cast_slice(src);
    for (b, y) in blocks.iter().zip(dst.chunks_exact_mut(QK_K)) {
        let d = f16_from_le(b.d);
        let min = f16_from_le(b.dmin);
        for (c, (q, y)) in
            b.qs.chunks_exact(32)
                .zip(y.chunks_exact_mut(64))
                .enumerate()
        {
            let (sc, m) = get_scale_min_k4(2 * c, &b.scales);
            let (d1, m1) = (d * sc as f32, min * m as f32);
            let (sc, m) = get_scale_min_k4(2 * c + 1, &b.scales);
            let (d2, m2) = (d * sc as f32, min * m as f32);
            let (lo, hi) = y.split_at_mut(32);
            for ((&q, l), h) in q.iter().zip(lo).zip(hi) {
                *l = d1 * (q & 0xF) as f32 - m1;
                *h = d2 * (q >> 4) as f32 - m2;
            }
        }
    }
}
