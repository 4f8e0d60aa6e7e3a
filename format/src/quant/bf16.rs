//! BF16: bfloat16 (the top half of an IEEE binary32), little-endian, one weight per
//! "block".
//!
//! Narrowing rounds to nearest, ties to even (`half::bf16::from_f32`), as ggml's
//! `GGML_FP32_TO_BF16`; widening is exact.

use super::{QuantKind, QuantType};

/// Descriptor row.
pub const KIND: QuantKind = QuantKind {
    ty: QuantType::BF16,
    name: "bf16",
    block_size: 1,
    type_size: 2,
    quantize_row_ref,
    dequantize_row_ref,
    rmse_budget: 2.9e-3,
};

/// Rounds each value to bf16 (nearest, ties to even) and stores its little-endian bytes.
pub fn quantize_row_ref(src: &[f32], dst: &mut [u8]) {
    for (d, &s) in dst.chunks_exact_mut(2).zip(src) {
        d.copy_from_slice(&half::bf16::from_f32(s).to_le_bytes());
    }
}

/// Widens little-endian bf16 values to f32 (exact).
pub fn dequantize_row_ref(src: &[u8], dst: &mut [f32]) {
    for (d, s) in dst.iter_mut().zip(src.chunks_exact(2)) {
        *d = half::bf16::from_le_bytes([s[0], s[1]]).to_f32();
    }
}
