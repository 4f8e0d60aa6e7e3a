//! Q6_K: 6-bit K-quant. 256-weight super-blocks of 16 sub-blocks of 16, each with a
//! signed 8-bit scale: `x = d * sc[j] * (q - 32)` with `q` in 0..64.
//!
//! Layout: ggml `block_q6_K` (`ggml-common.h`): `{ uint8_t ql[128]; uint8_t qh[64];
//! int8_t scales[16]; ggml_half d; }`, 210 bytes (6.5625 bits per weight). Each half
//! (128 weights) uses 64 bytes of `ql` and 32 of `qh`: for `i < 32`, `ql[i]` holds
//! the low 4 bits of weights `i` (low nibble) and `i + 64` (high), `ql[i + 32]` those
//! of `i + 32` and `i + 96`, and `qh[i]` the top 2 bits of `i`, `i + 32`, `i + 64`,
//! `i + 96` in bits 0-1, 2-3, 4-5, 6-7.
//!
//! Reference: ggml `src/ggml-quants.c` (ggml-org/ggml@5136ed06),
//! `quantize_row_q6_K_ref` (the path without importance weights) /
//! `dequantize_row_q6_K`.

use super::k_common::{make_qx_quants, nearest_int, GROUP_MAX_EPS, QK_K};
use super::{f16_from_le, f16_to_le, QuantKind, QuantType};
use bytemuck::{Pod, Zeroable};

/// One Q6_K super-block.
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
#[repr(C)]
pub struct BlockQ6K {
    /// Low 4 bits of the quants.
    pub ql: [u8; QK_K / 2],
    /// High 2 bits of the quants.
    pub qh: [u8; QK_K / 4],
    /// Signed 8-bit scale per sub-block of 16.
    pub scales: [i8; QK_K / 16],
    /// Super-block scale, f16 little-endian.
    pub d: [u8; 2],
}
const _: () = assert!(std::mem::size_of::<BlockQ6K>() == 210);

/// Descriptor row.
pub const KIND: QuantKind = QuantKind {
    ty: QuantType::Q6_K,
    name: "q6_k",
    block_size: QK_K,
    type_size: std::mem::size_of::<BlockQ6K>(),
    quantize_row_ref,
    dequantize_row_ref,
    rmse_budget: 0.021,
};

/// Quantizes one super-block (ggml `quantize_row_q6_K_ref`: `make_qx_quants` with
/// `nmax = 32` and `x²` weights per sub-block, then 8-bit sub-block scales).
pub fn quantize_block(x: &[f32]) -> BlockQ6K {
    let mut l = [0i8; QK_K];
    let mut scales = [0f32; QK_K / 16];
    let mut max_scale = 0.0f32;
    let mut max_abs_scale = 0.0f32;
    for (ib, s) in scales.iter_mut().enumerate() {
        let r = 16 * ib..16 * ib + 16;
        *s = make_qx_quants(&x[r.clone()], 32, &mut l[r], 1, None);
        if s.abs() > max_abs_scale {
            max_abs_scale = s.abs();
            max_scale = *s;
        }
    }
    if max_abs_scale < GROUP_MAX_EPS {
        return BlockQ6K::zeroed();
    }

    let iscale = -128.0 / max_scale;
    let d = f16_to_le(1.0 / iscale);
    let mut sc = [0i8; QK_K / 16];
    for (q, &s) in sc.iter_mut().zip(&scales) {
        // C: MIN(127, nearest_int(...)) stored to int8_t (modulo 256).
        *q = nearest_int(iscale * s).min(127) as i8;
    }
    for (j, &q) in sc.iter().enumerate() {
        let dj = f16_from_le(d) * q as f32;
        if dj == 0.0 {
            continue;
        }
        for ii in 0..16 {
            let v = nearest_int(x[16 * j + ii] / dj).clamp(-32, 31);
            l[16 * j + ii] = (v + 32) as i8;
        }
    }

    let mut ql = [0u8; QK_K / 2];
    let mut qh = [0u8; QK_K / 4];
    for ((ql, qh), l) in ql
        .chunks_exact_mut(64)
        .zip(qh.chunks_exact_mut(32))
        .zip(l.chunks_exact(128))
    {
        for i in 0..32 {
            let [q1, q2, q3, q4] = [l[i], l[i + 32], l[i + 64], l[i + 96]].map(|v| v as u8);
            ql[i] = (q1 & 0xF) | ((q3 & 0xF) << 4);
            ql[i + 32] = (q2 & 0xF) | ((q4 & 0xF) << 4);
            qh[i] = (q1 >> 4) | ((q2 >> 4) << 2) | ((q3 >> 4) << 4) | ((q4 >> 4) << 6);
        }
    }
    BlockQ6K {
        ql,
        qh,
        scales: sc,
        d,
    }
}

/// Scalar reference quantizer.
pub fn quantize_row_ref(src: &[f32], dst: &mut [u8]) {
    let blocks: &mut [BlockQ6K] = bytemuck::cast_slice_mut(dst);
    for (b, x) in blocks.iter_mut().zip(src.chunks_exact(QK_K)) {
        *b = quantize_block(x);
    }
}

/// Scalar reference dequantizer.
pub fn dequantize_row_ref(src: &[u8], dst: &mut [f32]) {
    let blocks: &[BlockQ6K] = bytemuck::cast_slice(src);
    for (b, y) in blocks.iter().zip(dst.chunks_exact_mut(QK_K)) {
        let d = f16_from_le(b.d);
        for (((ql, qh), sc), y) in
            b.ql.chunks_exact(64)
                .zip(b.qh.chunks_exact(32))
                .zip(b.scales.chunks_exact(8))
                .zip(y.chunks_exact_mut(128))
        {
            for i in 0..32 {
                let is = i / 16;
                let q1 = ((ql[i] & 0xF) | ((qh[i] & 3) << 4)) as i32 - 32;
                let q2 = ((ql[i + 32] & 0xF) | (((qh[i] >> 2) & 3) << 4)) as i32 - 32;
                let q3 = ((ql[i] >> 4) | (((qh[i] >> 4) & 3) << 4)) as i32 - 32;
                let q4 = ((ql[i + 32] >> 4) | (((qh[i] >> 6) & 3) << 4)) as i32 - 32;
                y[i] = d * sc[is] as f32 * q1 as f32;
                y[i + 32] = d * sc[is + 2] as f32 * q2 as f32;
                y[i + 64] = d * sc[is + 4] as f32 * q3 as f32;
                y[i + 96] = d * sc[is + 6] as f32 * q4 as f32;
            }
        }
    }
}
