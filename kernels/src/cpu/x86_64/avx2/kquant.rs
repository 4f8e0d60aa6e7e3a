//! AVX2 tiles for the K-quants (Q2_K, Q3_K, Q4_K, Q5_K, Q6_K) and IQ4_XS against
//! [`BlockQ8K`] activations. Scalar references: `vec_dot_q{2,3,4,5,6}_k_q8_k_ref`
//! and `vec_dot_iq4_xs_q8_k_ref` in [`crate::cpu::scalar::dot`]. After ggml
//! `ggml-cpu/arch/x86/quants.c` `ggml_vec_dot_q4_K_q8_K` and siblings
//! (ggml-org/llama.cpp@04e1dd75).
//!
//! Each type only says how to read one super-block into a common form — a
//! [`KHeader`] plus eight 32-weight chunks — so the multiply is written once:
//!
//! ```text
//! q[k]    32 quants of weights 32k .. 32k+32: unsigned (Q2_K 0..4, Q3_K 0..8,
//!         Q4_K 0..16, Q5_K 0..32, Q6_K 0..64) or, for IQ4_XS, signed table values
//! sc[k]   16 × i16: the scale of weights 32k..32k+16 (lanes 0..8) and 32k+16..32k+32 (8..16)
//! mins    16 × i16: what each group of 16 subtracts per unit of activation
//!         (Q2_K/Q4_K/Q5_K: the min of its sub-block; Q3_K: 4·scale and Q6_K: 32·scale,
//!         for their −4 and −32 offsets; IQ4_XS: 0)
//!
//! per token:  s = Σ_k madd(maddubs(q[k], a[k]), sc[k])      8 × i32
//!             (signed q: maddubs(|q[k]|, a[k]·sign q[k]), the sign trick)
//!             m = madd(mins, bsums)                          8 × i32
//!             acc += d·da·s − dmin·da·m        (Q3_K/Q6_K/IQ4_XS: dmin = d, so d·da·(s − m) in integers)
//! ```
//!
//! With several tokens, each row's chunks are unpacked once into [`KUnpacked`] and
//! reused; with one token (decode), each chunk is multiplied as soon as it is read.
//!
//! Ranges: pair sums of `maddubs` are at most 2·63·127 = 16002 (unsigned quants) or
//! 2·127·127 = 32258 (IQ4_XS: |q| ≤ 127, and the activations are never -128);
//! scales fit i16; the i32 sums stay below 2²⁶.

use super::{f16_at, hsum_ps, prefetch_ahead};
use crate::cpu::act::BlockQ8K;
use crate::cpu::tile::{MR, NR};
use mamba_format::quant::iq4_nl::KVALUES_IQ4NL;
use std::arch::x86_64::*;

/// What a super-block's chunks share.
#[derive(Clone, Copy)]
pub(super) struct KHeader {
    /// The scales, in the form the type's [`KQuant::chunk`] shuffles them from.
    scales: __m256i,
    /// 16 × i16: per group of 16 weights, what one unit of activation subtracts.
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
    /// True when [`KQuant::chunk`]'s quants are signed bytes (the multiply then uses
    /// the sign trick); false for unsigned ones.
    const SIGNED: bool = false;
    /// The header of the super-block at `p`.
    ///
    /// # Safety
    /// `p` is valid for reading `SIZE` bytes; the CPU supports AVX2, FMA and F16C.
    unsafe fn header(p: *const u8) -> KHeader;
    /// Chunk `k` (weights `32k .. 32k + 32`) of the super-block at `p`: 32 unsigned
    /// quants and 16 × i16 scales (lanes 0..8 for its first 16 weights, 8..16 for
    /// the other 16).
    ///
    /// # Safety
    /// As [`KQuant::header`]; `k < 8`; `h` is the header of the same super-block.
    unsafe fn chunk(p: *const u8, h: &KHeader, k: usize) -> (__m256i, __m256i);
}

pub(super) struct Q2K;
pub(super) struct Q3K;
pub(super) struct Q4K;
pub(super) struct Q5K;
pub(super) struct Q6K;
pub(super) struct Iq4Xs;

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
    (
        sc_lo as u64 | (sc_hi as u64) << 32,
        m_lo as u64 | (m_hi as u64) << 32,
    )
}

/// Q4_K/Q5_K header: `{d: f16, dmin: f16, scales: [u8; 12], ..}`. `scales` holds
/// the eight sub-block scales as i16 in both 128-bit lanes; `mins` repeats each
/// sub-block's min for its two groups of 16.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn k4_header(p: *const u8) -> KHeader {
    let (sc, m) = scales_mins_k4(&std::ptr::read_unaligned(p.add(4) as *const [u8; 12]));
    let sc16 = _mm_cvtepu8_epi16(_mm_cvtsi64_si128(sc as i64));
    let m16 = _mm_cvtepu8_epi16(_mm_cvtsi64_si128(m as i64));
    KHeader {
        scales: _mm256_broadcastsi128_si256(sc16),
        mins: _mm256_set_m128i(_mm_unpackhi_epi16(m16, m16), _mm_unpacklo_epi16(m16, m16)),
        d: f16_at(p),
        dmin: f16_at(p.add(2)),
    }
}

/// Scale `k` of a Q4_K/Q5_K header, in all 16 lanes.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn k4_scale(h: &KHeader, k: usize) -> __m256i {
    let lane = (((2 * k + 1) << 8) | (2 * k)) as i16;
    _mm256_shuffle_epi8(h.scales, _mm256_set1_epi16(lane))
}

/// Low 4 bits of chunk `k` of a Q4_K/Q5_K block whose 128 bytes of nibbles are at
/// `qs`: 32 bytes cover chunks 2c (low nibbles) and 2c + 1 (high).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn k4_nibbles(qs: *const u8, k: usize) -> __m256i {
    let bits = _mm256_loadu_si256(qs.add(32 * (k / 2)) as *const __m256i);
    let bits = if k % 2 == 1 {
        _mm256_srli_epi16::<4>(bits)
    } else {
        bits
    };
    _mm256_and_si256(bits, _mm256_set1_epi8(0x0F))
}

impl KQuant for Q4K {
    // {d: f16, dmin: f16, scales: [u8; 12], qs: [u8; 128]}
    const SIZE: usize = 144;
    const SAME_SCALE: bool = false;
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn header(p: *const u8) -> KHeader {
        k4_header(p)
    }
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn chunk(p: *const u8, h: &KHeader, k: usize) -> (__m256i, __m256i) {
        (k4_nibbles(p.add(16), k), k4_scale(h, k))
    }
}

impl KQuant for Q5K {
    // {d: f16, dmin: f16, scales: [u8; 12], qh: [u8; 32], qs: [u8; 128]}
    const SIZE: usize = 176;
    const SAME_SCALE: bool = false;
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn header(p: *const u8) -> KHeader {
        k4_header(p)
    }
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn chunk(p: *const u8, h: &KHeader, k: usize) -> (__m256i, __m256i) {
        // Bit k of qh[i] is the fifth bit of weight 32k + i: move it to bit 4.
        let qh = _mm256_and_si256(
            _mm256_loadu_si256(p.add(16) as *const __m256i),
            _mm256_set1_epi8(1 << k),
        );
        let hi = if k >= 4 {
            _mm256_srl_epi16(qh, _mm_cvtsi32_si128(k as i32 - 4))
        } else {
            _mm256_sll_epi16(qh, _mm_cvtsi32_si128(4 - k as i32))
        };
        (
            _mm256_or_si256(k4_nibbles(p.add(48), k), hi),
            k4_scale(h, k),
        )
    }
}

impl KQuant for Q6K {
    // {ql: [u8; 128], qh: [u8; 64], scales: [i8; 16], d: f16}
    const SIZE: usize = 210;
    const SAME_SCALE: bool = true;
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn header(p: *const u8) -> KHeader {
        let sc = _mm_loadu_si128(p.add(192) as *const __m128i);
        let d = f16_at(p.add(208));
        // The −32 offset: each group of 16 subtracts 32·scale per unit of activation.
        KHeader {
            scales: _mm256_castsi128_si256(sc),
            mins: _mm256_slli_epi16::<5>(_mm256_cvtepi8_epi16(sc)),
            d,
            dmin: d,
        }
    }
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn chunk(p: *const u8, h: &KHeader, k: usize) -> (__m256i, __m256i) {
        // Half (k / 4) covers weights 128·half ..; in it, chunk j = k % 4 takes the
        // low (j < 2) or high nibbles of ql[64·half + 32·(j % 2) ..] and bits
        // 2j, 2j + 1 of qh[32·half ..].
        let (half, j) = (k / 4, k % 4);
        let l = _mm256_loadu_si256(p.add(64 * half + 32 * (j % 2)) as *const __m256i);
        let l = if j >= 2 { _mm256_srli_epi16::<4>(l) } else { l };
        let qh = _mm256_loadu_si256(p.add(128 + 32 * half) as *const __m256i);
        let top = _mm256_and_si256(
            _mm256_srl_epi16(qh, _mm_cvtsi32_si128(2 * j as i32)),
            _mm256_set1_epi8(3),
        );
        let q = _mm256_or_si256(
            _mm256_and_si256(l, _mm256_set1_epi8(0x0F)),
            _mm256_slli_epi16::<4>(top),
        );
        (q, group_scales(h, k))
    }
}

/// The scales of chunk `k` of a type with one signed 8-bit scale per 16 weights,
/// held in the low 128 bits of `h.scales` (Q2_K, Q3_K, Q6_K): groups `2k` (lanes
/// 0..8) and `2k + 1` (lanes 8..16), widened to i16.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn group_scales(h: &KHeader, k: usize) -> __m256i {
    let (g0, g1) = (
        (2 * k) as i64 * 0x0101010101010101,
        (2 * k + 1) as i64 * 0x0101010101010101,
    );
    _mm256_cvtepi8_epi16(_mm_shuffle_epi8(
        _mm256_castsi256_si128(h.scales),
        _mm_set_epi64x(g1, g0),
    ))
}

/// Bits `2j..2j+2` of the 32 bytes at `p`: the 2-bit quants of chunk `4h + j` of a
/// Q2_K/Q3_K block whose `qs[32h..]` is at `p` (`j` < 4).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn quants2(p: *const u8, j: usize) -> __m256i {
    let bits = _mm256_loadu_si256(p as *const __m256i);
    // A 16-bit shift by at most 6 keeps bits 0-1 of each byte its own.
    _mm256_and_si256(
        _mm256_srl_epi16(bits, _mm_cvtsi32_si128(2 * j as i32)),
        _mm256_set1_epi8(3),
    )
}

impl KQuant for Q2K {
    // {scales: [u8; 16], qs: [u8; 64], d: f16, dmin: f16}
    const SIZE: usize = 84;
    const SAME_SCALE: bool = false;
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn header(p: *const u8) -> KHeader {
        // Scale in the low nibble, min in the high one, one byte per group of 16.
        let raw = _mm_loadu_si128(p as *const __m128i);
        let m4 = _mm_set1_epi8(0x0F);
        KHeader {
            scales: _mm256_castsi128_si256(_mm_and_si128(raw, m4)),
            mins: _mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16::<4>(raw), m4)),
            d: f16_at(p.add(80)),
            dmin: f16_at(p.add(82)),
        }
    }
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn chunk(p: *const u8, h: &KHeader, k: usize) -> (__m256i, __m256i) {
        (quants2(p.add(16 + 32 * (k / 4)), k % 4), group_scales(h, k))
    }
}

/// The sixteen signed 6-bit scales of a Q3_K block, one per byte (ggml's
/// `kmask1`/`kmask2` unpacking; the same values as `q3_k::scale`).
#[inline]
fn scales_q3k(s: &[u8; 12]) -> [u8; 16] {
    const KMASK1: u32 = 0x03030303;
    const KMASK2: u32 = 0x0f0f0f0f;
    let u = |i: usize| u32::from_le_bytes([s[4 * i], s[4 * i + 1], s[4 * i + 2], s[4 * i + 3]]);
    let (u0, u1, tmp) = (u(0), u(1), u(2));
    let aux = [
        (u0 & KMASK2) | ((tmp & KMASK1) << 4),
        (u1 & KMASK2) | (((tmp >> 2) & KMASK1) << 4),
        ((u0 >> 4) & KMASK2) | (((tmp >> 4) & KMASK1) << 4),
        ((u1 >> 4) & KMASK2) | (((tmp >> 6) & KMASK1) << 4),
    ];
    let mut out = [0u8; 16];
    for (o, a) in out.chunks_exact_mut(4).zip(aux) {
        o.copy_from_slice(&a.to_le_bytes());
    }
    out
}

impl KQuant for Q3K {
    // {hmask: [u8; 32], qs: [u8; 64], scales: [u8; 12], d: f16}
    const SIZE: usize = 110;
    const SAME_SCALE: bool = true;
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn header(p: *const u8) -> KHeader {
        let raw = scales_q3k(&std::ptr::read_unaligned(p.add(96) as *const [u8; 12]));
        let sc = _mm_sub_epi8(
            _mm_loadu_si128(raw.as_ptr() as *const __m128i),
            _mm_set1_epi8(32),
        );
        let d = f16_at(p.add(108));
        // The −4 offset: each group of 16 subtracts 4·scale per unit of activation.
        KHeader {
            scales: _mm256_castsi128_si256(sc),
            mins: _mm256_slli_epi16::<2>(_mm256_cvtepi8_epi16(sc)),
            d,
            dmin: d,
        }
    }
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn chunk(p: *const u8, h: &KHeader, k: usize) -> (__m256i, __m256i) {
        // Weight 32k + i: low 2 bits from qs, third bit = bit k of hmask[i].
        let lo = quants2(p.add(32 + 32 * (k / 4)), k % 4);
        let hm = _mm256_loadu_si256(p as *const __m256i);
        let hi = _mm256_and_si256(
            _mm256_srl_epi16(hm, _mm_cvtsi32_si128(k as i32)),
            _mm256_set1_epi8(1),
        );
        (
            _mm256_or_si256(lo, _mm256_slli_epi16::<2>(hi)),
            group_scales(h, k),
        )
    }
}

impl KQuant for Iq4Xs {
    // {d: f16, scales_h: u16, scales_l: [u8; 4], qs: [u8; 128]}
    const SIZE: usize = 136;
    const SAME_SCALE: bool = true;
    const SIGNED: bool = true;
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn header(p: *const u8) -> KHeader {
        let h = u16::from_le_bytes(std::ptr::read_unaligned(p.add(2) as *const [u8; 2]));
        let l = std::ptr::read_unaligned(p.add(4) as *const [u8; 4]);
        let ls: [i16; 8] = std::array::from_fn(|s| {
            let lo = (l[s / 2] >> (4 * (s % 2))) & 0xF;
            let hi = (h >> (2 * s)) & 3;
            (lo as u16 | hi << 4) as i16 - 32
        });
        let d = f16_at(p);
        // Eight sub-block scales as i16 in both lanes, as k4_scale reads them; no
        // offset, so no mins.
        KHeader {
            scales: _mm256_broadcastsi128_si256(_mm_loadu_si128(ls.as_ptr() as *const __m128i)),
            mins: _mm256_setzero_si256(),
            d,
            dmin: d,
        }
    }
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn chunk(p: *const u8, h: &KHeader, k: usize) -> (__m256i, __m256i) {
        // Byte i of qs[16k..] holds weights 32k + i (low nibble) and 32k + 16 + i.
        let bytes = _mm_loadu_si128(p.add(8 + 16 * k) as *const __m128i);
        let m4 = _mm_set1_epi8(0x0F);
        let idx = _mm256_set_m128i(
            _mm_and_si128(_mm_srli_epi16::<4>(bytes), m4),
            _mm_and_si128(bytes, m4),
        );
        let table =
            _mm256_broadcastsi128_si256(_mm_loadu_si128(KVALUES_IQ4NL.as_ptr() as *const __m128i));
        (_mm256_shuffle_epi8(table, idx), k4_scale(h, k))
    }
}

/// `maddubs` of quants `q` (unsigned, or signed for `K::SIGNED`) with activations
/// `a`: i16 sums of adjacent products.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn mul_pairs<K: KQuant>(q: __m256i, a: __m256i) -> __m256i {
    if K::SIGNED {
        _mm256_maddubs_epi16(_mm256_abs_epi8(q), _mm256_sign_epi8(a, q))
    } else {
        _mm256_maddubs_epi16(q, a)
    }
}

/// One super-block unpacked for reuse across tokens.
#[derive(Clone, Copy)]
struct KUnpacked {
    h: KHeader,
    q: [__m256i; 8],
    sc: [__m256i; 8],
}

const ACT_SIZE: usize = std::mem::size_of::<BlockQ8K>();

/// The [`TileFn`](crate::cpu::tile::TileFn) of super-block type `K` with `RM` rows and
/// up to `RN` tokens per tile.
///
/// # Safety
/// The CPU must support AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) unsafe fn tile<K: KQuant, const RM: usize, const RN: usize>(
    rows: &[&[u8]; MR],
    toks: &[&[u8]; NR],
    rn: usize,
    out: &mut [[f32; NR]; MR],
) {
    match rn {
        1 => tile_n::<K, RM, 1>(rows, toks, out),
        2 => tile_n::<K, RM, 2>(rows, toks, out),
        3 | 4 if RN >= 4 => tile_n::<K, RM, 4>(rows, toks, out),
        _ => tile_n::<K, RM, RN>(rows, toks, out),
    }
}

/// `acc += d·da·s − dmin·da·m` (in integers first when `dmin == d`).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn accumulate<K: KQuant>(
    acc: __m256,
    h: &KHeader,
    da: f32,
    s: __m256i,
    m: __m256i,
) -> __m256 {
    if K::SAME_SCALE {
        _mm256_fmadd_ps(
            _mm256_set1_ps(h.d * da),
            _mm256_cvtepi32_ps(_mm256_sub_epi32(s, m)),
            acc,
        )
    } else {
        let acc = _mm256_fmadd_ps(_mm256_set1_ps(h.d * da), _mm256_cvtepi32_ps(s), acc);
        _mm256_fnmadd_ps(_mm256_set1_ps(h.dmin * da), _mm256_cvtepi32_ps(m), acc)
    }
}

#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn tile_n<K: KQuant, const RM: usize, const RN: usize>(
    rows: &[&[u8]; MR],
    toks: &[&[u8]; NR],
    out: &mut [[f32; NR]; MR],
) {
    let nb = rows[0].len() / K::SIZE;
    for r in &rows[..RM] {
        assert_eq!(r.len(), nb * K::SIZE, "weight row length");
    }
    for t in &toks[..RN] {
        assert_eq!(t.len(), nb * ACT_SIZE, "activation row length");
    }
    let mut acc = [[_mm256_setzero_ps(); RN]; RM];
    let zero = _mm256_setzero_si256();
    let mut u = [KUnpacked {
        h: KHeader {
            scales: zero,
            mins: zero,
            d: 0.0,
            dmin: 0.0,
        },
        q: [zero; 8],
        sc: [zero; 8],
    }; RM];
    for b in 0..nb {
        if RN == 1 {
            // One token: multiply each chunk as it is read.
            // SAFETY: token 0 holds nb activation blocks (checked above): {d: f32,
            // qs: [i8; 256], bsums: [i16; 16]}, read unaligned.
            let ap = toks[0].as_ptr().add(b * ACT_SIZE);
            let da = std::ptr::read_unaligned(ap as *const f32);
            let bsums = _mm256_loadu_si256(ap.add(260) as *const __m256i);
            for i in 0..RM {
                for line in (0..K::SIZE).step_by(64) {
                    prefetch_ahead(rows[i], RM, b * K::SIZE + line);
                }
                // SAFETY: row i holds nb super-blocks (checked above).
                let p = rows[i].as_ptr().add(b * K::SIZE);
                let h = K::header(p);
                let mut s = _mm256_setzero_si256();
                for k in 0..8 {
                    let (q, sc) = K::chunk(p, &h, k);
                    let a = _mm256_loadu_si256(ap.add(4 + 32 * k) as *const __m256i);
                    s = _mm256_add_epi32(s, _mm256_madd_epi16(mul_pairs::<K>(q, a), sc));
                }
                acc[i][0] = accumulate::<K>(acc[i][0], &h, da, s, _mm256_madd_epi16(h.mins, bsums));
            }
            continue;
        }
        for (i, ui) in u.iter_mut().enumerate() {
            // SAFETY: row i holds nb super-blocks (checked above).
            let p = rows[i].as_ptr().add(b * K::SIZE);
            ui.h = K::header(p);
            for k in 0..8 {
                (ui.q[k], ui.sc[k]) = K::chunk(p, &ui.h, k);
            }
        }
        for j in 0..RN {
            // SAFETY: as above, for token j.
            let ap = toks[j].as_ptr().add(b * ACT_SIZE);
            let da = std::ptr::read_unaligned(ap as *const f32);
            let bsums = _mm256_loadu_si256(ap.add(260) as *const __m256i);
            for (i, ui) in u.iter().enumerate() {
                let mut s = _mm256_setzero_si256();
                for k in 0..8 {
                    let a = _mm256_loadu_si256(ap.add(4 + 32 * k) as *const __m256i);
                    s = _mm256_add_epi32(
                        s,
                        _mm256_madd_epi16(mul_pairs::<K>(ui.q[k], a), ui.sc[k]),
                    );
                }
                acc[i][j] =
                    accumulate::<K>(acc[i][j], &ui.h, da, s, _mm256_madd_epi16(ui.h.mins, bsums));
            }
        }
    }
    for i in 0..RM {
        for j in 0..RN {
            out[i][j] = hsum_ps(acc[i][j]);
        }
    }
}
