//! Q5_1: 32 weights per block, f16 scale and minimum, `x = d * q + m` with `q` in
//! 0..32.
//!
//! Layout: ggml `block_q5_1` (`ggml-common.h`): `{ ggml_half d; ggml_half m;
//! uint8_t qh[4]; uint8_t qs[16]; }`, 24 bytes. `qs` and `qh` as in Q5_0.
//!
//! Reference: ggml `src/ggml-quants.c` (ggml-org/ggml@5136ed06),
//! `quantize_row_q5_1_ref` / `dequantize_row_q5_1`.

use super::{c_trunc_i32, f16_from_le, f16_to_le, QuantKind, QuantType};
use bytemuck::{Pod, Zeroable};

/// Weights per block.
pub const QK5_1: usize = 32;

/// One Q5_1 block.
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
#[repr(C)]
pub struct BlockQ5_1 {
    /// Scale, f16 little-endian.
    pub d: [u8; 2],
    /// Minimum (the value of `q = 0`), f16 little-endian.
    pub m: [u8; 2],
    /// Fifth bits, one per weight, as a little-endian `u32`.
    pub qh: [u8; 4],
    /// Low nibbles: weight `j` low, weight `j + 16` high.
    pub qs: [u8; QK5_1 / 2],
}
const _: () = assert!(std::mem::size_of::<BlockQ5_1>() == 24);

/// Descriptor row.
pub const KIND: QuantKind = QuantKind {
    ty: QuantType::Q5_1,
    name: "q5_1",
    block_size: QK5_1,
    type_size: std::mem::size_of::<BlockQ5_1>(),
    quantize_row_ref,
    dequantize_row_ref,
    rmse_budget: 0.045,
};

/// Quantizes one block: `d = (max - min) / 31`, `m = min`, quants round half up.
pub fn quantize_block(x: &[f32]) -> BlockQ5_1 {
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
    let d = (max - min) / 31.0;
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    // C: (uint8_t)((v - min)*id + 0.5f), truncating toward zero.
    let q = |v: f32| c_trunc_i32((v - min) * id + 0.5) as u8;
    let mut qs = [0u8; QK5_1 / 2];
    let mut qh = 0u32;
    for (j, b) in qs.iter_mut().enumerate() {
        let (x0, x1) = (q(x[j]), q(x[j + QK5_1 / 2]));
        *b = (x0 & 0x0F) | ((x1 & 0x0F) << 4);
        qh |= (((x0 & 0x10) >> 4) as u32) << j;
        qh |= (((x1 & 0x10) >> 4) as u32) << (j + QK5_1 / 2);
    }
    BlockQ5_1 {
        d: f16_to_le(d),
        m: f16_to_le(min),
        qh: qh.to_le_bytes(),
        qs,
    }
}

/// Scalar reference quantizer.
pub fn quantize_row_ref(src: &[f32], dst: &mut [u8]) {
    let blocks: &mut [BlockQ5_1] = bytemuck::cast_slice_mut(dst);
    for (b, x) in blocks.iter_mut().zip(src.chunks_exact(QK5_1)) {
        *b = quantize_block(x);
    }
}

/// Scalar reference dequantizer.
pub fn dequantize_row_ref(src: &[u8], dst: &mut [f32]) {
    let blocks: &[BlockQ5_1] = bytemuck::cast_slice(src);
    for (b, y) in blocks.iter().zip(dst.chunks_exact_mut(QK5_1)) {
        let d = f16_from_le(b.d);
        let m = f16_from_le(b.m);
        let qh = u32::from_le_bytes(b.qh);
        let (lo, hi) = y.split_at_mut(QK5_1 / 2);
        for (j, ((q, l), h)) in b.qs.iter().zip(lo).zip(hi).enumerate() {
            let xh0 = ((qh >> j) << 4) as u8 & 0x10;
            let xh1 = (qh >> (j + 12)) as u8 & 0x10;
            *l = ((q & 0x0F) | xh0) as f32 * d + m;
            *h = ((q >> 4) | xh1) as f32 * d + m;
        }
    }
}
