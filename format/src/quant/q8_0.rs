//! Q8_0: 32 weights per block, one f16 scale, `x = d * q` with `q` in -127..=127.
//!
//! Layout: ggml `block_q8_0` (ggml-common.h): `{ ggml_half d; int8_t qs[32]; }`, 34 bytes.
//! Reference: ggml `quantize_row_q8_0_ref` / `dequantize_row_q8_0`.

use super::{c_trunc_i32, f16_from_le, f16_to_le, QuantKind, QuantType};
use bytemuck::{Pod, Zeroable};

/// Weights per block.
pub const QK8_0: usize = 32;

/// One Q8_0 block.
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
#[repr(C)]
pub struct BlockQ8_0 {
    /// Scale, f16 little-endian.
    pub d: [u8; 2],
    /// Quantized weights.
    pub qs: [i8; QK8_0],
}
const _: () = assert!(std::mem::size_of::<BlockQ8_0>() == 34);

/// Descriptor row.
pub const KIND: QuantKind = QuantKind {
    ty: QuantType::Q8_0,
    name: "q8_0",
    block_size: QK8_0,
    type_size: std::mem::size_of::<BlockQ8_0>(),
    quantize_row_ref,
    dequantize_row_ref,
    rmse_budget: 0.0060,
};

/// Quantizes one block (the scalar reference; also used for activations).
pub fn quantize_block(x: &[f32]) -> BlockQ8_0 {
    let amax = x.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    let d = amax / 127.0;
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    let mut qs = [0i8; QK8_0];
    for (q, v) in qs.iter_mut().zip(x) {
        *q = c_trunc_i32((v * id).round()) as i8;
    }
    BlockQ8_0 {
        d: f16_to_le(d),
        qs,
    }
}

/// Scalar reference quantizer.
pub fn quantize_row_ref(src: &[f32], dst: &mut [u8]) {
    let blocks: &mut [BlockQ8_0] = bytemuck::cast_slice_mut(dst);
    for (b, x) in blocks.iter_mut().zip(src.chunks_exact(QK8_0)) {
        *b = quantize_block(x);
    }
}

/// Scalar reference dequantizer.
pub fn dequantize_row_ref(src: &[u8], dst: &mut [f32]) {
    let blocks: &[BlockQ8_0] = bytemuck::cast_slice(src);
    for (b, y) in blocks.iter().zip(dst.chunks_exact_mut(QK8_0)) {
        let d = f16_from_le(b.d);
        for (o, &q) in y.iter_mut().zip(&b.qs) {
            *o = d * q as f32;
        }
    }
}
