//! AVX2 activation quantizers, bit-identical to
//! [`quantize_row_q8_1_ref`](crate::cpu::scalar::quantize_row_q8_1_ref) and
//! [`quantize_row_q8_k_ref`](crate::cpu::scalar::quantize_row_q8_k_ref).
//! After ggml `ggml-cpu/arch/x86/quants.c` `quantize_row_q8_0` (ggml-org/llama.cpp@04e1dd75).

use super::hsum_epi32;
use crate::cpu::act::{BlockQ8K, BlockQ8_1, Q8_1_GROUP, QK8_1, QK_K};
use std::arch::x86_64::*;

/// Largest |x| over `v`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn amax(v: &[__m256]) -> f32 {
    let sign = _mm256_set1_ps(-0.0);
    let mut m = _mm256_setzero_ps();
    for &x in v {
        m = _mm256_max_ps(m, _mm256_andnot_ps(sign, x));
    }
    let m4 = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps::<1>(m));
    let m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
    _mm_cvtss_f32(_mm_max_ss(m4, _mm_movehdup_ps(m4)))
}

/// Rounds `v · id` (ties to even) to i32 lanes.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn round_i32(v: __m256, id: __m256) -> __m256i {
    _mm256_cvtps_epi32(_mm256_round_ps::<
        { _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC },
    >(_mm256_mul_ps(v, id)))
}

/// Packs 4×8 i32 lanes (each in -127..=127) into 32 bytes in order.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn pack(i: [__m256i; 4]) -> __m256i {
    // packs works per 128-bit half; the permute restores the element order.
    let a = _mm256_packs_epi32(i[0], i[1]);
    let b = _mm256_packs_epi32(i[2], i[3]);
    _mm256_permutevar8x32_epi32(
        _mm256_packs_epi16(a, b),
        _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7),
    )
}

/// `(d, 1/d)` for largest magnitude `amax`, exactly as the reference computes them.
#[inline]
fn scales(amax: f32) -> (f32, f32) {
    let id = if amax != 0.0 { 127.0 / amax } else { 0.0 };
    (amax / 127.0, id)
}

/// AVX2 [`quantize_row_q8_1_ref`](crate::cpu::scalar::quantize_row_q8_1_ref).
///
/// # Safety
/// The CPU must support AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) unsafe fn quantize_row_q8_1(x: &[f32], y: &mut [BlockQ8_1]) {
    quantize_groups::<Q8_1_GROUP>(x, y)
}

/// AVX2 [`quantize_row_q8_0_ref`](crate::cpu::scalar::quantize_row_q8_0_ref).
///
/// # Safety
/// The CPU must support AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) unsafe fn quantize_row_q8_0(x: &[f32], y: &mut [BlockQ8_1]) {
    quantize_groups::<1>(x, y)
}

/// Quantizes with one scale per `G` blocks (`G <= Q8_1_GROUP`).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn quantize_groups<const G: usize>(x: &[f32], y: &mut [BlockQ8_1]) {
    const { assert!(G >= 1 && G <= Q8_1_GROUP) };
    assert_eq!(x.len(), y.len() * QK8_1, "quantize_row_q8_1: wrong lengths");
    for (g, xg) in y.chunks_mut(G).zip(x.chunks(G * QK8_1)) {
        let mut v = [_mm256_setzero_ps(); Q8_1_GROUP * QK8_1 / 8];
        for (k, vk) in v.iter_mut().enumerate().take(xg.len() / 8) {
            // SAFETY: 8k + 8 <= xg.len().
            *vk = _mm256_loadu_ps(xg.as_ptr().add(8 * k));
        }
        let (d, id) = scales(amax(&v[..xg.len() / 8]));
        let idv = _mm256_set1_ps(id);
        for (c, b) in g.iter_mut().enumerate() {
            let q = [
                round_i32(v[4 * c], idv),
                round_i32(v[4 * c + 1], idv),
                round_i32(v[4 * c + 2], idv),
                round_i32(v[4 * c + 3], idv),
            ];
            let sum = hsum_epi32(_mm256_add_epi32(
                _mm256_add_epi32(q[0], q[1]),
                _mm256_add_epi32(q[2], q[3]),
            ));
            _mm256_storeu_si256(b.qs.as_mut_ptr() as *mut __m256i, pack(q));
            b.d = d;
            b.s = d * sum as f32;
        }
    }
}

/// AVX2 [`quantize_row_q8_k_ref`](crate::cpu::scalar::quantize_row_q8_k_ref).
///
/// # Safety
/// The CPU must support AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) unsafe fn quantize_row_q8_k(x: &[f32], y: &mut [BlockQ8K]) {
    assert_eq!(x.len(), y.len() * QK_K, "quantize_row_q8_k: wrong lengths");
    for (b, x) in y.iter_mut().zip(x.chunks_exact(QK_K)) {
        let mut v = [_mm256_setzero_ps(); QK_K / 8];
        for (k, vk) in v.iter_mut().enumerate() {
            // SAFETY: `x` has 256 values.
            *vk = _mm256_loadu_ps(x.as_ptr().add(8 * k));
        }
        let (d, id) = scales(amax(&v));
        let idv = _mm256_set1_ps(id);
        for c in 0..QK_K / 32 {
            let q = [
                round_i32(v[4 * c], idv),
                round_i32(v[4 * c + 1], idv),
                round_i32(v[4 * c + 2], idv),
                round_i32(v[4 * c + 3], idv),
            ];
            b.bsums[2 * c] = hsum_epi32(_mm256_add_epi32(q[0], q[1])) as i16;
            b.bsums[2 * c + 1] = hsum_epi32(_mm256_add_epi32(q[2], q[3])) as i16;
            _mm256_storeu_si256(b.qs.as_mut_ptr().add(32 * c) as *mut __m256i, pack(q));
        }
        b.d = d;
    }
}
