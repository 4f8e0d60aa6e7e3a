//! AVX2 tile for Q8_0 weights against [`BlockQ8_1`] activations. Scalar reference:
//! `vec_dot_q8_0_q8_1_ref` in [`crate::cpu::scalar::dot`]. After ggml
//! `ggml-cpu/arch/x86/quants.c` `ggml_vec_dot_q8_0_q8_0` (ggml-org/llama.cpp@04e1dd75),
//! with the activation scale shared by groups of 8 blocks.
//!
//! ```text
//! for each group g of 8 blocks (one activation scale da_jg per token):
//!     t[i][j] = 0
//!     for each block b of g:
//!         per row i:    q_i = the 32 weight quants as bytes, d_i, m_i     (unpacked once)
//!         per token j:  a_j = the 32 activation quants
//!             per row i:
//!                 p = Σ pairs of |q_i|·(a_j·sign q_i) → 8 × i32   (maddubs, then madd with 1s)
//!                 t[i][j] += d_i · f32(p)                          (8 lanes)
//!     acc[i][j] += da_jg · hsum(t[i][j])          (scalar: frees the registers)
//! out[i][j] = acc[i][j]
//! ```
//!
//! `maddubs` multiplies unsigned by signed bytes, hence the sign trick; the
//! activations are never -128, and |q| ≤ 128, so an i16 pair sum cannot overflow.

use super::{f16x4, hsum_ps, prefetch_ahead};
use crate::cpu::act::{BlockQ8_1, Q8_1_GROUP};
use crate::cpu::tile::{MR, NR};
use std::arch::x86_64::*;

/// Bytes per Q8_0 block: `{d: f16, qs: [i8; 32]}`, `x = d·q`.
const SIZE: usize = 34;
const ACT_SIZE: usize = std::mem::size_of::<BlockQ8_1>();

/// The [`TileFn`](crate::cpu::tile::TileFn) of Q8_0 with `RM` rows (at most 4) and
/// up to `RN` tokens per tile.
///
/// # Safety
/// The CPU must support AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) unsafe fn tile<const RM: usize, const RN: usize>(
    rows: &[&[u8]; MR],
    toks: &[&[u8]; NR],
    rn: usize,
    out: &mut [[f32; NR]; MR],
) {
    match rn {
        1 => tile_n::<RM, 1>(rows, toks, out),
        2 => tile_n::<RM, 2>(rows, toks, out),
        3 | 4 if RN >= 4 => tile_n::<RM, 4>(rows, toks, out),
        _ => tile_n::<RM, RN>(rows, toks, out),
    }
}

#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn tile_n<const RM: usize, const RN: usize>(
    rows: &[&[u8]; MR],
    toks: &[&[u8]; NR],
    out: &mut [[f32; NR]; MR],
) {
    const { assert!(RM <= 4 && RN <= NR) };
    let nb = rows[0].len() / SIZE;
    for r in &rows[..RM] {
        assert_eq!(r.len(), nb * SIZE, "weight row length");
    }
    for t in &toks[..RN] {
        assert_eq!(t.len(), nb * ACT_SIZE, "activation row length");
    }
    let ones = _mm256_set1_epi16(1);
    let mut acc = [[0.0f32; RN]; RM];
    for g in (0..nb).step_by(Q8_1_GROUP) {
        let mut t = [[_mm256_setzero_ps(); RN]; RM];
        for b in g..nb.min(g + Q8_1_GROUP) {
            // SAFETY: every row holds nb blocks (checked above); rows past RM repeat.
            let blk: [*const u8; 4] =
                std::array::from_fn(|i| rows[i.min(RM - 1)].as_ptr().add(b * SIZE));
            let d8 = _mm256_castps128_ps256(f16x4(blk, 0));
            let mut q = [_mm256_setzero_si256(); RM];
            let mut qabs = [_mm256_setzero_si256(); RM];
            let mut dw = [_mm256_setzero_ps(); RM];
            for i in 0..RM {
                if RN == 1 {
                    prefetch_ahead(rows[i], RM, b * SIZE);
                }
                q[i] = _mm256_loadu_si256(blk[i].add(2) as *const __m256i);
                qabs[i] = _mm256_sign_epi8(q[i], q[i]);
                dw[i] = _mm256_permutevar8x32_ps(d8, _mm256_set1_epi32(i as i32));
            }
            for j in 0..RN {
                // SAFETY: token j holds nb activation blocks (checked above):
                // {d: f32, s: f32, qs: [i8; 32]}, read unaligned.
                let a =
                    _mm256_loadu_si256(toks[j].as_ptr().add(b * ACT_SIZE + 8) as *const __m256i);
                for i in 0..RM {
                    let p16 = _mm256_maddubs_epi16(qabs[i], _mm256_sign_epi8(a, q[i]));
                    let p = _mm256_cvtepi32_ps(_mm256_madd_epi16(p16, ones));
                    t[i][j] = _mm256_fmadd_ps(dw[i], p, t[i][j]);
                }
            }
        }
        for j in 0..RN {
            // SAFETY: as above; the group's scale is in each of its blocks.
            let da = std::ptr::read_unaligned(toks[j].as_ptr().add(g * ACT_SIZE) as *const f32);
            for i in 0..RM {
                acc[i][j] += da * hsum_ps(t[i][j]);
            }
        }
    }
    for i in 0..RM {
        out[i][..RN].copy_from_slice(&acc[i]);
    }
}
