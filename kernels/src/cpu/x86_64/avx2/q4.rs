//! AVX2 tiles for the 4- and 5-bit 32-weight blocks (Q4_0, Q4_1, Q5_0, Q5_1)
//! against [`BlockQ8_1`] activations, four weight rows per register. Scalar
//! references: `vec_dot_q{4,5}_{0,1}_q8_1_ref` in [`crate::cpu::scalar::dot`].
//! The block layouts are ggml's; ggml's kernels (`ggml_vec_dot_q4_0_q8_0`,
//! ggml-org/llama.cpp@04e1dd75) expand one block to 32 bytes instead.
//!
//! All four types are written `x = d·q + m` with unsigned `q` (Q4_0: `m = −8d`,
//! Q5_0: `m = −16d`), so `maddubs` (unsigned × signed bytes) applies directly and
//! the `m` term is `m · s`, `s = da·Σqa` from the activation block.
//!
//! A block stores weight `i` in the low nibble and `i + 16` in the high nibble of
//! byte `i`. Bytes `0..8` and `8..16` of the 4 rows, one row per 8-byte slot, make
//! two registers; their low and high nibbles are the 4 parts `P_p` = weights
//! `8p..8p + 8` of every row (`p` = 0, 1: low nibbles, 2, 3: high nibbles), matched
//! by the activations `8p..8p + 8` broadcast to the 4 slots. After the 4 `maddubs`
//! are added and `madd` pairs them, i32 lane `2r + h` holds row `r`'s sum over the
//! weights `i` with `i mod 8` in `4h..4h + 4` (exact integers):
//!
//! ```text
//! for each group g of 8 blocks (one activation scale da_jg per token):
//!     t[j] = 0                                              (8 lanes: 4 rows × 2 halves)
//!     for each block b of g:
//!         P_p = part p of the 4 rows' quants (+ fifth bits)   (unpacked once)
//!         dd = [d_0 d_0 d_1 d_1 d_2 d_2 d_3 d_3], m4 = [m_0 m_1 m_2 m_3]
//!         per token j:
//!             macc[j] += m4 · s_jb                          (rows in lanes)
//!             s16 = Σ_p maddubs(P_p, a_jp)                  (a_jp broadcast; i16 ≤ 4·2·31·127)
//!             t[j] = fma(dd, f32(madd(s16, 1)), t[j])
//!     acc[r][j] = fma(da_jg, t[j][2r] + t[j][2r+1], acc[r][j])
//! out[r][j] = acc[r][j] + macc[j][r]
//! ```
//!
//! Per weight block and token this is one `maddubs` and a quarter of each of 3
//! adds, a `madd`, a convert and 2 FMAs. Every output's arithmetic is the same
//! whatever the tile's token count (decode included).

use super::{f16x4, prefetch_ahead};
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

/// The unsigned quants of the blocks at `p`, one row per 8-byte slot: part `k`
/// holds weights `8k..8k + 8` of each row (with their fifth bits for Q5).
///
/// # Safety
/// Each `p[r]` is valid for reading `W::SIZE` bytes; the CPU supports AVX2.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn quants4<W: Q4Like>(p: [*const u8; 4]) -> [__m256i; 4] {
    // [row 0 | row 2] and [row 1 | row 3], 16 bytes each.
    let pair = |r0: usize, r1: usize| {
        _mm256_inserti128_si256::<1>(
            _mm256_castsi128_si256(_mm_loadu_si128(p[r0].add(W::QS) as *const __m128i)),
            _mm_loadu_si128(p[r1].add(W::QS) as *const __m128i),
        )
    };
    let (y0, y1) = (pair(0, 2), pair(1, 3));
    let (v0, v1) = (_mm256_unpacklo_epi64(y0, y1), _mm256_unpackhi_epi64(y0, y1));
    let m4 = _mm256_set1_epi8(0x0F);
    let mut q = [
        _mm256_and_si256(v0, m4),
        _mm256_and_si256(v1, m4),
        _mm256_and_si256(_mm256_srli_epi16::<4>(v0), m4),
        _mm256_and_si256(_mm256_srli_epi16::<4>(v1), m4),
    ];
    let Some(qh) = W::QH else { return q };
    // Fifth bits: byte k of a row's word holds those of part k. Transpose the 4
    // words so that bytes 4k..4k + 4 are byte k of rows 0..4, then spread each
    // bit to a byte (as `bytes_from_bits_32`).
    let word = |r: usize| std::ptr::read_unaligned(p[r].add(qh) as *const u32) as u64;
    let h = _mm_set_epi64x(
        (word(2) | word(3) << 32) as i64,
        (word(0) | word(1) << 32) as i64,
    );
    let h = _mm_shuffle_epi8(
        h,
        _mm_setr_epi8(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15),
    );
    let h = _mm256_broadcastsi128_si256(h);
    let bit = _mm256_set1_epi64x(0x7fbfdfeff7fbfdfe);
    let b16 = _mm256_set1_epi8(0x10);
    for (k, qk) in q.iter_mut().enumerate() {
        let k = k as i64 * 0x0404_0404_0404_0404;
        let spread = _mm256_shuffle_epi8(
            h,
            _mm256_set_epi64x(
                0x0303030303030303 + k,
                0x0202020202020202 + k,
                0x0101010101010101 + k,
                k,
            ),
        );
        let set = _mm256_cmpeq_epi8(_mm256_or_si256(spread, bit), _mm256_set1_epi64x(-1));
        *qk = _mm256_or_si256(*qk, _mm256_and_si256(set, b16));
    }
    q
}

const ACT_SIZE: usize = std::mem::size_of::<BlockQ8_1>();

/// Weight rows per tile (all the kernels here): one per 8-byte slot of a register.
pub(super) const ROWS: usize = 4;

/// The [`TileFn`](crate::cpu::tile::TileFn) of block type `W` with [`ROWS`] rows
/// and up to `RN` tokens per tile.
///
/// # Safety
/// The CPU must support AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) unsafe fn tile<W: Q4Like, const RN: usize>(
    rows: &[&[u8]; MR],
    toks: &[&[u8]; NR],
    rn: usize,
    out: &mut [[f32; NR]; MR],
) {
    match rn {
        1 => tile_n::<W, 1>(rows, toks, out),
        2 => tile_n::<W, 2>(rows, toks, out),
        3 | 4 if RN >= 4 => tile_n::<W, 4>(rows, toks, out),
        5 | 6 if RN >= 6 => tile_n::<W, 6>(rows, toks, out),
        _ => tile_n::<W, RN>(rows, toks, out),
    }
}

#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn tile_n<W: Q4Like, const RN: usize>(
    rows: &[&[u8]; MR],
    toks: &[&[u8]; NR],
    out: &mut [[f32; NR]; MR],
) {
    const { assert!(ROWS == MR && RN <= NR) };
    let nb = rows[0].len() / W::SIZE;
    for r in rows {
        assert_eq!(r.len(), nb * W::SIZE, "weight row length");
    }
    for t in &toks[..RN] {
        assert_eq!(t.len(), nb * ACT_SIZE, "activation row length");
    }
    let ones = _mm256_set1_epi16(1);
    let dup = _mm256_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3);
    // Row r of token j in lanes 2r and 2r + 1 (the same value).
    let mut acc = [_mm256_setzero_ps(); RN];
    // Σ m_r·s_j, rows in lanes.
    let mut macc = [_mm_setzero_ps(); RN];
    for g in (0..nb).step_by(Q8_1_GROUP) {
        let mut t = [_mm256_setzero_ps(); RN];
        for b in g..nb.min(g + Q8_1_GROUP) {
            // SAFETY: every row holds nb blocks (checked above).
            let blk: [*const u8; 4] = std::array::from_fn(|i| rows[i].as_ptr().add(b * W::SIZE));
            if RN == 1 {
                for r in rows {
                    prefetch_ahead(r, ROWS, b * W::SIZE);
                }
            }
            let q = quants4::<W>(blk);
            let d4 = f16x4(blk, 0);
            let dd = _mm256_permutevar8x32_ps(_mm256_castps128_ps256(d4), dup);
            let m4 = match W::M {
                Some(off) => f16x4(blk, off),
                None => _mm_mul_ps(d4, _mm_set1_ps(W::M_OVER_D)),
            };
            for j in 0..RN {
                // SAFETY: token j holds nb activation blocks (checked above):
                // {d: f32, s: f32, qs: [i8; 32]}, read unaligned.
                let ap = toks[j].as_ptr().add(b * ACT_SIZE);
                macc[j] = _mm_fmadd_ps(
                    m4,
                    _mm_set1_ps(std::ptr::read_unaligned(ap.add(4) as *const f32)),
                    macc[j],
                );
                let mut s16 = _mm256_setzero_si256();
                for (k, qk) in q.iter().enumerate() {
                    let a = _mm256_set1_epi64x(std::ptr::read_unaligned(
                        ap.add(8 + 8 * k) as *const i64
                    ));
                    let p = _mm256_maddubs_epi16(*qk, a);
                    s16 = if k == 0 { p } else { _mm256_add_epi16(s16, p) };
                }
                let f = _mm256_cvtepi32_ps(_mm256_madd_epi16(s16, ones));
                t[j] = _mm256_fmadd_ps(dd, f, t[j]);
            }
        }
        for j in 0..RN {
            // SAFETY: as above; the group's scale is in each of its blocks.
            let da = std::ptr::read_unaligned(toks[j].as_ptr().add(g * ACT_SIZE) as *const f32);
            let s = _mm256_add_ps(t[j], _mm256_permute_ps::<0b10_11_00_01>(t[j]));
            acc[j] = _mm256_fmadd_ps(_mm256_set1_ps(da), s, acc[j]);
        }
    }
    for j in 0..RN {
        let (mut a, mut m) = ([0.0f32; 8], [0.0f32; 4]);
        _mm256_storeu_ps(a.as_mut_ptr(), acc[j]);
        _mm_storeu_ps(m.as_mut_ptr(), macc[j]);
        for r in 0..ROWS {
            out[r][j] = a[2 * r] + m[r];
        }
    }
}
