//! NEON activation quantizers, bit-identical to
//! [`quantize_row_q8_1_ref`](crate::cpu::scalar::quantize_row_q8_1_ref) and
//! [`quantize_row_q8_k_ref`](crate::cpu::scalar::quantize_row_q8_k_ref): the same
//! scalar `d` and `1/d`, the same f32 products `x·(1/d)`, and `fcvtns` rounds
//! them to nearest, ties to even, as `round_ties_even` does. After ggml
//! `ggml-cpu/arch/arm/quants.c` `quantize_row_q8_0` (ggml-org/llama.cpp@04e1dd75).

use crate::cpu::act::{BlockQ8K, BlockQ8_1, Q8_1_GROUP, QK8_1, QK_K};
use std::arch::aarch64::*;

/// Largest |x| over `x` (length a multiple of 4). `fmaxnm`, like `f32::max` in
/// the reference, ignores a NaN operand.
///
/// # Safety
/// None (NEON is baseline on aarch64); `unsafe` only for the loads, in bounds.
#[inline]
unsafe fn amax(x: &[f32]) -> f32 {
    let mut m = vdupq_n_f32(0.0);
    for c in x.chunks_exact(4) {
        m = vmaxnmq_f32(m, vabsq_f32(vld1q_f32(c.as_ptr())));
    }
    vmaxnmvq_f32(m)
}

/// `(d, 1/d)` for largest magnitude `amax`, exactly as the reference computes them.
#[inline]
fn scales(amax: f32) -> (f32, f32) {
    let id = if amax != 0.0 { 127.0 / amax } else { 0.0 };
    (amax / 127.0, id)
}

/// Quantizes 16 values to `q` and returns their sum. The values are in
/// -127..=127, so the narrowing is exact (saturating like the reference's `as i8`
/// in any case).
///
/// # Safety
/// None (NEON is baseline on aarch64); `unsafe` only for the loads and store.
#[inline]
unsafe fn quantize16(x: &[f32], id: f32, q: &mut [i8]) -> i32 {
    assert!(x.len() == 16 && q.len() == 16, "quantize16: wrong lengths");
    let i: [int32x4_t; 4] =
        std::array::from_fn(|k| vcvtnq_s32_f32(vmulq_n_f32(vld1q_f32(x.as_ptr().add(4 * k)), id)));
    let lo = vcombine_s16(vqmovn_s32(i[0]), vqmovn_s32(i[1]));
    let hi = vcombine_s16(vqmovn_s32(i[2]), vqmovn_s32(i[3]));
    vst1q_s8(q.as_mut_ptr(), vcombine_s8(vqmovn_s16(lo), vqmovn_s16(hi)));
    vaddvq_s32(vaddq_s32(vaddq_s32(i[0], i[1]), vaddq_s32(i[2], i[3])))
}

/// NEON [`quantize_row_q8_1_ref`](crate::cpu::scalar::quantize_row_q8_1_ref).
///
/// # Safety
/// None (NEON is baseline on aarch64); `unsafe` to fit
/// [`MatmulKernels`](crate::cpu::MatmulKernels).
pub(super) unsafe fn quantize_row_q8_1(x: &[f32], y: &mut [BlockQ8_1]) {
    quantize_groups(x, y, Q8_1_GROUP)
}

/// NEON [`quantize_row_q8_0_ref`](crate::cpu::scalar::quantize_row_q8_0_ref).
///
/// # Safety
/// None (NEON is baseline on aarch64); `unsafe` to fit
/// [`MatmulKernels`](crate::cpu::MatmulKernels).
pub(super) unsafe fn quantize_row_q8_0(x: &[f32], y: &mut [BlockQ8_1]) {
    quantize_groups(x, y, 1)
}

/// Quantizes with one scale per `group` blocks.
///
/// # Safety
/// None (NEON is baseline on aarch64); `unsafe` for the loads of [`amax`] and
/// [`quantize16`], in bounds.
unsafe fn quantize_groups(x: &[f32], y: &mut [BlockQ8_1], group: usize) {
    assert_eq!(x.len(), y.len() * QK8_1, "quantize_row_q8_1: wrong lengths");
    for (g, xg) in y.chunks_mut(group).zip(x.chunks(group * QK8_1)) {
        let (d, id) = scales(amax(xg));
        for (b, xb) in g.iter_mut().zip(xg.chunks_exact(QK8_1)) {
            let sum = quantize16(&xb[..16], id, &mut b.qs[..16])
                + quantize16(&xb[16..], id, &mut b.qs[16..]);
            b.d = d;
            b.s = d * sum as f32;
        }
    }
}

/// NEON [`quantize_row_q8_k_ref`](crate::cpu::scalar::quantize_row_q8_k_ref).
///
/// # Safety
/// None (NEON is baseline on aarch64); `unsafe` to fit
/// [`MatmulKernels`](crate::cpu::MatmulKernels).
pub(super) unsafe fn quantize_row_q8_k(x: &[f32], y: &mut [BlockQ8K]) {
    assert_eq!(x.len(), y.len() * QK_K, "quantize_row_q8_k: wrong lengths");
    for (b, x) in y.iter_mut().zip(x.chunks_exact(QK_K)) {
        let (d, id) = scales(amax(x));
        for (k, (xs, qs)) in x
            .chunks_exact(16)
            .zip(b.qs.chunks_exact_mut(16))
            .enumerate()
        {
            // |sum| <= 16·127: fits the i16 the reference sums in.
            b.bsums[k] = quantize16(xs, id, qs) as i16;
        }
        b.d = d;
    }
}
