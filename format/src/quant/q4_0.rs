//! Q4_0: 32 weights per block, one f16 scale, `x = d * (q - 8)` with `q` in 0..16.
//!
//! Layout: ggml `block_q4_0` (`ggml-common.h`): `{ ggml_half d; uint8_t qs[16]; }`,
//! 18 bytes. Byte `j` of `qs` holds weight `j` in its low nibble and weight `j + 16`
//! in its high nibble.
//!
//! Reference: ggml `src/ggml-quants.c` (ggml-org/ggml@5136ed06),
//! `quantize_row_q4_0_ref` / `dequantize_row_q4_0`.

use super::{c_trunc_i32, f16_from_le, f16_to_le, QuantKind, QuantType};
use bytemuck::{Pod, Zeroable};

/// Weights per block.
pub const QK4_0: usize = 32;

/// One Q4_0 block.
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
#[repr(C)]
pub struct BlockQ4_0 {
    /// Scale, f16 little-endian.
    pub d: [u8; 2],
    /// Nibbles: weight `j` low, weight `j + 16` high.
    pub qs: [u8; QK4_0 / 2],
}
const _: () = assert!(std::mem::size_of::<BlockQ4_0>() == 18);

/// Descriptor row.
pub const KIND: QuantKind = QuantKind {
    ty: QuantType::Q4_0,
    name: "q4_0",
    block_size: QK4_0,
    type_size: std::mem::size_of::<BlockQ4_0>(),
    quantize_row_ref,
    dequantize_row_ref,
    rmse_budget: 0.090,
};

/// Quantizes one block: the value of largest magnitude maps to `q = 0`
/// (`d = max / -8`), the rest round half up into 0..=15.
pub fn quantize_block(x: &[f32]) -> BlockQ4_0 {
    let mut amax = 0.0f32;
    let mut max = 0.0f32;
    for &v in x {
        if amax < v.abs() {
            amax = v.abs();
            max = v;
        }
    }
    let d = max / -8.0;
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    // C: MIN(15, (int8_t)(v*id + 8.5f)), truncating toward zero.
    let q = |v: f32| (c_trunc_i32(v * id + 8.5) as i8).min(15) as u8;
    let mut qs = [0u8; QK4_0 / 2];
    for (j, b) in qs.iter_mut().enumerate() {
        *b = q(x[j]) | (q(x[j + QK4_0 / 2]) << 4);
    }
    BlockQ4_0 {
        d: f16_to_le(d),
        qs,
    }
}

/// Scalar reference quantizer.
pub fn quantize_row_ref(src: &[f32], dst: &mut [u8]) {
    let blocks: &mut [BlockQ4_0] = bytemuck::cast_slice_mut(dst);
    for (b, x) in blocks.iter_mut().zip(src.chunks_exact(QK4_0)) {
        *b = quantize_block(x);
    }
}

/// Scalar reference dequantizer.
pub fn dequantize_row_ref(src: &[u8], dst: &mut [f32]) {
    let blocks: &[BlockQ4_0] = bytemuck::cast_slice(src);
    for (b, y) in blocks.iter().zip(dst.chunks_exact_mut(QK4_0)) {
        let d = f16_from_le(b.d);
        let (lo, hi) = y.split_at_mut(QK4_0 / 2);
        for ((q, l), h) in b.qs.iter().zip(lo).zip(hi) {
            *l = ((q & 0x0F) as i32 - 8) as f32 * d;
            *h = ((q >> 4) as i32 - 8) as f32 * d;
        }
    }
}
