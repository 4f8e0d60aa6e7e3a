//! Quantized activations: the matmul quantizes each activation row once, then every
//! weight block is multiplied with integer dot products (ggml's scheme,
//! `ggml-cpu/quants.c` `quantize_row_q8_0`/`q8_1`/`q8_K`,
//! ggml-org/llama.cpp@04e1dd75).
//!
//! Two block forms, both with an f32 scale (ggml stores f16 in `block_q8_0` and
//! `block_q8_1`; f32 is more accurate and costs nothing since these blocks never
//! reach a file):
//!
//! | block          | for weights                    | contents |
//! |----------------|--------------------------------|----------|
//! | [`BlockQ8_1`]  | Q4_0, Q4_1, Q5_0, Q5_1, IQ4_NL; Q8_0 with a scale per block | 32 values, `d`, `s = d·Σq` (for the `+ m` term of Q4_1/Q5_1) |
//! | [`BlockQ8K`]   | Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, IQ4_XS | 256 values, `d`, sums of each 16 (for the mins of Q2_K/Q4_K/Q5_K and the offsets of Q3_K/Q6_K) |
//!
//! Quantization: `d = amax / 127`, `q = round_ties_even(x · 127 / amax)` in
//! `-127..=127` (never -128, so the AVX2 sign trick cannot overflow).
//!
//! Unlike ggml's `q8_0`/`q8_1`, the scale of [`BlockQ8_1`] is shared by each group of
//! [`Q8_1_GROUP`] consecutive blocks (256 values, like `q8_K`): `amax` is taken over
//! the group. A dot product then needs one weight scale per block and one activation
//! scale per group, `Σ_g da_g · Σ_{b∈g} dw_b · isum_b`, instead of the product
//! `dw_b · da_b` for every block and token, which is a third of the work of the
//! prefill kernel. The price is a coarser activation grid: NMSE about 5e-5 instead of
//! 3e-5 on Gaussian data (see [`act_nmse_budget`]).
//!
//! Q8_0 weights are the exception ([`ActType::Q8_0`]: the same blocks, one scale
//! each, as ggml's `q8_0`): their own rounding is so fine that the coarser grid
//! would be most of their error. Measured on mamba-shakespeare (llama.cpp's
//! perplexity protocol, second half of 512-token windows): 129.92 with the shared
//! scale, 130.04 with one per block, 130.07 for llama.cpp and 130.02 with f32
//! activations — the shared scale alone moved q8_0 0.11% from llama.cpp.

use bytemuck::{Pod, Zeroable};
use mamba_format::QuantType;

/// Values per [`BlockQ8_1`].
pub const QK8_1: usize = 32;
/// Values per [`BlockQ8K`].
pub const QK_K: usize = 256;
/// Consecutive [`BlockQ8_1`] blocks sharing one scale, counted from the start of the
/// row (the last group of a row may be shorter).
pub const Q8_1_GROUP: usize = 8;

/// 32 activations quantized to 8 bits: `x ≈ d · q`.
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
#[repr(C)]
pub struct BlockQ8_1 {
    /// Scale, the same for the [`Q8_1_GROUP`] blocks of a group.
    pub d: f32,
    /// `d · Σ qs`, for weight types with a minimum (`x = d·q + m`).
    pub s: f32,
    /// Quantized values.
    pub qs: [i8; QK8_1],
}
const _: () = assert!(std::mem::size_of::<BlockQ8_1>() == 40);

/// 256 activations quantized to 8 bits: `x ≈ d · q`, with the sum of each 16.
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
#[repr(C)]
pub struct BlockQ8K {
    /// Scale.
    pub d: f32,
    /// Quantized values.
    pub qs: [i8; QK_K],
    /// `bsums[g] = Σ qs[16g .. 16g + 16]`.
    pub bsums: [i16; QK_K / 16],
}
const _: () = assert!(std::mem::size_of::<BlockQ8K>() == 292);

/// The form a weight type wants its activations in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ActType {
    /// Plain f32 (F32, F16 and BF16 weights: no activation quantization).
    F32,
    /// [`BlockQ8_1`] blocks, one scale per group of [`Q8_1_GROUP`].
    Q8_1,
    /// [`BlockQ8_1`] blocks, one scale each (for Q8_0 weights).
    Q8_0,
    /// [`BlockQ8K`] blocks.
    Q8K,
}

impl ActType {
    /// The activation form used with weights of type `ty`.
    pub const fn for_weights(ty: QuantType) -> ActType {
        match ty {
            QuantType::F32 | QuantType::F16 | QuantType::BF16 => ActType::F32,
            // The 256-weight types, as in ggml (their vec_dot_type is q8_K).
            QuantType::Q2_K
            | QuantType::Q3_K
            | QuantType::Q4_K
            | QuantType::Q5_K
            | QuantType::Q6_K
            | QuantType::IQ4_XS => ActType::Q8K,
            // The 32-weight types (ggml: q8_0, or q8_1 for Q4_1/Q5_1).
            QuantType::Q4_0
            | QuantType::Q4_1
            | QuantType::Q5_0
            | QuantType::Q5_1
            | QuantType::IQ4_NL => ActType::Q8_1,
            QuantType::Q8_0 => ActType::Q8_0,
        }
    }

    /// Bytes of one quantized activation row of `cols` values (`cols * 4` for f32).
    pub fn row_bytes(self, cols: usize) -> usize {
        match self {
            ActType::F32 => cols * 4,
            ActType::Q8_1 | ActType::Q8_0 => cols / QK8_1 * std::mem::size_of::<BlockQ8_1>(),
            ActType::Q8K => cols / QK_K * std::mem::size_of::<BlockQ8K>(),
        }
    }
}

/// NMSE budget of the tiled matmul (quantized activations) against
/// [`crate::matmul::matmul_ref`] for weights of type `ty`:
/// `Σ (y − y_ref)² / Σ y_ref²` over Gaussian activations must stay below it.
///
/// Besides this statistical budget, every single output obeys a hard bound, also
/// tested: the activation rounding `x̂ − x` changes an output by at most
/// `‖w_r‖₂ · ‖x̂_t − x_t‖₂` (Cauchy–Schwarz), plus f32 rounding; per block,
/// `‖x̂ − x‖₂ <= √block · amax / 254`.
///
/// Measured (`tests/matmul.rs`, N(0,1) weights with outliers and activations):
/// about 5e-5 for both activation forms (scales shared by 256 values), 3e-14 for
/// the float types; the budgets leave about 3× headroom. The
/// float types keep f32 activations, so only summation order differs.
pub fn act_nmse_budget(ty: QuantType) -> f64 {
    match ActType::for_weights(ty) {
        ActType::F32 => NMSE_F32_ACT,
        ActType::Q8_1 => NMSE_Q8_1_ACT,
        ActType::Q8_0 => NMSE_Q8_0_ACT,
        ActType::Q8K => NMSE_Q8K_ACT,
    }
}

/// [`act_nmse_budget`] of F32, F16 and BF16 weights (f32 activations).
pub const NMSE_F32_ACT: f64 = 1e-13;
/// [`act_nmse_budget`] of Q4_0, Q4_1, Q5_0, Q5_1 and IQ4_NL weights
/// ([`BlockQ8_1`] activations, scales per group).
pub const NMSE_Q8_1_ACT: f64 = 1.5e-4;
/// [`act_nmse_budget`] of Q8_0 weights ([`BlockQ8_1`] activations, a scale per
/// block).
pub const NMSE_Q8_0_ACT: f64 = 1e-4;
/// [`act_nmse_budget`] of Q2_K, Q3_K, Q4_K, Q5_K, Q6_K and IQ4_XS weights
/// ([`BlockQ8K`] activations).
pub const NMSE_Q8K_ACT: f64 = 1.5e-4;
