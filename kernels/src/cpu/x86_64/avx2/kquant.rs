//! AVX2 tiles for the K-quants (Q4_K, Q5_K, Q6_K) against [`BlockQ8K`]
//! activations. Scalar references: `vec_dot_q{4,5,6}_k_q8_k_ref` in
//! [`crate::cpu::scalar::dot`]. After ggml `ggml-cpu/arch/x86/quants.c`
//! `ggml_vec_dot_q4_K_q8_K` and siblings (ggml-org/llama.cpp@04e1dd75).
//!
//! Each super-block is first unpacked into one common form, [`KUnpacked`], so the
//! multiply is written once:
//!
//! ```text
//! q[k]    32 unsigned quants of weights 32k .. 32k+32        (Q4_K 0..16, Q5_K 0..32, Q6_K 0..64)
//! sc[k]   16 × i16: the scale of weights 32k..32k+16 (lanes 0..8) and 32k+16..32k+32 (8..16)
//! mins    16 × i16: what each group of 16 subtracts per unit of activation
//!         (Q4_K/Q5_K: the 6-bit min of its sub-block; Q6_K: 32·scale, for the −32 offset)
//!
//! per token:  s = Σ_k madd(maddubs(q[k], a[k]), sc[k])      8 × i32
//!             m = madd(mins, bsums)                          8 × i32
//!             acc += d·da·s − dmin·da·m        (Q6_K: dmin = d, so d·da·(s − m) in integers)
//! ```
//!
//! Ranges: pair sums of `maddubs` are at most 2·63·127 = 16002; scales fit i16; the
//! i32 sums stay below 2²⁶.

use super::{f16_at, hsum_ps};
use crate::cpu::act::BlockQ8K;
use crate::cpu::tile::{MR, NR};
use std::arch::x86_64::*;

/// One K-quant super-block in the common unpacked form (see the module docs).
#[derive(Clone, Copy)]
pub(super) struct KUnpacked {
    q: [__m256i; 8],
    sc: [__m256i; 8],
    mins: __m256i,
    d: f32,
    dmin: f32,
}

/// One K-quant block type.
pub(super) trait KQuant {
    /// Bytes per super-block.
    const SIZE: usize;
    /// True when the mins use the same scale as the quants (`dmin == d`).
    const SAME_SCALE: bool;
    /// Unpacks the super-block at `p`.
    ///
    /// # Safety
    /// `p` is valid for reading `SIZE` bytes; the CPU supports AVX2, FMA and F16C.
    unsafe fn unpack(p: *const u8, u: &mut KUnpacked);
}

pub(super) struct Q4K;
pub(super) struct Q5K;
pub(super) struct Q6K;

/// The eight 6-bit scales and eight 6-bit mins of a Q4_K/Q5_K block, one per byte
/// (ggml's `utmp` unpacking; the same values as `k_common::get_scale_min_k4`).
#[inline]
fn scales_mins_k4(s: &[u8; 12]) -> (u64, u64) {
    const KMASK1: u32 = 0x3f3f3f3f;
    const KMASK2: u32 = 0x0f0f0f0f;
    const KMASK3: u32 = 0x03030303;
    let u = |i: usize| u32::from_le_bytes([s[4 * i], s[4 * i + 1], s[4 * i + 2], s[4 * i + 3]]);
    let (u0, u1, u2) = (u(0), u(1), u(2));
    let sc_lo = u0 & KMASK1;
    let sc_hi = (u2 & KMASK2) | (((u0 >> 6) & KMASK3) << 4);
    let m_lo = u1 & KMASK1;
    let m_hi = ((u2 >> 4) & KMASK2) | (((u1 >> 6) & KMASK3) << 4);
    (sc_lo as u64 | (sc_hi as u64) << 32, m_lo as u64 | (m_hi as u64) << 32)
}

/// Fills `sc` and `mins` from Q4_K/Q5_K scales and mins (one per 32 weights).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn k4_scales(scales: *const u8, u: &mut KUnpacked) {
    let (sc, m) = scales_mins_k4(&std::ptr::read_unaligned(scales as *const [u8; 12]));
    let sc8 = _mm_cvtsi64_si128(sc as i64);
    for (k, v) in u.sc.iter_mut().enumerate() {
        *v = _mm256_cvtepu8_epi16(_mm_shuffle_epi8(sc8, _mm_set1_epi8(k as i8)));
    }
    let m16 = _mm_cvtepu8_epi16(_mm_cvtsi64_si128(m as i64));
    u.mins = _mm256_set_m128i(_mm_unpackhi_epi16(m16, m16), _mm_unpacklo_epi16(m16, m16));
}

impl KQuant for Q4K {
    const SIZE: usize = 144;
    const SAME_SCALE: bool = false;
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn unpack(p: *const u8, u: &mut KUnpacked) {
        // {d: f16, dmin: f16, scales: [u8; 12], qs: [u8; 128]}
        u.d = f16_at(p);
        u.dmin = f16_at(p.add(2));
        k4_scales(p.add(4), u);
        let m4 = _mm256_set1_epi8(0x0F);
        for c in 0..4 {
            let bits = _mm256_loadu_si256(p.add(16 + 32 * c) as *const __m256i);
            u.q[2 * c] = _mm256_and_si256(bits, m4);
            u.q[2 * c + 1] = _mm256_and_si256(_mm256_srli_epi16::<4>(bits), m4);
        }
    }
}

impl KQuant for Q5K {
    const SIZE: usize = 176;
    const SAME_SCALE: bool = false;
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn unpack(p: *const u8, u: &mut KUnpacked) {
        // {d: f16, dmin: f16, scales: [u8; 12], qh: [u8; 32], qs: [u8; 128]}
        u.d = f16_at(p);
        u.dmin = f16_at(p.add(2));
        k4_scales(p.add(4), u);
        let m4 = _mm256_set1_epi8(0x0F);
        let (b0, b1) = (_mm256_set1_epi8(1), _mm256_set1_epi8(2));
        // Bit 2c of qh[i] is the fifth bit of weight 64c + i, bit 2c + 1 of 64c + 32 + i;
        // shifting right by 2 per chunk brings them to bits 0 and 1.
        let mut hb = _mm256_loadu_si256(p.add(16) as *const __m256i);
        for c in 0..4 {
            let bits = _mm256_loadu_si256(p.add(48 + 32 * c) as *const __m256i);
            let h0 = _mm256_slli_epi16::<4>(_mm256_and_si256(hb, b0));
            let h1 = _mm256_slli_epi16::<3>(_mm256_and_si256(hb, b1));
            u.q[2 * c] = _mm256_or_si256(_mm256_and_si256(bits, m4), h0);
            u.q[2 * c + 1] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16::<4>(bits), m4), h1);
            hb = _mm256_srli_epi16::<2>(hb);
        }
    }
}

/// Bits 0-1 of each byte of `v`, moved to bits 4-5.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn top2(v: __m256i, m2: __m256i) -> __m256i {
    _mm256_slli_epi16::<4>(_mm256_and_si256(v, m2))
}

impl KQuant for Q6K {
    const SIZE: usize = 210;
    const SAME_SCALE: bool = true;
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn unpack(p: *const u8, u: &mut KUnpacked) {
        // {ql: [u8; 128], qh: [u8; 64], scales: [i8; 16], d: f16}
        u.d = f16_at(p.add(208));
        u.dmin = u.d;
        let m4 = _mm256_set1_epi8(0x0F);
        let m2 = _mm256_set1_epi8(0x03);
        for h in 0..2 {
            let l0 = _mm256_loadu_si256(p.add(64 * h) as *const __m256i);
            let l1 = _mm256_loadu_si256(p.add(64 * h + 32) as *const __m256i);
            let hb = _mm256_loadu_si256(p.add(128 + 32 * h) as *const __m256i);
            u.q[4 * h] = _mm256_or_si256(_mm256_and_si256(l0, m4), top2(hb, m2));
            u.q[4 * h + 1] = _mm256_or_si256(_mm256_and_si256(l1, m4), top2(_mm256_srli_epi16::<2>(hb), m2));
            u.q[4 * h + 2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16::<4>(l0), m4), top2(_mm256_srli_epi16::<4>(hb), m2));
            u.q[4 * h + 3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16::<4>(l1), m4), top2(_mm256_srli_epi16::<6>(hb), m2));
        }
        let sc = _mm_loadu_si128(p.add(192) as *const __m128i);
        for (k, v) in u.sc.iter_mut().enumerate() {
            let (lo, hi) = ((2 * k) as i64 * 0x0101010101010101, (2 * k + 1) as i64 * 0x0101010101010101);
            *v = _mm256_cvtepi8_epi16(_mm_shuffle_epi8(sc, _mm_set_epi64x(hi, lo)));
        }
        u.mins = _mm256_slli_epi16::<5>(_mm256_cvtepi8_epi16(sc));
    }
}

const ACT_SIZE: usize = std::mem::size_of::<BlockQ8K>();

/// The [`TileFn`](crate::cpu::tile::TileFn) of super-block type `K` with `RM` rows and
/// up to `RN` tokens per tile.
///
/// # Safety
/// The CPU must support AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) unsafe fn tile<K: KQuant, const RM: usize, const RN: usize>(rows: &[&[u8]; MR], toks: &[&[u8]; NR], rn: usize, out: &mut [[f32; NR]; MR]) {
    match rn {
        1 => tile_n::<K, RM, 1>(rows, toks, out),
        2 => tile_n::<K, RM, 2>(rows, toks, out),
        3 | 4 if RN >= 4 => tile_n::<K, RM, 4>(rows, toks, out),
        _ => tile_n::<K, RM, RN>(rows, toks, out),
    }
}

#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn tile_n<K: KQuant, const RM: usize, const RN: usize>(rows: &[&[u8]; MR], toks: &[&[u8]; NR], out: &mut [[f32; NR]; MR]) {
    let nb = rows[0].len() / K::SIZE;
    for r in &rows[..RM] {
        assert_eq!(r.len(), nb * K::SIZE, "weight row length");
    }
    for t in &toks[..RN] {
        assert_eq!(t.len(), nb * ACT_SIZE, "activation row length");
    }
    let zero = _mm256_setzero_si256();
    let mut u = [KUnpacked { q: [zero; 8], sc: [zero; 8], mins: zero, d: 0.0, dmin: 0.0 }; RM];
    let mut acc = [[_mm256_setzero_ps(); RN]; RM];
    for b in 0..nb {
        for (i, ui) in u.iter_mut().enumerate() {
            // SAFETY: row i holds nb super-blocks (checked above).
            K::unpack(rows[i].as_ptr().add(b * K::SIZE), ui);
        }
        for j in 0..RN {
            // SAFETY: token j holds nb activation blocks (checked above): {d: f32,
            // qs: [i8; 256], bsums: [i16; 16]}, read unaligned.
            let ap = toks[j].as_ptr().add(b * ACT_SIZE);
            let da = std::ptr::read_unaligned(ap as *const f32);
            let bsums = _mm256_loadu_si256(ap.add(260) as *const __m256i);
            for (i, ui) in u.iter().enumerate() {
                let mut s = _mm256_setzero_si256();
                for k in 0..8 {
                    let a = _mm256_loadu_si256(ap.add(4 + 32 * k) as *const __m256i);
                    s = _mm256_add_epi32(s, _mm256_madd_epi16(_mm256_maddubs_epi16(ui.q[k], a), ui.sc[k]));
                }
                let m = _mm256_madd_epi16(ui.mins, bsums);
                if K::SAME_SCALE {
                    let v = _mm256_cvtepi32_ps(_mm256_sub_epi32(s, m));
                    acc[i][j] = _mm256_fmadd_ps(_mm256_set1_ps(ui.d * da), v, acc[i][j]);
                } else {
                    acc[i][j] = _mm256_fmadd_ps(_mm256_set1_ps(ui.d * da), _mm256_cvtepi32_ps(s), acc[i][j]);
                    acc[i][j] = _mm256_fnmadd_ps(_mm256_set1_ps(ui.dmin * da), _mm256_cvtepi32_ps(m), acc[i][j]);
                }
            }
        }
    }
    for i in 0..RM {
        for j in 0..RN {
            out[i][j] = hsum_ps(acc[i][j]);
        }
    }
}
