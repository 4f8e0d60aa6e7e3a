//! NEON tile for the 32-weight block types (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, IQ4_NL) against
//! [`BlockQ8_1`] activations, written once over [`Block32`], which unpacks one
//! block of a type to its 32 quants. Scalar references: `vec_dot_*_q8_1_ref` in
//! [`crate::cpu::scalar::dot`], whose arithmetic this follows output by output
//! (the integer dot product of ggml's `ggml-cpu/arch/arm/quants.c`
//! `ggml_vec_dot_q8_0_q8_0`, ggml-org/llama.cpp@04e1dd75, without `sdot`).
//!
//! A tile is 4 weight rows × up to `RN` tokens; f32 lane `r` of a token's
//! accumulators is row `r`:
//!
//! ```text
//! for each group g of W::GROUP blocks (one activation scale da_jg per token; 8,
//! or 1 for Q8_0):
//!     t[j] = 0                                               (4 lanes: the 4 rows)
//!     for each block b of g:
//!         q_r = the 32 quants of row r's block, as i8          (unpacked once)
//!         d4 = [d_0 d_1 d_2 d_3], m4 = [m_0 m_1 m_2 m_3]       (types with a minimum)
//!         per token j:
//!             isum[r] = Σ_i q_r[i]·a_j[i]                      (exact i32)
//!             t[j]    = fma(d4, f32(isum), t[j])
//!             macc[j] = fma(m4, s_jb, macc[j])                 (types with a minimum)
//!     acc[j] = fma(t[j], da_jg, acc[j])
//! out[r][j] = acc[j][r] + macc[j][r]
//! ```
//!
//! `isum` is `smull`/`smlal2` (i8 × i8 → i16, two products per i16 lane: at most
//! 2·128·127, no overflow since the activations are never -128) and `sadalp`
//! (pairwise into i32), then two `addp` that put the 4 rows' sums in 4 lanes. Each
//! output's arithmetic depends neither on the token count of the tile (decode
//! included) nor on the other rows, so a token's result is the same in any batch.

use crate::cpu::act::{BlockQ8_1, Q8_1_GROUP};
use crate::cpu::tile::{MR, NR};
use mamba_format::quant::f16_from_le;
use std::arch::aarch64::*;

/// One 32-weight block type: its size, where its scales are, and its quants.
pub(super) trait Block32 {
    /// Bytes per block.
    const SIZE: usize;
    /// Offset of the f16 minimum `m`, for the types stored as `x = d·q + m`.
    const M: Option<usize>;
    /// Activation blocks sharing a scale ([`ActType`](crate::cpu::ActType)).
    const GROUP: usize = Q8_1_GROUP;
    /// The quants of the block at `p` as the scalar reference multiplies them
    /// (with any constant offset applied, so that `x = d·q (+ m)`): weights
    /// `0..16` and `16..32`.
    ///
    /// # Safety
    /// `p` is valid for reading `SIZE` bytes.
    unsafe fn quants(p: *const u8) -> [int8x16_t; 2];
}

/// Weight rows per tile (all the kernels here): one per f32 lane.
pub(super) const ROWS: usize = 4;

const ACT_SIZE: usize = std::mem::size_of::<BlockQ8_1>();

/// The [`TileFn`](crate::cpu::tile::TileFn) of block type `W` with [`ROWS`] rows
/// and up to `RN` tokens per tile.
///
/// # Safety
/// None beyond the [`TileFn`](crate::cpu::tile::TileFn) contract: NEON is baseline
/// on aarch64, and slice lengths are checked.
pub(super) unsafe fn tile<W: Block32, const RN: usize>(
    rows: &[&[u8]; MR],
    toks: &[&[u8]; NR],
    rn: usize,
    out: &mut [[f32; NR]; MR],
) {
    // A partial tile runs the smallest kernel that covers it (the per-output
    // arithmetic is the same in all of them).
    match rn {
        1 => tile_n::<W, 1>(rows, toks, out),
        2 if RN >= 2 => tile_n::<W, 2>(rows, toks, out),
        3 if RN >= 3 => tile_n::<W, 3>(rows, toks, out),
        _ => tile_n::<W, RN>(rows, toks, out),
    }
}

/// The f16 at byte `off` of each of the 4 blocks, widened.
///
/// # Safety
/// Each `p[r] + off` is valid for reading 2 bytes.
#[inline]
unsafe fn f16x4(p: [*const u8; ROWS], off: usize) -> float32x4_t {
    let v = p.map(|p| f16_from_le(std::ptr::read_unaligned(p.add(off) as *const [u8; 2])));
    vld1q_f32(v.as_ptr())
}

/// `Σ_i q[r][i]·a[i]` for each row `r` (lane `r`), exact.
///
/// # Safety
/// None: `unsafe` only because the NEON intrinsics are (they carry
/// `#[target_feature(enable = "neon")]`, which safe code may not call even where
/// NEON is baseline).
#[inline]
unsafe fn isum4(q: &[[int8x16_t; 2]; ROWS], a: [int8x16_t; 2]) -> int32x4_t {
    let s: [int32x4_t; ROWS] = std::array::from_fn(|r| {
        let lo = vmlal_high_s8(
            vmull_s8(vget_low_s8(q[r][0]), vget_low_s8(a[0])),
            q[r][0],
            a[0],
        );
        let hi = vmlal_high_s8(
            vmull_s8(vget_low_s8(q[r][1]), vget_low_s8(a[1])),
            q[r][1],
            a[1],
        );
        vpadalq_s16(vpaddlq_s16(lo), hi)
    });
    vpaddq_s32(vpaddq_s32(s[0], s[1]), vpaddq_s32(s[2], s[3]))
}

/// [`tile`] with exactly `RN` tokens (entries past the valid ones repeat the last
/// valid one, so all `RN` are readable).
///
/// # Safety
/// As [`tile`].
#[inline]
unsafe fn tile_n<W: Block32, const RN: usize>(
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
    let zero = vdupq_n_f32(0.0);
    let mut acc = [zero; RN];
    // Σ m_r·s_j, for the types with a minimum (zero for the others).
    let mut macc = [zero; RN];
    for g in (0..nb).step_by(W::GROUP) {
        let mut t = [zero; RN];
        for b in g..nb.min(g + W::GROUP) {
            // SAFETY: every row holds nb blocks (checked above).
            let blk: [*const u8; ROWS] = std::array::from_fn(|r| rows[r].as_ptr().add(b * W::SIZE));
            // SAFETY: each pointer starts a whole block (above).
            let q = blk.map(|p| unsafe { W::quants(p) });
            let d4 = f16x4(blk, 0);
            let m4 = W::M.map(|off| f16x4(blk, off));
            for j in 0..RN {
                // SAFETY: token j holds nb activation blocks (checked above):
                // {d: f32, s: f32, qs: [i8; 32]}, read unaligned.
                let ap = toks[j].as_ptr().add(b * ACT_SIZE);
                let a = [
                    vld1q_s8(ap.add(8) as *const i8),
                    vld1q_s8(ap.add(24) as *const i8),
                ];
                t[j] = vfmaq_f32(t[j], d4, vcvtq_f32_s32(isum4(&q, a)));
                if let Some(m4) = m4 {
                    let s = std::ptr::read_unaligned(ap.add(4) as *const f32);
                    macc[j] = vfmaq_n_f32(macc[j], m4, s);
                }
            }
        }
        for j in 0..RN {
            // SAFETY: as above; the group's scale is in each of its blocks.
            let da = std::ptr::read_unaligned(toks[j].as_ptr().add(g * ACT_SIZE) as *const f32);
            acc[j] = vfmaq_n_f32(acc[j], t[j], da);
        }
    }
    for j in 0..RN {
        let mut v = [0.0f32; ROWS];
        vst1q_f32(v.as_mut_ptr(), vaddq_f32(acc[j], macc[j]));
        for r in 0..ROWS {
            out[r][j] = v[r];
        }
    }
}
