//! Q2_K: 2-bit K-quant. 256-weight super-blocks of 16 sub-blocks of 16, each with a
//! 4-bit scale and a 4-bit min: `x = d * sc[s] * q - dmin * m[s]` with `q` in 0..4.
//!
//! Layout: ggml `block_q2_K` (`ggml-common.h`): `{ uint8_t scales[16]; uint8_t
//! qs[64]; ggml_half d; ggml_half dmin; }`, 84 bytes (2.625 bits per weight).
//! `scales[s]` holds the scale of sub-block `s` in its low nibble and the min in its
//! high nibble. Each 32 bytes of `qs` cover 128 weights: bits `2k..2k+2` of
//! `qs[32h + i]` are the quant of weight `128h + 32k + i` (`i` < 32, `k` < 4).
//!
//! Reference: ggml-org/llama.cpp@0c1e5709 `ggml/src/ggml-quants.c`,
//! `quantize_row_q2_K_ref` (what `quantize_q2_K` runs without importance weights) /
//! `dequantize_row_q2_K`.

use super::k_common::{make_qkx2_quants, nearest_int, QK_K};
use super::{f16_from_le, f16_to_le, QuantKind, QuantType};
use bytemuck::{Pod, Zeroable};

/// One Q2_K super-block.
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
#[repr(C)]
pub struct BlockQ2K {
    /// Per sub-block of 16: scale (low nibble) and min (high nibble).
    pub scales: [u8; QK_K / 16],
    /// 2-bit quants, four weights per byte.
    pub qs: [u8; QK_K / 4],
    /// Super-block scale for the sub-block scales, f16 little-endian.
    pub d: [u8; 2],
    /// Super-block scale for the sub-block mins, f16 little-endian.
    pub dmin: [u8; 2],
}
const _: () = assert!(std::mem::size_of::<BlockQ2K>() == 84);

/// Descriptor row.
pub const KIND: QuantKind = QuantKind {
    ty: QuantType::Q2_K,
    name: "q2_k",
    block_size: QK_K,
    type_size: std::mem::size_of::<BlockQ2K>(),
    quantize_row_ref,
    dequantize_row_ref,
    rmse_budget: 0.375,
};

/// The 4-bit sub-block scales and mins quantize against these maxima.
const Q4SCALE: f32 = 15.0;

/// Quantizes one super-block (ggml `quantize_row_q2_K_ref`: `make_qkx2_quants` with
/// `nmax = 3`, weights `|x|`, `rmin = -0.5, rdelta = 0.1, nstep = 15` and absolute
/// error, then 4-bit scales and mins and a requantization with the rounded ones).
pub fn quantize_block(x: &[f32]) -> BlockQ2K {
    let mut l = [0u8; QK_K];
    let mut laux = [0u8; 16];
    let mut weights = [0f32; 16];
    let mut mins = [0f32; QK_K / 16];
    let mut scales = [0f32; QK_K / 16];

    // As the min is subtracted, scales are positive (but kept signed, as in C).
    let mut max_scale = 0.0f32;
    let mut max_min = 0.0f32;
    for j in 0..QK_K / 16 {
        let xs = &x[16 * j..16 * j + 16];
        for (w, &v) in weights.iter_mut().zip(xs) {
            *w = v.abs();
        }
        let (scale, min) = make_qkx2_quants(
            xs,
            &weights,
            3,
            &mut l[16 * j..16 * j + 16],
            &mut laux,
            -0.5,
            0.1,
            15,
            true,
        );
        scales[j] = scale;
        mins[j] = min;
        if scale > max_scale {
            max_scale = scale;
        }
        if min > max_min {
            max_min = min;
        }
    }

    // C stores the int from nearest_int into a uint8_t (modulo 256) and ORs the
    // min's `l << 4` into it, also truncated: `as u8` does the same.
    let mut sc = [0u8; QK_K / 16];
    let d = if max_scale > 0.0 {
        let iscale = Q4SCALE / max_scale;
        for (q, &s) in sc.iter_mut().zip(&scales) {
            *q = nearest_int(iscale * s) as u8;
        }
        f16_to_le(max_scale / Q4SCALE)
    } else {
        f16_to_le(0.0)
    };
    let dmin = if max_min > 0.0 {
        let iscale = Q4SCALE / max_min;
        for (q, &m) in sc.iter_mut().zip(&mins) {
            *q |= (nearest_int(iscale * m) << 4) as u8;
        }
        f16_to_le(max_min / Q4SCALE)
    } else {
        f16_to_le(0.0)
    };
    for (j, &s) in sc.iter().enumerate() {
        let dj = f16_from_le(d) * (s & 0xF) as f32;
        if dj == 0.0 {
            continue;
        }
        let dm = f16_from_le(dmin) * (s >> 4) as f32;
        for ii in 0..16 {
            let q = nearest_int((x[16 * j + ii] + dm) / dj);
            l[16 * j + ii] = q.clamp(0, 3) as u8;
        }
    }

    let mut qs = [0u8; QK_K / 4];
    for (q, l) in qs.chunks_exact_mut(32).zip(l.chunks_exact(128)) {
        for i in 0..32 {
            q[i] = l[i] | (l[i + 32] << 2) | (l[i + 64] << 4) | (l[i + 96] << 6);
        }
    }
    BlockQ2K {
        scales: sc,
        qs,
        d,
        dmin,
    }
}

/// Scalar reference quantizer.
pub fn quantize_row_ref(src: &[f32], dst: &mut [u8]) {
    let blocks: &mut [BlockQ2K] = bytemuck::cast_slice_mut(dst);
    for (b, x) in blocks.iter_mut().zip(src.chunks_exact(QK_K)) {
        *b = quantize_block(x);
    }
}

/// Scalar reference dequantizer.
pub fn dequantize_row_ref(src: &[u8], dst: &mut [f32]) {
    let blocks: &[BlockQ2K] = bytemuck::cast_slice(src);
    for (b, y) in blocks.iter().zip(dst.chunks_exact_mut(QK_K)) {
        let d = f16_from_le(b.d);
        let min = f16_from_le(b.dmin);
        for (h, (q, y)) in
            b.qs.chunks_exact(32)
                .zip(y.chunks_exact_mut(128))
                .enumerate()
        {
            for (k, y) in y.chunks_exact_mut(32).enumerate() {
                for (g, y) in y.chunks_exact_mut(16).enumerate() {
                    let s = b.scales[8 * h + 2 * k + g];
                    let (dl, ml) = (d * (s & 0xF) as f32, min * (s >> 4) as f32);
                    for (i, y) in y.iter_mut().enumerate() {
                        let q = (q[16 * g + i] >> (2 * k)) & 3;
                        *y = dl * q as f32 - ml;
                    }
                }
            }
        }
    }
}
