//! Quantization types: one descriptor table, one file per block layout.
//!
//! Block layouts are byte-compatible with ggml's (`ggml-common.h`), so GGUF tensors
//! can later be imported without requantizing. Every block struct is `#[repr(C)]`,
//! `Pod`, and has alignment 1 (f16 scales are stored as `[u8; 2]` little-endian), so
//! `bytemuck::try_cast_slice` over any `&[u8]` can only fail on length, never on
//! alignment.
//!
//! The `_ref` functions here are the scalar reference implementations. They are the
//! only quantizers the converter uses, so converted files are deterministic.

pub mod bf16;
pub mod f16;
pub mod f32;
pub mod iq4_nl;
pub mod iq4_xs;
pub mod k_common;
pub mod q2_k;
pub mod q3_k;
pub mod q4_0;
pub mod q4_1;
pub mod q4_k;
pub mod q5_0;
pub mod q5_1;
pub mod q5_k;
pub mod q6_k;
pub mod q8_0;

/// A tensor element type as stored in a `.mbin` file.
///
/// The numeric ids are ggml's `ggml_type` values, so a GGUF importer can map ids
/// one to one.
#[allow(non_camel_case_types)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u32)]
pub enum QuantType {
    /// IEEE 754 binary32, little-endian.
    F32 = 0,
    /// IEEE 754 binary16, little-endian.
    F16 = 1,
    /// 4-bit, 32 weights per block, one f16 scale: `x = d * (q - 8)`.
    Q4_0 = 2,
    /// 4-bit, 32 weights per block, f16 scale and minimum: `x = d * q + m`.
    Q4_1 = 3,
    /// 5-bit, 32 weights per block, one f16 scale: `x = d * (q - 16)`.
    Q5_0 = 6,
    /// 5-bit, 32 weights per block, f16 scale and minimum: `x = d * q + m`.
    Q5_1 = 7,
    /// 8-bit, 32 weights per block, one f16 scale: `x = d * q`.
    Q8_0 = 8,
    /// 2-bit K-quant, 256-weight super-blocks of 16 sub-blocks with 4-bit scales and
    /// mins: `x = d * sc * q - dmin * m`.
    Q2_K = 10,
    /// 3-bit K-quant, 256-weight super-blocks of 16 sub-blocks with signed 6-bit
    /// scales: `x = d * sc * (q - 4)`.
    Q3_K = 11,
    /// 4-bit K-quant, 256-weight super-blocks of 8 sub-blocks with 6-bit scales and mins.
    Q4_K = 12,
    /// 5-bit K-quant, 256-weight super-blocks of 8 sub-blocks with 6-bit scales and mins.
    Q5_K = 13,
    /// 6-bit K-quant, 256-weight super-blocks of 16 sub-blocks with 8-bit scales.
    Q6_K = 14,
    /// 4-bit non-linear, 32 weights per block, one f16 scale and indices into a
    /// fixed table of 16 values: `x = d * KVALUES[q]`.
    IQ4_NL = 20,
    /// 4-bit non-linear, 256-weight super-blocks of 8 sub-blocks with 6-bit scales
    /// and the IQ4_NL table: `x = d * (ls - 32) * KVALUES[q]`.
    IQ4_XS = 23,
    /// bfloat16 (the top half of an IEEE binary32), little-endian.
    BF16 = 30,
}

/// Everything the format knows about one element type: one row per type in
/// [`QUANT_KINDS`], instead of a `match` in every function.
#[derive(Debug)]
pub struct QuantKind {
    /// The type this row describes.
    pub ty: QuantType,
    /// Lower-case name used on command lines and in `mamba-inspect` (`"q4_k"`).
    pub name: &'static str,
    /// Weights per block (1 for the float types).
    pub block_size: usize,
    /// Bytes per block.
    pub type_size: usize,
    /// Scalar reference quantizer: `src.len()` is a multiple of `block_size`, and
    /// `dst.len() == src.len() / block_size * type_size`.
    pub quantize_row_ref: fn(src: &[f32], dst: &mut [u8]),
    /// Scalar reference dequantizer, the inverse layout of `quantize_row_ref`.
    pub dequantize_row_ref: fn(src: &[u8], dst: &mut [f32]),
    /// Round-trip RMSE budget on the deterministic test vector
    /// `0.1 + 2 cos(i)` (ggml's `test-quantize-fns`), checked by the tests.
    pub rmse_budget: f32,
}

/// The descriptor table, one row per [`QuantType`], in id order.
pub static QUANT_KINDS: [QuantKind; 15] = [
    f32::KIND,
    f16::KIND,
    q4_0::KIND,
    q4_1::KIND,
    q5_0::KIND,
    q5_1::KIND,
    q8_0::KIND,
    q2_k::KIND,
    q3_k::KIND,
    q4_k::KIND,
    q5_k::KIND,
    q6_k::KIND,
    iq4_nl::KIND,
    iq4_xs::KIND,
    bf16::KIND,
];

impl QuantType {
    /// Every type, in id order.
    pub const ALL: [QuantType; 15] = [
        QuantType::F32,
        QuantType::F16,
        QuantType::Q4_0,
        QuantType::Q4_1,
        QuantType::Q5_0,
        QuantType::Q5_1,
        QuantType::Q8_0,
        QuantType::Q2_K,
        QuantType::Q3_K,
        QuantType::Q4_K,
        QuantType::Q5_K,
        QuantType::Q6_K,
        QuantType::IQ4_NL,
        QuantType::IQ4_XS,
        QuantType::BF16,
    ];

    /// The type with this on-disk id, if the format knows it.
    pub fn from_id(id: u32) -> Option<QuantType> {
        QuantType::ALL.into_iter().find(|t| t.id() == id)
    }

    /// The type with this lower-case name (`"q8_0"`), if any.
    pub fn from_name(name: &str) -> Option<QuantType> {
        QUANT_KINDS
            .iter()
            .find(|k| k.name.eq_ignore_ascii_case(name))
            .map(|k| k.ty)
    }

    /// The on-disk id (ggml's `ggml_type` number).
    pub fn id(self) -> u32 {
        self as u32
    }

    /// This type's row of [`QUANT_KINDS`].
    pub fn kind(self) -> &'static QuantKind {
        QUANT_KINDS
            .iter()
            .find(|k| k.ty == self)
            .expect("QUANT_KINDS has a row for every QuantType")
    }

    /// Lower-case name (`"q4_0"`).
    pub fn name(self) -> &'static str {
        self.kind().name
    }

    /// Weights per block.
    pub fn block_size(self) -> usize {
        self.kind().block_size
    }

    /// Bytes per block.
    pub fn type_size(self) -> usize {
        self.kind().type_size
    }

    /// Storage cost in bits per weight, block overhead included.
    pub fn bits_per_weight(self) -> f64 {
        (self.type_size() * 8) as f64 / self.block_size() as f64
    }

    /// True for F32, F16 and BF16.
    pub fn is_float(self) -> bool {
        self.block_size() == 1
    }

    /// Bytes taken by `n_elems` weights, or `None` when `n_elems` is not a multiple of
    /// the block size or the size overflows.
    pub fn bytes_for(self, n_elems: u64) -> Option<u64> {
        let bs = self.block_size() as u64;
        if !n_elems.is_multiple_of(bs) {
            return None;
        }
        (n_elems / bs).checked_mul(self.type_size() as u64)
    }

    /// Quantizes one row with the scalar reference.
    ///
    /// # Panics
    /// If `src.len()` is not a multiple of the block size or `dst` has the wrong length;
    /// callers size buffers with [`QuantType::bytes_for`].
    pub fn quantize_row(self, src: &[f32], dst: &mut [u8]) {
        let k = self.kind();
        assert_eq!(
            src.len() % k.block_size,
            0,
            "row length not a multiple of the block"
        );
        assert_eq!(
            dst.len(),
            src.len() / k.block_size * k.type_size,
            "wrong output length"
        );
        (k.quantize_row_ref)(src, dst)
    }

    /// Dequantizes one row with the scalar reference.
    ///
    /// # Panics
    /// If `dst.len()` is not a multiple of the block size or `src` has the wrong length.
    pub fn dequantize_row(self, src: &[u8], dst: &mut [f32]) {
        let k = self.kind();
        assert_eq!(
            dst.len() % k.block_size,
            0,
            "row length not a multiple of the block"
        );
        assert_eq!(
            src.len(),
            dst.len() / k.block_size * k.type_size,
            "wrong input length"
        );
        (k.dequantize_row_ref)(src, dst)
    }
}

impl std::fmt::Display for QuantType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// C's float-to-integer conversion as ggml's x86-64 builds perform it
/// (`cvttss2si`): truncation toward zero, and `i32::MIN` for NaN and values outside
/// the `i32` range, where C leaves the result undefined. The 32-weight quantizers
/// convert to 8 bits through this (`as i8`/`as u8` then wrap, as the C conversion
/// to a narrow type does), so that a block whose scale overflows (a subnormal
/// maximum, or infinite input) still gets ggml's bytes; Rust's saturating `as`
/// would not.
#[inline]
pub(crate) fn c_trunc_i32(v: f32) -> i32 {
    if (-2_147_483_648.0..2_147_483_648.0).contains(&v) {
        v as i32
    } else {
        i32::MIN
    }
}

/// Reads a little-endian f16 stored as two bytes.
#[inline]
pub fn f16_from_le(b: [u8; 2]) -> f32 {
    half::f16::from_le_bytes(b).to_f32()
}

/// Rounds to f16 (round-to-nearest-even) and returns its little-endian bytes.
#[inline]
pub fn f16_to_le(x: f32) -> [u8; 2] {
    half::f16::from_f32(x).to_le_bytes()
}

#[cfg(test)]
mod test_vectors;
#[cfg(test)]
mod tests;
