//! AVX2 tiles for the 32-weight block types (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0) against
//! [`BlockQ8_1`] activations. Scalar references: `vec_dot_*_q8_1_ref` in
//! [`crate::cpu::scalar::dot`]. After ggml `ggml-cpu/arch/x86/quants.c`
//! `ggml_vec_dot_q4_0_q8_0` and siblings (ggml-org/llama.cpp@04e1dd75).
//!
//! ```text
//! for each group g of 8 blocks (one activation scale da_jg per token):
//!     t[i][j] = 0
//!     for each block b of g:
//!         per row i:    q_i = the 32 weight quants as bytes, d_i, m_i     (unpacked once)
//!         per token j:  a_j = the 32 activation quants
//!             macc[j] += m_{0..RM} · s_jb                  (types with a minimum; rows in lanes)
//!             per row i:
//!                 p = Σ pairs of q_i·a_j → 8 × i32        (maddubs, then madd with 1s)
//!                 t[i][j] += d_i · f32(p)                 (8 lanes)
//!     acc[i][j] += da_jg · t[i][j]
//! out[i][j] = hsum(acc[i][j]) + macc[j][i]
//! ```
//!
//! `maddubs` multiplies unsigned by signed bytes. Types with a minimum have
//! unsigned quants (0..32) and use it directly; signed types (Q4_0 and Q5_0 shifted
//! to `q − 8`/`q − 16`, Q8_0) use the sign trick `|q| · (a · sign q)`. The
//! activations are never -128, so neither form can overflow an i16 pair sum.

use super::{bytes_from_bits_32, f16_at, hsum_ps};
use crate::cpu::act::{BlockQ8_1, Q8_1_GROUP};
use crate::cpu::tile::{MR, NR};
use std::arch::x86_64::*;

/// One 32-weight block type.
pub(super) trait Q32 {
    /// Bytes per block.
    const SIZE: usize;
    /// True for `x = d·q + m` (unsigned quants), false for `x = d·q` (signed quants).
    const HAS_MIN: bool;
    /// The block at `p`: its 32 quants in weight order, `d` and `m` (0 without a minimum).
    ///
    /// # Safety
    /// `p` is valid for reading `SIZE` bytes; the CPU supports AVX2, FMA and F16C.
    unsafe fn unpack(p: *const u8) -> (__m256i, f32, f32);
}

/// The 32 nibbles of 16 bytes at `p`: weight `j` low, `j + 16` high → bytes in order.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn nibbles(p: *const u8) -> __m256i {
    let qs = _mm_loadu_si128(p as *const __m128i);
    let both = _mm256_set_m128i(_mm_srli_epi16::<4>(qs), qs);
    _mm256_and_si256(both, _mm256_set1_epi8(0x0F))
}

pub(super) struct Q4_0;
pub(super) struct Q4_1;
pub(super) struct Q5_0;
pub(super) struct Q5_1;
pub(super) struct Q8_0;

impl Q32 for Q4_0 {
    const SIZE: usize = 18;
    const HAS_MIN: bool = false;
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn unpack(p: *const u8) -> (__m256i, f32, f32) {
        // {d: f16, qs: [u8; 16]}; x = d·(q − 8)
        (_mm256_sub_epi8(nibbles(p.add(2)), _mm256_set1_epi8(8)), f16_at(p), 0.0)
    }
}

impl Q32 for Q4_1 {
    const SIZE: usize = 20;
    const HAS_MIN: bool = true;
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn unpack(p: *const u8) -> (__m256i, f32, f32) {
        // {d: f16, m: f16, qs: [u8; 16]}; x = d·q + m
        (nibbles(p.add(4)), f16_at(p), f16_at(p.add(2)))
    }
}

impl Q32 for Q5_0 {
    const SIZE: usize = 22;
    const HAS_MIN: bool = false;
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn unpack(p: *const u8) -> (__m256i, f32, f32) {
        // {d: f16, qh: u32, qs: [u8; 16]}; x = d·(q − 16). With the fifth bit clear,
        // q − 16 = nibble | 0xF0 (as i8); with it set, q − 16 = nibble.
        let hi = _mm256_andnot_si256(bytes_from_bits_32(p.add(2)), _mm256_set1_epi8(0xF0u8 as i8));
        (_mm256_or_si256(nibbles(p.add(6)), hi), f16_at(p), 0.0)
    }
}

impl Q32 for Q5_1 {
    const SIZE: usize = 24;
    const HAS_MIN: bool = true;
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn unpack(p: *const u8) -> (__m256i, f32, f32) {
        // {d: f16, m: f16, qh: u32, qs: [u8; 16]}; x = d·q + m
        let hi = _mm256_and_si256(bytes_from_bits_32(p.add(4)), _mm256_set1_epi8(0x10));
        (_mm256_or_si256(nibbles(p.add(8)), hi), f16_at(p), f16_at(p.add(2)))
    }
}

impl Q32 for Q8_0 {
    const SIZE: usize = 34;
    const HAS_MIN: bool = false;
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn unpack(p: *const u8) -> (__m256i, f32, f32) {
        // {d: f16, qs: [i8; 32]}; x = d·q
        (_mm256_loadu_si256(p.add(2) as *const __m256i), f16_at(p), 0.0)
    }
}

const ACT_SIZE: usize = std::mem::size_of::<BlockQ8_1>();

/// The [`TileFn`](crate::cpu::tile::TileFn) of block type `W` with `RM` rows
/// (at most 4) and up to `RN` tokens per tile.
///
/// # Safety
/// The CPU must support AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) unsafe fn tile<W: Q32, const RM: usize, const RN: usize>(rows: &[&[u8]; MR], toks: &[&[u8]; NR], rn: usize, out: &mut [[f32; NR]; MR]) {
    match rn {
        1 => tile_n::<W, RM, 1>(rows, toks, out),
        2 => tile_n::<W, RM, 2>(rows, toks, out),
        3 | 4 if RN >= 4 => tile_n::<W, RM, 4>(rows, toks, out),
        _ => tile_n::<W, RM, RN>(rows, toks, out),
    }
}

#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn tile_n<W: Q32, const RM: usize, const RN: usize>(rows: &[&[u8]; MR], toks: &[&[u8]; NR], out: &mut [[f32; NR]; MR]) {
    const { assert!(RM <= 4 && RN <= NR) };
    let nb = rows[0].len() / W::SIZE;
    for r in &rows[..RM] {
        assert_eq!(r.len(), nb * W::SIZE, "weight row length");
    }
    for t in &toks[..RN] {
        assert_eq!(t.len(), nb * ACT_SIZE, "activation row length");
    }
    let ones = _mm256_set1_epi16(1);
    let mut acc = [[_mm256_setzero_ps(); RN]; RM];
    // Σ m_i·s_j, rows in lanes.
    let mut macc = [_mm_setzero_ps(); RN];
    for g in (0..nb).step_by(Q8_1_GROUP) {
        let mut t = [[_mm256_setzero_ps(); RN]; RM];
        for b in g..nb.min(g + Q8_1_GROUP) {
            let mut q = [_mm256_setzero_si256(); RM];
            let mut qabs = [_mm256_setzero_si256(); RM];
            let mut dw = [_mm256_setzero_ps(); RM];
            let mut m = [0.0f32; 4];
            for i in 0..RM {
                // SAFETY: row i holds nb blocks (checked above).
                let (qi, di, mi) = W::unpack(rows[i].as_ptr().add(b * W::SIZE));
                q[i] = qi;
                dw[i] = _mm256_set1_ps(di);
                m[i] = mi;
                if !W::HAS_MIN {
                    qabs[i] = _mm256_sign_epi8(qi, qi);
                }
            }
            let m4 = _mm_setr_ps(m[0], m[1], m[2], m[3]);
            for j in 0..RN {
                // SAFETY: token j holds nb activation blocks (checked above):
                // {d: f32, s: f32, qs: [i8; 32]}, read unaligned.
                let ap = toks[j].as_ptr().add(b * ACT_SIZE);
                if W::HAS_MIN {
                    macc[j] = _mm_fmadd_ps(m4, _mm_set1_ps(std::ptr::read_unaligned(ap.add(4) as *const f32)), macc[j]);
                }
                let a = _mm256_loadu_si256(ap.add(8) as *const __m256i);
                for i in 0..RM {
                    let p16 = if W::HAS_MIN {
                        _mm256_maddubs_epi16(q[i], a)
                    } else {
                        _mm256_maddubs_epi16(qabs[i], _mm256_sign_epi8(a, q[i]))
                    };
                    let p = _mm256_cvtepi32_ps(_mm256_madd_epi16(p16, ones));
                    t[i][j] = _mm256_fmadd_ps(dw[i], p, t[i][j]);
                }
            }
        }
        for j in 0..RN {
            // SAFETY: as above; the group's scale is in each of its blocks.
            let da = _mm256_set1_ps(std::ptr::read_unaligned(toks[j].as_ptr().add(g * ACT_SIZE) as *const f32));
            for i in 0..RM {
                acc[i][j] = _mm256_fmadd_ps(da, t[i][j], acc[i][j]);
            }
        }
    }
    for j in 0..RN {
        let mut mj = [0.0f32; 4];
        _mm_storeu_ps(mj.as_mut_ptr(), macc[j]);
        for i in 0..RM {
            out[i][j] = hsum_ps(acc[i][j]) + mj[i];
        }
    }
}
