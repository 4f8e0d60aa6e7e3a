//! F16: IEEE 754 binary16, little-endian, one weight per "block".
//!
//! Narrowing rounds to nearest, ties to even (`half::f16::from_f32`), as ggml's
//! `GGML_FP32_TO_FP16`; widening is exact.

use super::{f16_from_le, f16_to_le, QuantKind, QuantType};

/// Descriptor row.
pub const KIND: QuantKind = QuantKind {
    ty: QuantType::F16,
    name: "f16",
    block_size: 1,
    type_size: 2,
    quantize_row_ref,
    dequantize_row_ref,
    rmse_budget: 3.5e-4,
};

/// Rounds each value to f16 (nearest, ties to even) and stores its little-endian bytes.
pub fn quantize_row_ref(src: &[f32], dst: &mut [u8]) {
    for (d, &s) in dst.chunks_exact_mut(2).zip(src) {
        d.copy_from_slice(&f16_to_le(s));
    }
}

/// Widens little-endian f16 values to f32 (exact).
pub fn dequantize_row_ref(src: &[u8], dst: &mut [f32]) {
    for (d, s) in dst.iter_mut().zip(src.chunks_exact(2)) {
        *d = f16_from_le([s[0], s[1]]);
    }
}
