//! Q3_K: 3-bit K-quant. 256-weight super-blocks of 16 sub-blocks of 16, each with a
//! signed 6-bit scale: `x = d * sc[s] * (q - 4)` with `q` in 0..8 and `sc[s]` in
//! -32..32.
//!
//! Layout: ggml `block_q3_K` (`ggml-common.h`): `{ uint8_t hmask[32]; uint8_t
//! qs[64]; uint8_t scales[12]; ggml_half d; }`, 110 bytes (3.4375 bits per weight).
//! The low 2 bits of each quant sit in `qs` as in Q2_K (bits `2k..2k+2` of
//! `qs[32h + i]` for weight `128h + 32k + i`); the third bit of weight `w` is bit
//! `w / 32` of `hmask[w % 32]`. The 6-bit scale of sub-block `s`, plus 32, has its
//! low 4 bits in the low (`s` < 8) or high nibble of `scales[s % 8]` and its top 2
//! bits in bits `2(s/4)..2(s/4)+2` of `scales[8 + s % 4]` (see [`scale`]).
//!
//! Reference: ggml-org/llama.cpp@0c1e5709 `ggml/src/ggml-quants.c`,
//! `quantize_row_q3_K_ref` (what `quantize_q3_K` runs without importance weights) /
//! `dequantize_row_q3_K`.

use super::k_common::{make_q3_quants, nearest_int, QK_K};
use super::{f16_from_le, f16_to_le, QuantKind, QuantType};
use bytemuck::{Pod, Zeroable};

/// One Q3_K super-block.
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
#[repr(C)]
pub struct BlockQ3K {
    /// Third bit of each quant.
    pub hmask: [u8; QK_K / 8],
    /// Low 2 bits of each quant, four weights per byte.
    pub qs: [u8; QK_K / 4],
    /// Sixteen 6-bit scales (stored plus 32), packed.
    pub scales: [u8; 12],
    /// Super-block scale, f16 little-endian.
    pub d: [u8; 2],
}
const _: () = assert!(std::mem::size_of::<BlockQ3K>() == 110);

/// Descriptor row.
pub const KIND: QuantKind = QuantKind {
    ty: QuantType::Q3_K,
    name: "q3_k",
    block_size: QK_K,
    type_size: std::mem::size_of::<BlockQ3K>(),
    quantize_row_ref,
    dequantize_row_ref,
    rmse_budget: 0.20,
};

/// The signed scale of sub-block `s` (0..16), in -32..32: the unpacking of ggml's
/// `dequantize_row_q3_K` (`kmask1`/`kmask2`), written per scale.
#[inline]
pub fn scale(scales: &[u8; 12], s: usize) -> i8 {
    let lo = if s < 8 {
        scales[s] & 0xF
    } else {
        scales[s - 8] >> 4
    };
    let hi = (scales[8 + s % 4] >> (2 * (s / 4))) & 3;
    (lo | (hi << 4)) as i8 - 32
}

/// Quantizes one super-block (ggml `quantize_row_q3_K_ref`: `make_q3_quants` with
/// `nmax = 4` and the rmse search per sub-block, then 6-bit scales against the one of
/// largest magnitude, and a requantization with the rounded scales).
pub fn quantize_block(x: &[f32]) -> BlockQ3K {
    let mut l = [0i8; QK_K];
    let mut scales = [0f32; QK_K / 16];
    let mut max_scale = 0.0f32;
    let mut amax = 0.0f32;
    for (j, s) in scales.iter_mut().enumerate() {
        let r = 16 * j..16 * j + 16;
        *s = make_q3_quants(&x[r.clone()], 4, &mut l[r], true);
        if s.abs() > amax {
            amax = s.abs();
            max_scale = *s;
        }
    }

    let mut sc = [0u8; 12];
    let d = if max_scale != 0.0 {
        let iscale = -32.0 / max_scale;
        for (j, &s) in scales.iter().enumerate() {
            // C: `int8_t l = nearest_int(...)` (modulo 256), then clamped.
            let q = ((nearest_int(iscale * s) as i8).clamp(-32, 31) + 32) as u8;
            if j < 8 {
                sc[j] = q & 0xF;
            } else {
                sc[j - 8] |= (q & 0xF) << 4;
            }
            sc[j % 4 + 8] |= (q >> 4) << (2 * (j / 4));
        }
        f16_to_le(1.0 / iscale)
    } else {
        f16_to_le(0.0)
    };

    for j in 0..QK_K / 16 {
        let dj = f16_from_le(d) * scale(&sc, j) as f32;
        if dj == 0.0 {
            continue;
        }
        for ii in 0..16 {
            let q = nearest_int(x[16 * j + ii] / dj).clamp(-4, 3);
            l[16 * j + ii] = (q + 4) as i8;
        }
    }

    // The third bit of weight j goes to bit j / 32 of hmask[j % 32].
    let mut hmask = [0u8; QK_K / 8];
    for (j, q) in l.iter_mut().enumerate() {
        if *q > 3 {
            hmask[j % 32] |= 1 << (j / 32);
            *q -= 4;
        }
    }
    let mut qs = [0u8; QK_K / 4];
    for (q, l) in qs.chunks_exact_mut(32).zip(l.chunks_exact(128)) {
        for i in 0..32 {
            let [a, b, c, e] = [l[i], l[i + 32], l[i + 64], l[i + 96]].map(|v| v as u8);
            q[i] = a | (b << 2) | (c << 4) | (e << 6);
        }
    }
    BlockQ3K {
        hmask,
        qs,
        scales: sc,
        d,
    }
}

/// Scalar reference quantizer.
pub fn quantize_row_ref(src: &[f32], dst: &mut [u8]) {
    let blocks: &mut [BlockQ3K] = bytemuck::cast_slice_mut(dst);
    for (b, x) in blocks.iter_mut().zip(src.chunks_exact(QK_K)) {
        *b = quantize_block(x);
    }
}

/// Scalar reference dequantizer.
pub fn dequantize_row_ref(src: &[u8], dst: &mut [f32]) {
    let blocks: &[BlockQ3K] = bytemuck::cast_slice(src);
    for (b, y) in blocks.iter().zip(dst.chunks_exact_mut(QK_K)) {
        let d = f16_from_le(b.d);
        for (h, (q, y)) in
            b.qs.chunks_exact(32)
                .zip(y.chunks_exact_mut(128))
                .enumerate()
        {
            for (k, y) in y.chunks_exact_mut(32).enumerate() {
                let bit = 1u8 << (4 * h + k);
                for (g, y) in y.chunks_exact_mut(16).enumerate() {
                    let dl = d * scale(&b.scales, 8 * h + 2 * k + g) as f32;
                    for (i, y) in y.iter_mut().enumerate() {
                        let lo = ((q[16 * g + i] >> (2 * k)) & 3) as i32;
                        let off = if b.hmask[16 * g + i] & bit != 0 { 0 } else { 4 };
                        *y = dl * (lo - off) as f32;
                    }
                }
            }
        }
    }
}
