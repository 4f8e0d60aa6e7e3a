//! AVX2 tile for Q8_0 weights against [`BlockQ8_1`] activations, four weight rows
//! per register. Scalar reference: `vec_dot_q8_0_q8_1_ref` in
//! [`crate::cpu::scalar::dot`]. The integer dot product is ggml's
//! (`ggml-cpu/arch/x86/quants.c` `ggml_vec_dot_q8_0_q8_0`,
//! ggml-org/llama.cpp@04e1dd75); the activations have a scale per block, as in
//! ggml ([`ActType::Q8_0`](crate::cpu::ActType::Q8_0): the loop below is written
//! over groups of [`GROUP`] blocks), and the 4 rows of a tile share each
//! instruction.
//!
//! A 32-byte block is 4 quarters of 8 bytes. Register `x_k` holds quarter `k` of
//! each of the 4 rows (row `r` in bytes `8r..8r + 8`), matched by quarter `k` of
//! the activations broadcast to the 4 slots. After `maddubs` and `madd`, i32 lane
//! `2r + h` of `x_k` is row `r`'s sum over weights `8k + 4h .. 8k + 4h + 4`; adding
//! the 4 quarters leaves every row's block sum split over two lanes, `L_r0` (weights
//! `i mod 8 < 4`) and `L_r1` (the others), exact integers:
//!
//! ```text
//! for each group g of GROUP blocks (one activation scale da_jg per token):
//!     t[j] = 0                                              (8 lanes: 4 rows × 2 halves)
//!     for each block b of g:
//!         x_k = quarter k of the 4 rows (k < 4), |x_k|        (unpacked once)
//!         dd  = [d_0 d_0 d_1 d_1 d_2 d_2 d_3 d_3]
//!         per token j:
//!             L = Σ_k madd(maddubs(|x_k|, a_jk·sign x_k), 1)  (a_jk: quarter k, broadcast)
//!             t[j] = fma(dd, f32(L), t[j])
//!     acc[r][j] = fma(da_jg, t[j][2r] + t[j][2r+1], acc[r][j])
//! out[r][j] = acc[r][j]
//! ```
//!
//! Per weight block and token this is one `sign`, `maddubs` and `madd`, and a
//! quarter of an add, a convert and an FMA. A single token (decode, [`tile_1`])
//! multiplies each row's block whole and forms the same two lanes per row after
//! `madd`. `maddubs` multiplies unsigned by
//! signed bytes, hence the sign trick; the activations are never -128, and
//! |q| ≤ 128, so an i16 pair sum cannot overflow. Every output's arithmetic is
//! the same whatever the tile's token count (decode included).

use super::{f16x4, prefetch_ahead};
use crate::cpu::act::BlockQ8_1;
use crate::cpu::tile::{MR, NR};
use std::arch::x86_64::*;

/// Bytes per Q8_0 block: `{d: f16, qs: [i8; 32]}`, `x = d·q`.
const SIZE: usize = 34;
const ACT_SIZE: usize = std::mem::size_of::<BlockQ8_1>();

/// Activation blocks sharing a scale: one, [`crate::cpu::ActType::Q8_0`].
const GROUP: usize = 1;

/// Weight rows per tile (all the kernels here): one per 8-byte slot of a register.
pub(super) const ROWS: usize = 4;

/// The [`TileFn`](crate::cpu::tile::TileFn) of Q8_0 with [`ROWS`] rows and up to
/// `RN` tokens per tile.
///
/// # Safety
/// The CPU must support AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) unsafe fn tile<const RN: usize>(
    rows: &[&[u8]; MR],
    toks: &[&[u8]; NR],
    rn: usize,
    out: &mut [[f32; NR]; MR],
) {
    match rn {
        1 => tile_1(rows, toks, out),
        2 => tile_n::<2>(rows, toks, out),
        3 | 4 if RN >= 4 => tile_n::<4>(rows, toks, out),
        5 | 6 if RN >= 6 => tile_n::<6>(rows, toks, out),
        _ => tile_n::<RN>(rows, toks, out),
    }
}

/// Quarter `k` of the 4 blocks at `p` (row `r` in bytes `8r..8r + 8`), `k < 4`.
///
/// # Safety
/// Each `p[r]` is valid for reading a block; the CPU supports AVX2.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn quarters(p: [*const u8; 4]) -> [__m256i; 4] {
    // y_h = [row 0 | row 2] and [row 1 | row 3], bytes 16h..16h + 16 of each.
    let half = |r0: usize, r1: usize, h: usize| {
        _mm256_inserti128_si256::<1>(
            _mm256_castsi128_si256(_mm_loadu_si128(p[r0].add(2 + 16 * h) as *const __m128i)),
            _mm_loadu_si128(p[r1].add(2 + 16 * h) as *const __m128i),
        )
    };
    let (y0, y1) = (half(0, 2, 0), half(1, 3, 0));
    let (y2, y3) = (half(0, 2, 1), half(1, 3, 1));
    [
        _mm256_unpacklo_epi64(y0, y1),
        _mm256_unpackhi_epi64(y0, y1),
        _mm256_unpacklo_epi64(y2, y3),
        _mm256_unpackhi_epi64(y2, y3),
    ]
}

#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn tile_n<const RN: usize>(
    rows: &[&[u8]; MR],
    toks: &[&[u8]; NR],
    out: &mut [[f32; NR]; MR],
) {
    const { assert!(ROWS == MR && RN <= NR) };
    let nb = rows[0].len() / SIZE;
    for r in rows {
        assert_eq!(r.len(), nb * SIZE, "weight row length");
    }
    for t in &toks[..RN] {
        assert_eq!(t.len(), nb * ACT_SIZE, "activation row length");
    }
    let ones = _mm256_set1_epi16(1);
    let dup = _mm256_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3);
    // Row r of token j in lanes 2r and 2r + 1 (the same value).
    let mut acc = [_mm256_setzero_ps(); RN];
    for g in (0..nb).step_by(GROUP) {
        let mut t = [_mm256_setzero_ps(); RN];
        for b in g..nb.min(g + GROUP) {
            // SAFETY: every row holds nb blocks (checked above).
            let blk: [*const u8; 4] = std::array::from_fn(|i| rows[i].as_ptr().add(b * SIZE));
            let x = quarters(blk);
            let xabs = x.map(|v| _mm256_sign_epi8(v, v));
            // From 6 tokens on, the signed quarters are read from memory (a volatile
            // copy, which `vpsignb` takes as its memory operand): the registers are
            // left to |x_k| and the accumulators.
            let xm = x;
            let dd = _mm256_permutevar8x32_ps(_mm256_castps128_ps256(f16x4(blk, 0)), dup);
            for j in 0..RN {
                // SAFETY: token j holds nb activation blocks (checked above):
                // {d: f32, s: f32, qs: [i8; 32]}, read unaligned.
                let ap = toks[j].as_ptr().add(b * ACT_SIZE + 8);
                let mut l = _mm256_setzero_si256();
                for k in 0..4 {
                    let a =
                        _mm256_set1_epi64x(std::ptr::read_unaligned(ap.add(8 * k) as *const i64));
                    let xk = if RN >= 6 {
                        std::ptr::read_volatile(&xm[k])
                    } else {
                        x[k]
                    };
                    let p16 = _mm256_maddubs_epi16(xabs[k], _mm256_sign_epi8(a, xk));
                    let p = _mm256_madd_epi16(p16, ones);
                    l = if k == 0 { p } else { _mm256_add_epi32(l, p) };
                }
                t[j] = _mm256_fmadd_ps(dd, _mm256_cvtepi32_ps(l), t[j]);
            }
        }
        for j in 0..RN {
            // SAFETY: as above; the group's scale is in each of its blocks.
            let da = std::ptr::read_unaligned(toks[j].as_ptr().add(g * ACT_SIZE) as *const f32);
            let s = _mm256_add_ps(t[j], _mm256_permute_ps::<0b10_11_00_01>(t[j]));
            acc[j] = _mm256_fmadd_ps(_mm256_set1_ps(da), s, acc[j]);
        }
    }
    for (j, a) in acc.iter().enumerate() {
        let mut v = [0.0f32; 8];
        _mm256_storeu_ps(v.as_mut_ptr(), *a);
        for r in 0..ROWS {
            out[r][j] = v[2 * r];
        }
    }
}

/// [`tile_n`] for one token: the same lanes and arithmetic, with each row's
/// block multiplied whole (32 bytes) and the rows' i32 sums combined afterwards
/// (`L_r0` = lanes 0, 2, 4, 6 of row `r`'s `madd`, `L_r1` = lanes 1, 3, 5, 7), which
/// takes fewer instructions than forming the quarters for a single token.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn tile_1(rows: &[&[u8]; MR], toks: &[&[u8]; NR], out: &mut [[f32; NR]; MR]) {
    const { assert!(ROWS == MR) };
    let nb = rows[0].len() / SIZE;
    for r in rows {
        assert_eq!(r.len(), nb * SIZE, "weight row length");
    }
    assert_eq!(toks[0].len(), nb * ACT_SIZE, "activation row length");
    let ones = _mm256_set1_epi16(1);
    let dup = _mm256_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3);
    let mut acc = _mm256_setzero_ps();
    for g in (0..nb).step_by(GROUP) {
        let mut t = _mm256_setzero_ps();
        for b in g..nb.min(g + GROUP) {
            // SAFETY: every row holds nb blocks and the token nb activation blocks
            // (checked above); reads are unaligned.
            let blk: [*const u8; 4] = std::array::from_fn(|i| rows[i].as_ptr().add(b * SIZE));
            let a = _mm256_loadu_si256(toks[0].as_ptr().add(b * ACT_SIZE + 8) as *const __m256i);
            let m: [__m256i; 4] = std::array::from_fn(|r| {
                prefetch_ahead(rows[r], ROWS, b * SIZE);
                let q = _mm256_loadu_si256(blk[r].add(2) as *const __m256i);
                let p16 = _mm256_maddubs_epi16(_mm256_sign_epi8(q, q), _mm256_sign_epi8(a, q));
                _mm256_madd_epi16(p16, ones)
            });
            // [r0: 0+2, 1+3 | r1: 0+2, 1+3 ‖ r0: 4+6, 5+7 | r1: 4+6, 5+7], and rows 2, 3.
            let s01 = _mm256_add_epi32(
                _mm256_unpacklo_epi64(m[0], m[1]),
                _mm256_unpackhi_epi64(m[0], m[1]),
            );
            let s23 = _mm256_add_epi32(
                _mm256_unpacklo_epi64(m[2], m[3]),
                _mm256_unpackhi_epi64(m[2], m[3]),
            );
            let l = _mm256_add_epi32(
                _mm256_permute2x128_si256::<0x20>(s01, s23),
                _mm256_permute2x128_si256::<0x31>(s01, s23),
            );
            let dd = _mm256_permutevar8x32_ps(_mm256_castps128_ps256(f16x4(blk, 0)), dup);
            t = _mm256_fmadd_ps(dd, _mm256_cvtepi32_ps(l), t);
        }
        // SAFETY: as above; the group's scale is in each of its blocks.
        let da = std::ptr::read_unaligned(toks[0].as_ptr().add(g * ACT_SIZE) as *const f32);
        let s = _mm256_add_ps(t, _mm256_permute_ps::<0b10_11_00_01>(t));
        acc = _mm256_fmadd_ps(_mm256_set1_ps(da), s, acc);
    }
    let mut v = [0.0f32; 8];
    _mm256_storeu_ps(v.as_mut_ptr(), acc);
    for r in 0..ROWS {
        out[r][0] = v[2 * r];
    }
}
