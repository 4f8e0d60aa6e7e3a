//! AVX2 tiles for float weights (F32, F16 via F16C, BF16 by shifting into the top
//! half of an f32) against f32 activations. Scalar references:
//! `vec_dot_{f32,f16_f32,bf16_f32}_ref` in [`crate::cpu::scalar::dot`].
//!
//! ```text
//! for k in steps of 8:  w_i = 8 weights of row i as f32 (converted once per tile)
//!                       acc[i][j] = fma(w_i, x_j[k..k+8], acc[i][j])
//! out[i][j] = hsum(acc[i][j]) + Σ tail (scalar, in order)
//! ```
//!
//! Activations stay f32: an F32 model gets f32 arithmetic, only the summation order
//! differs from the reference.

use super::{hsum_ps, prefetch_ahead};
use crate::cpu::tile::{MR, NR};
use std::arch::x86_64::*;

/// One float weight type.
pub(super) trait FloatW {
    /// Bytes per weight.
    const BYTES: usize;
    /// 8 weights at `p`, widened to f32.
    ///
    /// # Safety
    /// `p` is valid for reading `8 * BYTES` bytes; the CPU supports AVX2, FMA, F16C.
    unsafe fn load8(p: *const u8) -> __m256;
    /// Weight `k` of `w`, widened to f32.
    fn get(w: &[u8], k: usize) -> f32;
}

pub(super) struct F32;
pub(super) struct F16;
pub(super) struct Bf16;

impl FloatW for F32 {
    const BYTES: usize = 4;
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn load8(p: *const u8) -> __m256 {
        _mm256_loadu_ps(p as *const f32)
    }
    #[inline]
    fn get(w: &[u8], k: usize) -> f32 {
        f32::from_le_bytes([w[4 * k], w[4 * k + 1], w[4 * k + 2], w[4 * k + 3]])
    }
}

impl FloatW for F16 {
    const BYTES: usize = 2;
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn load8(p: *const u8) -> __m256 {
        _mm256_cvtph_ps(_mm_loadu_si128(p as *const __m128i))
    }
    #[inline]
    fn get(w: &[u8], k: usize) -> f32 {
        half::f16::from_le_bytes([w[2 * k], w[2 * k + 1]]).to_f32()
    }
}

impl FloatW for Bf16 {
    const BYTES: usize = 2;
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn load8(p: *const u8) -> __m256 {
        let h = _mm256_cvtepu16_epi32(_mm_loadu_si128(p as *const __m128i));
        _mm256_castsi256_ps(_mm256_slli_epi32::<16>(h))
    }
    #[inline]
    fn get(w: &[u8], k: usize) -> f32 {
        f32::from_bits((u16::from_le_bytes([w[2 * k], w[2 * k + 1]]) as u32) << 16)
    }
}

/// The [`TileFn`](crate::cpu::tile::TileFn) of float type `F` with `RM` rows and
/// up to `RN` tokens per tile.
///
/// # Safety
/// The CPU must support AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) unsafe fn tile<F: FloatW, const RM: usize, const RN: usize>(
    rows: &[&[u8]; MR],
    toks: &[&[u8]; NR],
    rn: usize,
    out: &mut [[f32; NR]; MR],
) {
    match rn {
        1 => tile_n::<F, RM, 1>(rows, toks, out),
        2 => tile_n::<F, RM, 2>(rows, toks, out),
        3 | 4 if RN >= 4 => tile_n::<F, RM, 4>(rows, toks, out),
        _ => tile_n::<F, RM, RN>(rows, toks, out),
    }
}

#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn tile_n<F: FloatW, const RM: usize, const RN: usize>(
    rows: &[&[u8]; MR],
    toks: &[&[u8]; NR],
    out: &mut [[f32; NR]; MR],
) {
    let cols = rows[0].len() / F::BYTES;
    for r in &rows[..RM] {
        assert_eq!(r.len(), cols * F::BYTES, "weight row length");
    }
    for t in &toks[..RN] {
        assert_eq!(t.len(), cols * 4, "activation row length");
    }
    let full = cols / 8 * 8;
    let mut acc = [[_mm256_setzero_ps(); RN]; RM];
    for k in (0..full).step_by(8) {
        let mut w = [_mm256_setzero_ps(); RM];
        for (i, wi) in w.iter_mut().enumerate() {
            if RN == 1 && (k * F::BYTES) & 63 == 0 {
                prefetch_ahead(rows[i], RM, k * F::BYTES);
            }
            // SAFETY: k + 8 <= cols, and row i has cols weights (checked above).
            *wi = F::load8(rows[i].as_ptr().add(k * F::BYTES));
        }
        for j in 0..RN {
            // SAFETY: token j has cols f32 values (checked above); unaligned load.
            let x = _mm256_loadu_ps((toks[j].as_ptr() as *const f32).add(k));
            for i in 0..RM {
                acc[i][j] = _mm256_fmadd_ps(w[i], x, acc[i][j]);
            }
        }
    }
    for i in 0..RM {
        for j in 0..RN {
            let x = toks[j];
            let mut tail = 0.0f32;
            for k in full..cols {
                tail += F::get(rows[i], k)
                    * f32::from_le_bytes([x[4 * k], x[4 * k + 1], x[4 * k + 2], x[4 * k + 3]]);
            }
            out[i][j] = hsum_ps(acc[i][j]) + tail;
        }
    }
}
