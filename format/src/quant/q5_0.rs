//! Q5_0: 32 weights per block, one f16 scale, `x = d * (q - 16)` with `q` in 0..32.
//!
//! Layout: ggml `block_q5_0` (`ggml-common.h`): `{ ggml_half d; uint8_t qh[4];
//! uint8_t qs[16]; }`, 22 bytes. `qs` holds the low 4 bits as in Q4_0 (weight `j`
//! low nibble, weight `j + 16` high nibble); bit `j` of the little-endian `u32` in
//! `qh` is the fifth bit of weight `j`.
//!
//! Reference: ggml `src/ggml-quants.c` (ggml-org/ggml@5136ed06),
//! `quantize_row_q5_0_ref` / `dequantize_row_q5_0`.

use super::{c_trunc_i32, f16_from_le, f16_to_le, QuantKind, QuantType};
use bytemuck::{Pod, Zeroable};

/// Weights per block.
pub const QK5_0: usize = 32;

/// One Q5_0 block.
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
#[repr(C)]
pub struct BlockQ5_0 {
    /// Scale, f16 little-endian.
    pub d: [u8; 2],
    /// Fifth bits, one per weight, as a little-endian `u32`.
    pub qh: [u8; 4],
    /// Low nibbles: weight `j` low, weight `j + 16` high.
    pub qs: [u8; QK5_0 / 2],
}
const _: () = assert!(std::mem::size_of::<BlockQ5_0>() == 22);

/// Descriptor row.
pub const KIND: QuantKind = QuantKind {
    ty: QuantType::Q5_0,
    name: "q5_0",
    block_size: QK5_0,
    type_size: std::mem::size_of::<BlockQ5_0>(),
    quantize_row_ref,
    dequantize_row_ref,
    rmse_budget: 0.048,
};

/// Quantizes one block: the value of largest magnitude maps to `q = 0`
/// (`d = max / -16`), the rest round half up into 0..=31.
pub fn quantize_block(x: &[f32]) -> BlockQ5_0 {
    let mut amax = 0.0f32;
    let mut max = 0.0f32;
    for &v in x {
        if amax < v.abs() {
            amax = v.abs();
            max = v;
        }
    }
    let d = max / -16.0;
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    // C: MIN(31, (int8_t)(v*id + 16.5f)), truncating toward zero.
    let q = |v: f32| (c_trunc_i32(v * id + 16.5) as i8).min(31) as u8;
    let mut qs = [0u8; QK5_0 / 2];
    let mut qh = 0u32;
    for (j, b) in qs.iter_mut().enumerate() {
        let (x0, x1) = (q(x[j]), q(x[j + QK5_0 / 2]));
        *b = (x0 & 0x0F) | ((x1 & 0x0F) << 4);
        qh |= (((x0 & 0x10) >> 4) as u32) << j;
        qh |= (((x1 & 0x10) >> 4) as u32) << (j + QK5_0 / 2);
    }
    BlockQ5_0 {
        d: f16_to_le(d),
        qh: qh.to_le_bytes(),
        qs,
    }
}

/// Scalar reference quantizer.
pub fn quantize_row_ref(src: &[f32], dst: &mut [u8]) {
    let blocks: &mut [BlockQ5_0] = bytemuck::cast_slice_mut(dst);
    for (b, x) in blocks.iter_mut().zip(src.chunks_exact(QK5_0)) {
        *b = quantize_block(x);
    }
}

/// Scalar reference dequantizer.
pub fn dequantize_row_ref(src: &[u8], dst: &mut [f32]) {
    let blocks: &[BlockQ5_0] = bytemuck::cast_slice(src);
    for (b, y) in blocks.iter().zip(dst.chunks_exact_mut(QK5_0)) {
        let d = f16_from_le(b.d);
        let qh = u32::from_le_bytes(b.qh);
        let (lo, hi) = y.split_at_mut(QK5_0 / 2);
        for (j, ((q, l), h)) in b.qs.iter().zip(lo).zip(hi).enumerate() {
            let xh0 = ((qh >> j) << 4) as u8 & 0x10;
            let xh1 = (qh >> (j + 12)) as u8 & 0x10;
            *l = (((q & 0x0F) | xh0) as i32 - 16) as f32 * d;
            *h = (((q >> 4) | xh1) as i32 - 16) as f32 * d;
        }
    }
}
