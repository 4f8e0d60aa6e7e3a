//! Q4_1: 32 weights per block, f16 scale and minimum, `x = d * q + m` with `q` in
//! 0..16.
//!
//! Layout: ggml `block_q4_1` (`ggml-common.h`): `{ ggml_half d; ggml_half m;
//! uint8_t qs[16]; }`, 20 bytes. Byte `j` of `qs` holds weight `j` in its low nibble
//! and weight `j + 16` in its high nibble.
//!
//! Reference: ggml `src/ggml-quants.c` (ggml-org/ggml@5136ed06),
//! `quantize_row_q4_1_ref` / `dequantize_row_q4_1`.

use super::{c_trunc_i32, f16_from_le, f16_to_le, QuantKind, QuantType};
use bytemuck::{Pod, Zeroable};

/// Weights per block.
pub const QK4_1: usize = 32;

/// One Q4_1 block.
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
#[repr(C)]
pub struct BlockQ4_1 {
    /// Scale, f16 little-endian.
    pub d: [u8; 2],
    /// Minimum (the value of `q = 0`), f16 little-endian.
    pub m: [u8; 2],
    /// Nibbles: weight `j` low, weight `j + 16` high.
    pub qs: [u8; QK4_1 / 2],
}
const _: () = assert!(std::mem::size_of::<BlockQ4_1>() == 20);

/// Descriptor row.
pub const KIND: QuantKind = QuantKind {
    ty: QuantType::Q4_1,
    name: "q4_1",
    block_size: QK4_1,
    type_size: std::mem::size_of::<BlockQ4_1>(),
    quantize_row_ref,
    dequantize_row_ref,
    rmse_budget: 0.092,
};

/// Quantizes one block: `d = (max - min) / 15`, `m = min`, quants round half up.
pub fn quantize_block(x: &[f32]) -> BlockQ4_1 {
    let mut min = f32::MAX;
    let mut max = -f32::MAX;
    for &v in x {
        if v < min {
            min = v;
        }
        if v > max {
            max = v;
        }
    }
    let d = (max - min) / 15.0;
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    // C: MIN(15, (int8_t)((v - min)*id + 0.5f)), truncating toward zero.
    let q = |v: f32| (c_trunc_i32((v - min) * id + 0.5) as i8).min(15) as u8;
    let mut qs = [0u8; QK4_1 / 2];
    for (j, b) in qs.iter_mut().enumerate() {
        *b = q(x[j]) | (q(x[j + QK4_1 / 2]) << 4);
    }
    BlockQ4_1 {
        d: f16_to_le(d),
        m: f16_to_le(min),
        qs,
    }
}

/// Scalar reference quantizer.
pub fn quantize_row_ref(src: &[f32], dst: &mut [u8]) {
    let blocks: &mut [BlockQ4_1] = bytemuck::cast_slice_mut(dst);
    for (b, x) in blocks.iter_mut().zip(src.chunks_exact(QK4_1)) {
        *b = quantize_block(x);
    }
}

/// Scalar reference dequantizer.
pub fn dequantize_row_ref(src: &[u8], dst: &mut [f32]) {
    let blocks: &[BlockQ4_1] = bytemuck::cast_slice(src);
    for (b, y) in blocks.iter().zip(dst.chunks_exact_mut(QK4_1)) {
        let d = f16_from_le(b.d);
        let m = f16_from_le(b.m);
        let (lo, hi) = y.split_at_mut(QK4_1 / 2);
        for ((q, l), h) in b.qs.iter().zip(lo).zip(hi) {
            *l = (q & 0x0F) as f32 * d + m;
            *h = (q >> 4) as f32 * d + m;
        }
    }
}
