//! Portable kernels: the scalar `_ref` activation quantizers and dot products, and
//! the [`GENERIC`](crate::cpu::GENERIC) matmul built from them.
//!
//! These define the arithmetic of the quantized-activation matmul; every SIMD
//! kernel is tested against them.

pub mod dot;
pub mod quantize;

pub use dot::*;
pub use quantize::{quantize_row_q8_0_ref, quantize_row_q8_1_ref, quantize_row_q8_k_ref};

use crate::cpu::act::{ActType, BlockQ8K, BlockQ8_1};
use crate::cpu::tile::{self, MR, NR};
use crate::cpu::{MatmulKernels, TypeKernel};
use crate::weights::WeightView;
use bytemuck::cast_slice;
use mamba_format::QuantType;

/// One weight type's scalar dot product over raw row bytes.
pub(crate) trait RefDot {
    /// Dot of one stored weight row with one activation row (in its [`ActType`] form).
    fn dot(w: &[u8], a: &[u8]) -> f32;
}

/// F32 weights.
pub(crate) struct F32;
/// F16 weights.
pub(crate) struct F16;
/// BF16 weights.
pub(crate) struct Bf16;
/// Q4_0 weights.
pub(crate) struct Q4_0;
/// Q4_1 weights.
pub(crate) struct Q4_1;
/// Q5_0 weights.
pub(crate) struct Q5_0;
/// Q5_1 weights.
pub(crate) struct Q5_1;
/// Q8_0 weights.
pub(crate) struct Q8_0;
/// Q4_K weights.
pub(crate) struct Q4K;
/// Q5_K weights.
pub(crate) struct Q5K;
/// Q6_K weights.
pub(crate) struct Q6K;
/// Q2_K weights.
pub(crate) struct Q2K;
/// Q3_K weights.
pub(crate) struct Q3K;
/// IQ4_NL weights.
pub(crate) struct Iq4Nl;
/// IQ4_XS weights.
pub(crate) struct Iq4Xs;

impl RefDot for F32 {
    fn dot(w: &[u8], a: &[u8]) -> f32 {
        vec_dot_f32_ref(w, cast_slice(a))
    }
}
impl RefDot for F16 {
    fn dot(w: &[u8], a: &[u8]) -> f32 {
        vec_dot_f16_f32_ref(w, cast_slice(a))
    }
}
impl RefDot for Bf16 {
    fn dot(w: &[u8], a: &[u8]) -> f32 {
        vec_dot_bf16_f32_ref(w, cast_slice(a))
    }
}
impl RefDot for Q4_0 {
    fn dot(w: &[u8], a: &[u8]) -> f32 {
        vec_dot_q4_0_q8_1_ref(cast_slice(w), cast_slice(a))
    }
}
impl RefDot for Q4_1 {
    fn dot(w: &[u8], a: &[u8]) -> f32 {
        vec_dot_q4_1_q8_1_ref(cast_slice(w), cast_slice(a))
    }
}
impl RefDot for Q5_0 {
    fn dot(w: &[u8], a: &[u8]) -> f32 {
        vec_dot_q5_0_q8_1_ref(cast_slice(w), cast_slice(a))
    }
}
impl RefDot for Q5_1 {
    fn dot(w: &[u8], a: &[u8]) -> f32 {
        vec_dot_q5_1_q8_1_ref(cast_slice(w), cast_slice(a))
    }
}
impl RefDot for Q8_0 {
    fn dot(w: &[u8], a: &[u8]) -> f32 {
        vec_dot_q8_0_q8_1_ref(cast_slice(w), cast_slice(a))
    }
}
impl RefDot for Q4K {
    fn dot(w: &[u8], a: &[u8]) -> f32 {
        vec_dot_q4_k_q8_k_ref(cast_slice(w), cast_slice(a))
    }
}
impl RefDot for Q5K {
    fn dot(w: &[u8], a: &[u8]) -> f32 {
        vec_dot_q5_k_q8_k_ref(cast_slice(w), cast_slice(a))
    }
}
impl RefDot for Q6K {
    fn dot(w: &[u8], a: &[u8]) -> f32 {
        vec_dot_q6_k_q8_k_ref(cast_slice(w), cast_slice(a))
    }
}
impl RefDot for Q2K {
    fn dot(w: &[u8], a: &[u8]) -> f32 {
        vec_dot_q2_k_q8_k_ref(cast_slice(w), cast_slice(a))
    }
}
impl RefDot for Q3K {
    fn dot(w: &[u8], a: &[u8]) -> f32 {
        vec_dot_q3_k_q8_k_ref(cast_slice(w), cast_slice(a))
    }
}
impl RefDot for Iq4Nl {
    fn dot(w: &[u8], a: &[u8]) -> f32 {
        vec_dot_iq4_nl_q8_1_ref(cast_slice(w), cast_slice(a))
    }
}
impl RefDot for Iq4Xs {
    fn dot(w: &[u8], a: &[u8]) -> f32 {
        vec_dot_iq4_xs_q8_k_ref(cast_slice(w), cast_slice(a))
    }
}

/// A one-row tile: `out[0][j] = dot(rows[0], toks[j])` for `j < rn`. SIMD tables
/// without a kernel of their own for a weight type use it too.
pub(crate) fn tile_ref<D: RefDot>(
    rows: &[&[u8]; MR],
    toks: &[&[u8]; NR],
    rn: usize,
    out: &mut [[f32; NR]; MR],
) {
    for (o, a) in out[0].iter_mut().zip(&toks[..rn]) {
        *o = D::dot(rows[0], a);
    }
}

/// The table row of `ty` with a one-row tile kernel (for single tokens too).
pub(crate) const fn row(ty: QuantType, tile: tile::TileFn) -> TypeKernel {
    TypeKernel {
        ty,
        act: ActType::for_weights(ty),
        rows_per_tile: 1,
        toks_per_tile: NR,
        tile,
        decode_rows_per_tile: 1,
        decode_tile: tile,
    }
}

fn quantize_q8_1(x: &[f32], y: &mut [BlockQ8_1]) {
    quantize_row_q8_1_ref(x, y)
}

fn quantize_q8_0(x: &[f32], y: &mut [BlockQ8_1]) {
    quantize_row_q8_0_ref(x, y)
}

fn quantize_q8_k(x: &[f32], y: &mut [BlockQ8K]) {
    quantize_row_q8_k_ref(x, y)
}

/// The portable matmul kernels.
pub static GENERIC_MATMUL: MatmulKernels = MatmulKernels {
    quantize_q8_1,
    quantize_q8_0,
    quantize_q8_k,
    types: [
        row(QuantType::F32, tile_ref::<F32>),
        row(QuantType::F16, tile_ref::<F16>),
        row(QuantType::Q4_0, tile_ref::<Q4_0>),
        row(QuantType::Q4_1, tile_ref::<Q4_1>),
        row(QuantType::Q5_0, tile_ref::<Q5_0>),
        row(QuantType::Q5_1, tile_ref::<Q5_1>),
        row(QuantType::Q8_0, tile_ref::<Q8_0>),
        row(QuantType::Q2_K, tile_ref::<Q2K>),
        row(QuantType::Q3_K, tile_ref::<Q3K>),
        row(QuantType::Q4_K, tile_ref::<Q4K>),
        row(QuantType::Q5_K, tile_ref::<Q5K>),
        row(QuantType::Q6_K, tile_ref::<Q6K>),
        row(QuantType::IQ4_NL, tile_ref::<Iq4Nl>),
        row(QuantType::IQ4_XS, tile_ref::<Iq4Xs>),
        row(QuantType::BF16, tile_ref::<Bf16>),
    ],
};

/// The [`GENERIC`](crate::cpu::GENERIC) matmul.
pub fn matmul_generic(w: &WeightView<'_>, x: &[f32], n: usize, y: &mut [f32]) {
    // SAFETY: the portable kernels need no CPU feature.
    unsafe { tile::matmul_tiled(&GENERIC_MATMUL, w, x, n, y) }
}
