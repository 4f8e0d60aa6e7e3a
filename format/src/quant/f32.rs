//! F32: IEEE binary32, little-endian, one weight per "block".

use super::{QuantKind, QuantType};

/// Descriptor row.
pub const KIND: QuantKind = QuantKind {
    ty: QuantType::F32,
    name: "f32",
    block_size: 1,
    type_size: 4,
    quantize_row_ref,
    dequantize_row_ref,
    rmse_budget: 0.0,
};

/// Stores each value as its little-endian bytes (exact).
pub fn quantize_row_ref(src: &[f32], dst: &mut [u8]) {
    for (d, s) in dst.chunks_exact_mut(4).zip(src) {
        d.copy_from_slice(&s.to_le_bytes());
    }
}

/// Reads little-endian f32 values.
pub fn dequantize_row_ref(src: &[u8], dst: &mut [f32]) {
    for (d, s) in dst.iter_mut().zip(src.chunks_exact(4)) {
        *d = f32::from_le_bytes([s[0], s[1], s[2], s[3]]);
    }
}
