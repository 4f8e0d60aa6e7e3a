//! Q5_K: 5-bit K-quant. 256-weight super-blocks of 8 sub-blocks of 32, each with a
//! 6-bit scale and min: `x = d * sc[j] * q - dmin * m[j]` with `q` in 0..32.
//!
//! Layout: ggml `block_q5_K` (`ggml-common.h`): `{ ggml_half d; ggml_half dmin;
//! uint8_t scales[12]; uint8_t qh[32]; uint8_t qs[128]; }`, 176 bytes (5.5 bits per
//! weight). `scales` and `qs` are laid out as in Q4_K; the fifth bit of weight
//! `64 * c + i` (`i < 32`) is bit `2c` of `qh[i]`, that of `64 * c + 32 + i` is bit
//! `2c + 1`.
//!
//! Reference: ggml `src/ggml-quants.c` (ggml-org/ggml@5136ed06),
//! `quantize_row_q5_K_ref` (the path without importance weights) /
//! `dequantize_row_q5_K`.

use super::k_common::{get_scale_min_k4, quantize_super_block_k4, K_SCALE_SIZE, QK_K};
use super::{f16_from_le, QuantKind, QuantType};
use bytemuck::{Pod, Zeroable};

/// One Q5_K super-block.
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
#[repr(C)]
pub struct BlockQ5K {
    /// Super-block scale for the sub-block scales, f16 little-endian.
    pub d: [u8; 2],
    /// Super-block scale for the sub-block mins, f16 little-endian.
    pub dmin: [u8; 2],
    /// Eight 6-bit scales and eight 6-bit mins, packed.
    pub scales: [u8; K_SCALE_SIZE],
    /// Fifth bits: bit `2c` / `2c + 1` of byte `i` for weights `64c + i` / `64c + 32 + i`.
    pub qh: [u8; QK_K / 8],
    /// Low nibbles, 64 weights per 32 bytes (low nibbles first).
    pub qs: [u8; QK_K / 2],
}
const _: () = assert!(std::mem::size_of::<BlockQ5K>() == 176);

/// Descriptor row.
pub const KIND: QuantKind = QuantKind {
    ty: QuantType::Q5_K,
    name: "q5_k",
    block_size: QK_K,
    type_size: std::mem::size_of::<BlockQ5K>(),
    quantize_row_ref,
    dequantize_row_ref,
    rmse_budget: 0.043,
};

/// Quantizes one super-block (ggml `quantize_row_q5_K_ref`: `make_qkx2_quants` with
/// `nmax = 31, rmin = -0.5, rdelta = 0.1, nstep = 15`).
pub fn quantize_block(x: &[f32]) -> BlockQ5K {
    let sb = quantize_super_block_k4(x, 31, -0.5, 0.1, 15);
    let mut qs = [0u8; QK_K / 2];
    let mut qh = [0u8; QK_K / 8];
    for (c, (q, l)) in qs
        .chunks_exact_mut(32)
        .zip(sb.l.chunks_exact(64))
        .enumerate()
    {
        let (m1, m2) = (1u8 << (2 * c), 2u8 << (2 * c));
        for i in 0..32 {
            let mut l1 = l[i];
            if l1 > 15 {
                l1 -= 16;
                qh[i] |= m1;
            }
            let mut l2 = l[i + 32];
            if l2 > 15 {
                l2 -= 16;
                qh[i] |= m2;
            }
            q[i] = l1 | (l2 << 4);
        }
    }
    BlockQ5K {
        d: sb.d,
        dmin: sb.dmin,
        scales: sb.scales,
        qh,
        qs,
    }
}

/// Scalar reference quantizer.
pub fn quantize_row_ref(src: &[f32], dst: &mut [u8]) {
    let blocks: &mut [BlockQ5K] = bytemuck::cast_slice_mut(dst);
    for (b, x) in blocks.iter_mut().zip(src.chunks_exact(QK_K)) {
        *b = quantize_block(x);
    }
}

/// Scalar reference dequantizer.
pub fn dequantize_row_ref(src: &[u8], dst: &mut [f32]) {
    let blocks: &[BlockQ5K] = bytemuck::cast_slice(src);
    for (b, y) in blocks.iter().zip(dst.chunks_exact_mut(QK_K)) {
        let d = f16_from_le(b.d);
        let min = f16_from_le(b.dmin);
        for (c, (ql, y)) in
            b.qs.chunks_exact(32)
                .zip(y.chunks_exact_mut(64))
                .enumerate()
        {
            let (u1, u2) = (1u8 << (2 * c), 2u8 << (2 * c));
            let (sc, m) = get_scale_min_k4(2 * c, &b.scales);
            let (d1, m1) = (d * sc as f32, min * m as f32);
            let (sc, m) = get_scale_min_k4(2 * c + 1, &b.scales);
            let (d2, m2) = (d * sc as f32, min * m as f32);
            let (lo, hi) = y.split_at_mut(32);
            for (i, (l, h)) in lo.iter_mut().zip(hi).enumerate() {
                let hb1 = if b.qh[i] & u1 != 0 { 16 } else { 0 };
                let hb2 = if b.qh[i] & u2 != 0 { 16 } else { 0 };
                *l = d1 * ((ql[i] & 0xF) + hb1) as f32 - m1;
                *h = d2 * ((ql[i] >> 4) + hb2) as f32 - m2;
            }
        }
    }
}
