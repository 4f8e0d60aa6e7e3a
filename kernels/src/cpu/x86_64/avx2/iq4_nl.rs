//! AVX2 tile for IQ4_NL weights against [`BlockQ8_1`] activations. Scalar
//! reference: `vec_dot_iq4_nl_q8_1_ref` in [`crate::cpu::scalar::dot`]. The block
//! expansion is ggml's (`ggml-cpu/arch/x86/quants.c` `ggml_vec_dot_iq4_nl_q8_0`,
//! ggml-org/llama.cpp@04e1dd75): one `pshufb` looks the 32 4-bit indices up in the
//! 16-entry table.
//!
//! The Q4_0 tile's layout (four rows per register, four `maddubs` summed in i16)
//! does not fit: the table values reach ±127, so one `maddubs` pair is already up to
//! 2·127·127 = 32258 and a second would overflow i16. Here each row's block is one
//! register of 32 signed values, multiplied by the sign trick and widened to i32 at
//! once:
//!
//! ```text
//! per block b, per row r:  q_r = K[idx]                      (32 × i8, unpacked once)
//!     per token j:  s = madd(maddubs(|q_r|, a_jb·sign q_r), 1)        8 × i32, exact
//!                   acc[r][j] = fma(d_r·da_j, f32(s), acc[r][j])
//! out[r][j] = Σ lanes acc[r][j]
//! ```
//!
//! `da_j` is the scale of the block's activation group (stored in every block of
//! the group), so the group structure of [`BlockQ8_1`] needs no loop of its own;
//! only the f32 rounding differs from the reference's `Σ_g da_g·Σ_b d_b·isum_b`.
//! The arithmetic of an output depends on neither the row nor the token count of
//! the tile (decode included).

use super::{f16_at, hsum_ps, prefetch_ahead};
use crate::cpu::act::BlockQ8_1;
use crate::cpu::tile::{MR, NR};
use mamba_format::quant::iq4_nl::KVALUES_IQ4NL;
use std::arch::x86_64::*;

/// Bytes per IQ4_NL block: `{d: f16, qs: [u8; 16]}`.
const SIZE: usize = 18;
const ACT_SIZE: usize = std::mem::size_of::<BlockQ8_1>();

/// The [`TileFn`](crate::cpu::tile::TileFn) of IQ4_NL with `RM` rows and up to `RN`
/// tokens per tile.
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
    const { assert!(RM <= MR && RN <= NR) };
    let nb = rows[0].len() / SIZE;
    for r in &rows[..RM] {
        assert_eq!(r.len(), nb * SIZE, "weight row length");
    }
    for t in &toks[..RN] {
        assert_eq!(t.len(), nb * ACT_SIZE, "activation row length");
    }
    let table =
        _mm256_broadcastsi128_si256(_mm_loadu_si128(KVALUES_IQ4NL.as_ptr() as *const __m128i));
    let m4 = _mm_set1_epi8(0x0F);
    let ones = _mm256_set1_epi16(1);
    let mut acc = [[_mm256_setzero_ps(); RN]; RM];
    for b in 0..nb {
        let mut q = [_mm256_setzero_si256(); RM];
        let mut qabs = [_mm256_setzero_si256(); RM];
        let mut d = [0.0f32; RM];
        for i in 0..RM {
            if RN == 1 {
                prefetch_ahead(rows[i], RM, b * SIZE);
            }
            // SAFETY: row i holds nb blocks (checked above).
            let p = rows[i].as_ptr().add(b * SIZE);
            // Byte j: index of weight j (low nibble) and of weight j + 16 (high).
            let bytes = _mm_loadu_si128(p.add(2) as *const __m128i);
            let idx = _mm256_set_m128i(
                _mm_and_si128(_mm_srli_epi16::<4>(bytes), m4),
                _mm_and_si128(bytes, m4),
            );
            q[i] = _mm256_shuffle_epi8(table, idx);
            qabs[i] = _mm256_abs_epi8(q[i]);
            d[i] = f16_at(p);
        }
        for j in 0..RN {
            // SAFETY: token j holds nb activation blocks (checked above):
            // {d: f32, s: f32, qs: [i8; 32]}, read unaligned.
            let ap = toks[j].as_ptr().add(b * ACT_SIZE);
            let da = std::ptr::read_unaligned(ap as *const f32);
            let a = _mm256_loadu_si256(ap.add(8) as *const __m256i);
            for i in 0..RM {
                let p16 = _mm256_maddubs_epi16(qabs[i], _mm256_sign_epi8(a, q[i]));
                let s = _mm256_cvtepi32_ps(_mm256_madd_epi16(p16, ones));
                acc[i][j] = _mm256_fmadd_ps(_mm256_set1_ps(d[i] * da), s, acc[i][j]);
            }
        }
    }
    for i in 0..RM {
        for j in 0..RN {
            out[i][j] = hsum_ps(acc[i][j]);
        }
    }
}
