//! AVX2 tiles for the 4- and 5-bit 32-weight blocks (Q4_0, Q4_1, Q5_0, Q5_1)
//! against [`BlockQ8_1`] activations, two weight rows per register. Scalar
//! references: `vec_dot_q{4,5}_{0,1}_q8_1_ref` in [`crate::cpu::scalar::dot`].
//! The block layouts are ggml's; ggml's kernels (`ggml_vec_dot_q4_0_q8_0`,
//! ggml-org/llama.cpp@04e1dd75) expand one block to 32 bytes instead.
//!
//! All four types are written `x = d·q + m` with unsigned `q` (Q4_0: `m = −8d`,
//! Q5_0: `m = −16d`), so `maddubs` (unsigned × signed bytes) applies directly and
//! the `m` term is `m · s`, `s = da·Σqa` from the activation block.
//!
//! A block stores weight `j` in the low nibble and `j + 16` in the high nibble of
//! byte `j`. Loading the 16 bytes of row A and of row B into the two halves of one
//! register, the low nibbles are weights 0..16 of both rows and the high nibbles
//! weights 16..32, matched by the activation halves broadcast to both lanes:
//!
//! ```text
//! for each group g of 8 blocks (one activation scale da_jg per token):
//!     for each block b of g:
//!         per row pair (A, B): lo = [A w0..16 | B w0..16], hi = [A w16..32 | B w16..32],
//!                              dd = [dA ×4 | dB ×4]
//!         per token j: alo = [a0..16 | a0..16], ahi = [a16..32 | a16..32]
//!             macc[j] += m_{rows} · s_jb                                  (rows in lanes)
//!             per pair: s16 = maddubs(lo, alo) + maddubs(hi, ahi)         (i16 ≤ 2·2·31·127)
//!                       t[pair][j] += dd · f32(madd(s16, 1))              (A in lanes 0..4, B in 4..8)
//!     acc[row][j] += da_jg · Σ lanes of its half of t
//! out[row][j] = acc[row][j] + macc[j][row]
//! ```
//!
//! Per weight block and token this is one `maddubs` and half of each of an add,
//! `madd`, convert and FMA: about half the work of the one-row-per-register form.

use super::{bytes_from_bits_32, f16x4, prefetch_ahead};
use crate::cpu::act::{BlockQ8_1, Q8_1_GROUP};
use crate::cpu::tile::{MR, NR};
use std::arch::x86_64::*;

/// One 4- or 5-bit 32-weight block type: where its fields are.
pub(super) trait Q4Like {
    /// Bytes per block.
    const SIZE: usize;
    /// Offset of the 16 bytes of nibbles.
    const QS: usize;
    /// Offset of the fifth bits (`u32`), for the 5-bit types.
    const QH: Option<usize>;
    /// Offset of the f16 minimum `m`, for the types that store one.
    const M: Option<usize>;
    /// `m / d` for the types without a stored minimum (`x = d·(q + M_OVER_D)`).
    const M_OVER_D: f32;
}

pub(super) struct Q4_0;
pub(super) struct Q4_1;
pub(super) struct Q5_0;
pub(super) struct Q5_1;

impl Q4Like for Q4_0 {
    // {d: f16, qs: [u8; 16]}; x = d·(q − 8)
    const SIZE: usize = 18;
    const QS: usize = 2;
    const QH: Option<usize> = None;
    const M: Option<usize> = None;
    const M_OVER_D: f32 = -8.0;
}

impl Q4Like for Q4_1 {
    // {d: f16, m: f16, qs: [u8; 16]}; x = d·q + m
    const SIZE: usize = 20;
    const QS: usize = 4;
    const QH: Option<usize> = None;
    const M: Option<usize> = Some(2);
    const M_OVER_D: f32 = 0.0;
}

impl Q4Like for Q5_0 {
    // {d: f16, qh: u32, qs: [u8; 16]}; x = d·(q − 16)
    const SIZE: usize = 22;
    const QS: usize = 6;
    const QH: Option<usize> = Some(2);
    const M: Option<usize> = None;
    const M_OVER_D: f32 = -16.0;
}

impl Q4Like for Q5_1 {
    // {d: f16, m: f16, qh: u32, qs: [u8; 16]}; x = d·q + m
    const SIZE: usize = 24;
    const QS: usize = 8;
    const QH: Option<usize> = Some(4);
    const M: Option<usize> = Some(2);
    const M_OVER_D: f32 = 0.0;
}

/// The unsigned quants of the blocks at `a` (row A) and `b` (row B): `lo` holds
/// weights 0..16 of A then of B, `hi` weights 16..32.
///
/// # Safety
/// `a` and `b` are valid for reading `W::SIZE` bytes; the CPU supports AVX2.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn quants2<W: Q4Like>(a: *const u8, b: *const u8) -> (__m256i, __m256i) {
    let qa = _mm_loadu_si128(a.add(W::QS) as *const __m128i);
    let v = _mm256_inserti128_si256::<1>(
        _mm256_castsi128_si256(qa),
        _mm_loadu_si128(b.add(W::QS) as *const __m128i),
    );
    let m4 = _mm256_set1_epi8(0x0F);
    let (lo, hi) = (
        _mm256_and_si256(v, m4),
        _mm256_and_si256(_mm256_srli_epi16::<4>(v), m4),
    );
    let Some(qh) = W::QH else { return (lo, hi) };
    // Fifth bits: bits 0..16 of each row's word go with `lo`, bits 16..32 with `hi`.
    let ha = u32::from_le_bytes(std::ptr::read_unaligned(a.add(qh) as *const [u8; 4]));
    let hb = u32::from_le_bytes(std::ptr::read_unaligned(b.add(qh) as *const [u8; 4]));
    let b16 = _mm256_set1_epi8(0x10);
    let hl = _mm256_and_si256(
        bytes_from_bits_32(((ha & 0xFFFF) | (hb << 16)).to_le_bytes().as_ptr()),
        b16,
    );
    let hh = _mm256_and_si256(
        bytes_from_bits_32(((ha >> 16) | (hb & 0xFFFF_0000)).to_le_bytes().as_ptr()),
        b16,
    );
    (_mm256_or_si256(lo, hl), _mm256_or_si256(hi, hh))
}

const ACT_SIZE: usize = std::mem::size_of::<BlockQ8_1>();

/// The [`TileFn`](crate::cpu::tile::TileFn) of block type `W` with `RM` rows (2 or
/// 4) and up to `RN` tokens per tile.
///
/// # Safety
/// The CPU must support AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) unsafe fn tile<W: Q4Like, const RM: usize, const RN: usize>(
    rows: &[&[u8]; MR],
    toks: &[&[u8]; NR],
    rn: usize,
    out: &mut [[f32; NR]; MR],
) {
    match rn {
        1 => tile_n::<W, RM, 1>(rows, toks, out),
        2 => tile_n::<W, RM, 2>(rows, toks, out),
        3 | 4 if RN >= 4 => tile_n::<W, RM, 4>(rows, toks, out),
        _ => tile_n::<W, RM, RN>(rows, toks, out),
    }
}

/// Sum of the 4 lanes of `v`, as `(v0 + v2) + (v1 + v3)`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn hsum4(v: __m128) -> f32 {
    let s = _mm_add_ps(v, _mm_movehl_ps(v, v));
    _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)))
}

#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn tile_n<W: Q4Like, const RM: usize, const RN: usize>(
    rows: &[&[u8]; MR],
    toks: &[&[u8]; NR],
    out: &mut [[f32; NR]; MR],
) {
    const { assert!((RM == 2 || RM == 4) && RN <= NR) };
    let nb = rows[0].len() / W::SIZE;
    for r in &rows[..RM] {
        assert_eq!(r.len(), nb * W::SIZE, "weight row length");
    }
    for t in &toks[..RN] {
        assert_eq!(t.len(), nb * ACT_SIZE, "activation row length");
    }
    let ones = _mm256_set1_epi16(1);
    let mut acc = [[0.0f32; RN]; RM];
    // Σ m_i·s_j, rows in lanes.
    let mut macc = [_mm_setzero_ps(); RN];
    for g in (0..nb).step_by(Q8_1_GROUP) {
        let mut t = [[_mm256_setzero_ps(); RN]; 2];
        for b in g..nb.min(g + Q8_1_GROUP) {
            // SAFETY: every row holds nb blocks (checked above); with RM = 2 the
            // last two pointers repeat the first two.
            let blk: [*const u8; 4] =
                std::array::from_fn(|i| rows[i % RM].as_ptr().add(b * W::SIZE));
            let mut lo = [_mm256_setzero_si256(); 2];
            let mut hi = [_mm256_setzero_si256(); 2];
            for p in 0..RM / 2 {
                if RN == 1 {
                    prefetch_ahead(rows[2 * p], RM, b * W::SIZE);
                    prefetch_ahead(rows[2 * p + 1], RM, b * W::SIZE);
                }
                (lo[p], hi[p]) = quants2::<W>(blk[2 * p], blk[2 * p + 1]);
            }
            // d of the 4 rows in lanes; dd[p] = [d_2p ×4 | d_2p+1 ×4].
            let d4 = f16x4(blk, 0);
            let m4 = match W::M {
                Some(off) => f16x4(blk, off),
                None => _mm_mul_ps(d4, _mm_set1_ps(W::M_OVER_D)),
            };
            let d8 = _mm256_castps128_ps256(d4);
            let dd = [
                _mm256_permutevar8x32_ps(d8, _mm256_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1)),
                _mm256_permutevar8x32_ps(d8, _mm256_setr_epi32(2, 2, 2, 2, 3, 3, 3, 3)),
            ];
            for j in 0..RN {
                // SAFETY: token j holds nb activation blocks (checked above):
                // {d: f32, s: f32, qs: [i8; 32]}, read unaligned.
                let ap = toks[j].as_ptr().add(b * ACT_SIZE);
                macc[j] = _mm_fmadd_ps(
                    m4,
                    _mm_set1_ps(std::ptr::read_unaligned(ap.add(4) as *const f32)),
                    macc[j],
                );
                let alo = _mm256_broadcastsi128_si256(_mm_loadu_si128(ap.add(8) as *const __m128i));
                let ahi =
                    _mm256_broadcastsi128_si256(_mm_loadu_si128(ap.add(24) as *const __m128i));
                for p in 0..RM / 2 {
                    let s16 = _mm256_add_epi16(
                        _mm256_maddubs_epi16(lo[p], alo),
                        _mm256_maddubs_epi16(hi[p], ahi),
                    );
                    let f = _mm256_cvtepi32_ps(_mm256_madd_epi16(s16, ones));
                    t[p][j] = _mm256_fmadd_ps(dd[p], f, t[p][j]);
                }
            }
        }
        for j in 0..RN {
            // SAFETY: as above; the group's scale is in each of its blocks.
            let da = std::ptr::read_unaligned(toks[j].as_ptr().add(g * ACT_SIZE) as *const f32);
            for p in 0..RM / 2 {
                acc[2 * p][j] += da * hsum4(_mm256_castps256_ps128(t[p][j]));
                acc[2 * p + 1][j] += da * hsum4(_mm256_extractf128_ps::<1>(t[p][j]));
            }
        }
    }
    for j in 0..RN {
        let mut mj = [0.0f32; 4];
        _mm_storeu_ps(mj.as_mut_ptr(), macc[j]);
        for i in 0..RM {
            out[i][j] = acc[i][j] + mj[i];
        }
    }
}
