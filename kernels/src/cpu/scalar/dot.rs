//! Scalar reference dot products of one weight row with one activation row.
//!
//! Each quantized kernel computes, per weight block, the exact integer dot product
//! of the weight quants with the activation quants, then scales it in f32 — the
//! arithmetic every SIMD kernel reproduces (only the f32 summation order differs).
//! Ported from ggml `ggml-cpu/quants.c`, `ggml_vec_dot_*_generic`
//! (ggml-org/llama.cpp@04e1dd75), with f32 activation scales (see
//! [`crate::cpu::act`]). Plain safe Rust, always compiled.

use crate::cpu::act::{BlockQ8K, BlockQ8_1, Q8_1_GROUP, QK8_1, QK_K};
use mamba_format::quant::f16_from_le;
use mamba_format::quant::iq4_nl::{BlockIq4Nl, KVALUES_IQ4NL};
use mamba_format::quant::iq4_xs::{self, BlockIq4Xs};
use mamba_format::quant::k_common::get_scale_min_k4;
use mamba_format::quant::q2_k::BlockQ2K;
use mamba_format::quant::q3_k::{self, BlockQ3K};
use mamba_format::quant::q4_0::BlockQ4_0;
use mamba_format::quant::q4_1::BlockQ4_1;
use mamba_format::quant::q4_k::BlockQ4K;
use mamba_format::quant::q5_0::BlockQ5_0;
use mamba_format::quant::q5_1::BlockQ5_1;
use mamba_format::quant::q5_k::BlockQ5K;
use mamba_format::quant::q6_k::BlockQ6K;
use mamba_format::quant::q8_0::BlockQ8_0;

// ── 32-weight blocks × BlockQ8_1 ─────────────────────────────────────────────

/// Σ of `q(j) · a.qs[j]` over one block, with `q(j)` the j-th weight quant.
#[inline]
fn idot(a: &BlockQ8_1, q: impl Fn(usize) -> i32) -> i32 {
    (0..QK8_1).map(|j| q(j) * a.qs[j] as i32).sum()
}

/// Fifth bit of weight `j` of a Q5 block, as 0 or 16.
#[inline]
fn q5_high(qh: [u8; 4], j: usize) -> i32 {
    (((u32::from_le_bytes(qh) >> j) & 1) << 4) as i32
}

/// Low 4 bits of weight `j` of a Q4/Q5 block (`j` low nibble, `j + 16` high).
#[inline]
fn nibble(qs: &[u8; 16], j: usize) -> i32 {
    if j < 16 {
        (qs[j] & 0x0F) as i32
    } else {
        (qs[j - 16] >> 4) as i32
    }
}

/// `Σ_g da_g · Σ_{b∈g} dw_b · isum_b + Σ_b m_b · s_b` over the groups of
/// [`Q8_1_GROUP`] blocks that share an activation scale; `block(b)` gives
/// `(dw_b, m_b, isum_b)` (`m_b = 0` for types without a minimum).
#[inline]
fn dot_groups(a: &[BlockQ8_1], nb: usize, block: impl Fn(usize) -> (f32, f32, i32)) -> f32 {
    dot_grouped(a, nb, Q8_1_GROUP, block)
}

/// [`dot_groups`] over groups of `group` blocks.
#[inline]
fn dot_grouped(
    a: &[BlockQ8_1],
    nb: usize,
    group: usize,
    block: impl Fn(usize) -> (f32, f32, i32),
) -> f32 {
    let (mut acc, mut macc) = (0.0f32, 0.0f32);
    for g in (0..nb).step_by(group) {
        let mut t = 0.0f32;
        for (b, ab) in a.iter().enumerate().take(nb.min(g + group)).skip(g) {
            let (dw, m, isum) = block(b);
            t += dw * isum as f32;
            macc += m * ab.s;
        }
        acc += a[g].d * t;
    }
    acc + macc
}

/// Q4_0 weights (`x = d·(q − 8)`) · Q8_1 activations.
pub fn vec_dot_q4_0_q8_1_ref(w: &[BlockQ4_0], a: &[BlockQ8_1]) -> f32 {
    dot_groups(a, w.len(), |b| {
        (
            f16_from_le(w[b].d),
            0.0,
            idot(&a[b], |j| nibble(&w[b].qs, j) - 8),
        )
    })
}

/// Q4_1 weights (`x = d·q + m`) · Q8_1 activations: `d·da·Σ q·qa + m·s`.
pub fn vec_dot_q4_1_q8_1_ref(w: &[BlockQ4_1], a: &[BlockQ8_1]) -> f32 {
    dot_groups(a, w.len(), |b| {
        (
            f16_from_le(w[b].d),
            f16_from_le(w[b].m),
            idot(&a[b], |j| nibble(&w[b].qs, j)),
        )
    })
}

/// Q5_0 weights (`x = d·(q − 16)`) · Q8_1 activations.
pub fn vec_dot_q5_0_q8_1_ref(w: &[BlockQ5_0], a: &[BlockQ8_1]) -> f32 {
    dot_groups(a, w.len(), |b| {
        let wb = &w[b];
        (
            f16_from_le(wb.d),
            0.0,
            idot(&a[b], |j| (nibble(&wb.qs, j) | q5_high(wb.qh, j)) - 16),
        )
    })
}

/// Q5_1 weights (`x = d·q + m`) · Q8_1 activations.
pub fn vec_dot_q5_1_q8_1_ref(w: &[BlockQ5_1], a: &[BlockQ8_1]) -> f32 {
    dot_groups(a, w.len(), |b| {
        let wb = &w[b];
        (
            f16_from_le(wb.d),
            f16_from_le(wb.m),
            idot(&a[b], |j| nibble(&wb.qs, j) | q5_high(wb.qh, j)),
        )
    })
}

/// Q8_0 weights (`x = d·q`) · Q8_1 activations with a scale per block
/// ([`quantize_row_q8_0_ref`](crate::cpu::scalar::quantize_row_q8_0_ref)).
pub fn vec_dot_q8_0_q8_1_ref(w: &[BlockQ8_0], a: &[BlockQ8_1]) -> f32 {
    dot_grouped(a, w.len(), 1, |b| {
        (f16_from_le(w[b].d), 0.0, idot(&a[b], |j| w[b].qs[j] as i32))
    })
}

/// IQ4_NL weights (`x = d·K[q]`, `K` the non-linear table) · Q8_1 activations.
pub fn vec_dot_iq4_nl_q8_1_ref(w: &[BlockIq4Nl], a: &[BlockQ8_1]) -> f32 {
    dot_groups(a, w.len(), |b| {
        (
            f16_from_le(w[b].d),
            0.0,
            idot(&a[b], |j| {
                KVALUES_IQ4NL[nibble(&w[b].qs, j) as usize] as i32
            }),
        )
    })
}

// ── 256-weight super-blocks × BlockQ8K ───────────────────────────────────────

/// `Σ_{i<32} q(i) · qs[i]` over 32 activation quants.
#[inline]
fn idot32(qs: &[i8], q: impl Fn(usize) -> i32) -> i32 {
    (0..32).map(|i| q(i) * qs[i] as i32).sum()
}

/// Q4_K/Q5_K super-block: `d·da·Σ_s sc_s·Σ q·qa − dmin·da·Σ_s m_s·Σ qa`, with
/// `q(c, h, i)` the quant of weight `64c + 32h + i`.
#[inline]
fn dot_k4(
    d: [u8; 2],
    dmin: [u8; 2],
    scales: &[u8; 12],
    ab: &BlockQ8K,
    q: impl Fn(usize, usize, usize) -> i32,
) -> f32 {
    let (mut isum, mut msum) = (0i32, 0i32);
    for s in 0..QK_K / 32 {
        let (c, h) = (s / 2, s % 2);
        let (sc, m) = get_scale_min_k4(s, scales);
        isum += sc as i32 * idot32(&ab.qs[32 * s..], |i| q(c, h, i));
        msum += m as i32 * (ab.bsums[2 * s] as i32 + ab.bsums[2 * s + 1] as i32);
    }
    f16_from_le(d) * ab.d * isum as f32 - f16_from_le(dmin) * ab.d * msum as f32
}

/// Q4_K weights · Q8_K activations.
pub fn vec_dot_q4_k_q8_k_ref(w: &[BlockQ4K], a: &[BlockQ8K]) -> f32 {
    let mut acc = 0.0f32;
    for (wb, ab) in w.iter().zip(a) {
        acc += dot_k4(wb.d, wb.dmin, &wb.scales, ab, |c, h, i| {
            (wb.qs[32 * c + i] >> (4 * h) & 0x0F) as i32
        });
    }
    acc
}

/// Q5_K weights · Q8_K activations.
pub fn vec_dot_q5_k_q8_k_ref(w: &[BlockQ5K], a: &[BlockQ8K]) -> f32 {
    let mut acc = 0.0f32;
    for (wb, ab) in w.iter().zip(a) {
        acc += dot_k4(wb.d, wb.dmin, &wb.scales, ab, |c, h, i| {
            let lo = (wb.qs[32 * c + i] >> (4 * h)) & 0x0F;
            let hi = (wb.qh[i] >> (2 * c + h)) & 1;
            (lo | (hi << 4)) as i32
        });
    }
    acc
}

/// Q6_K weights (`x = d·sc·(q − 32)`) · Q8_K activations.
pub fn vec_dot_q6_k_q8_k_ref(w: &[BlockQ6K], a: &[BlockQ8K]) -> f32 {
    let mut acc = 0.0f32;
    for (wb, ab) in w.iter().zip(a) {
        let mut isum = 0i32;
        for half in 0..2 {
            let (ql, qh) = (&wb.ql[64 * half..], &wb.qh[32 * half..]);
            // Quant of weight 128·half + 32·k + i.
            let q = |k: usize, i: usize| -> i32 {
                let lo = (ql[i + 32 * (k & 1)] >> (4 * (k >> 1))) & 0x0F;
                let hi = (qh[i] >> (2 * k)) & 3;
                (lo | (hi << 4)) as i32 - 32
            };
            for k in 0..4 {
                for g in 0..2 {
                    let off = 128 * half + 32 * k + 16 * g;
                    let dot: i32 = (0..16)
                        .map(|i| q(k, 16 * g + i) * ab.qs[off + i] as i32)
                        .sum();
                    isum += wb.scales[off / 16] as i32 * dot;
                }
            }
        }
        acc += f16_from_le(wb.d) * ab.d * isum as f32;
    }
    acc
}

/// `Σ_{i<16} q(i) · qs[i]` over 16 activation quants.
#[inline]
fn idot16(qs: &[i8], q: impl Fn(usize) -> i32) -> i32 {
    (0..16).map(|i| q(i) * qs[i] as i32).sum()
}

/// The 2-bit quant of weight `128h + 32k + i` of a Q2_K/Q3_K block (`i` < 32): bits
/// `2k..2k+2` of `qs[32h + i]`.
#[inline]
fn quant2(qs: &[u8; 64], w: usize) -> i32 {
    let (h, k, i) = (w / 128, (w / 32) % 4, w % 32);
    ((qs[32 * h + i] >> (2 * k)) & 3) as i32
}

/// Q2_K weights (`x = d·sc·q − dmin·m` per 16) · Q8_K activations:
/// `d·da·Σ_s sc_s·Σ q·qa − dmin·da·Σ_s m_s·bsum_s`.
pub fn vec_dot_q2_k_q8_k_ref(w: &[BlockQ2K], a: &[BlockQ8K]) -> f32 {
    let mut acc = 0.0f32;
    for (wb, ab) in w.iter().zip(a) {
        let (mut isum, mut msum) = (0i32, 0i32);
        for s in 0..QK_K / 16 {
            let sc = wb.scales[s];
            let dot = idot16(&ab.qs[16 * s..], |i| quant2(&wb.qs, 16 * s + i));
            isum += (sc & 0xF) as i32 * dot;
            msum += (sc >> 4) as i32 * ab.bsums[s] as i32;
        }
        acc += f16_from_le(wb.d) * ab.d * isum as f32 - f16_from_le(wb.dmin) * ab.d * msum as f32;
    }
    acc
}

/// Q3_K weights (`x = d·sc·(q − 4)` per 16, `sc` signed) · Q8_K activations.
pub fn vec_dot_q3_k_q8_k_ref(w: &[BlockQ3K], a: &[BlockQ8K]) -> f32 {
    let mut acc = 0.0f32;
    for (wb, ab) in w.iter().zip(a) {
        let mut isum = 0i32;
        for s in 0..QK_K / 16 {
            let dot = idot16(&ab.qs[16 * s..], |i| {
                let wi = 16 * s + i;
                let high = (wb.hmask[wi % 32] >> (wi / 32)) & 1;
                quant2(&wb.qs, wi) + 4 * high as i32 - 4
            });
            isum += q3_k::scale(&wb.scales, s) as i32 * dot;
        }
        acc += f16_from_le(wb.d) * ab.d * isum as f32;
    }
    acc
}

/// IQ4_XS weights (`x = d·(ls − 32)·K[q]` per 32) · Q8_K activations.
pub fn vec_dot_iq4_xs_q8_k_ref(w: &[BlockIq4Xs], a: &[BlockQ8K]) -> f32 {
    let mut acc = 0.0f32;
    for (wb, ab) in w.iter().zip(a) {
        let mut isum = 0i32;
        for s in 0..QK_K / 32 {
            let qs: &[u8; 16] = wb.qs[16 * s..16 * s + 16].try_into().unwrap();
            let dot = idot32(&ab.qs[32 * s..], |i| {
                KVALUES_IQ4NL[nibble(qs, i) as usize] as i32
            });
            isum += iq4_xs::scale(wb, s) * dot;
        }
        acc += f16_from_le(wb.d) * ab.d * isum as f32;
    }
    acc
}

// ── float weights × f32 activations ──────────────────────────────────────────

/// Dot of `w(k)` with `x` in the order every float kernel uses: 8 lane sums over
/// the first `8·⌊n/8⌋` values, reduced as `((l0+l4)+(l2+l6)) + ((l1+l5)+(l3+l7))`,
/// then the tail added in order.
#[inline]
fn dot_lanes(x: &[f32], w: impl Fn(usize) -> f32) -> f32 {
    let mut l = [0.0f32; 8];
    let full = x.len() / 8 * 8;
    for k in (0..full).step_by(8) {
        for (i, li) in l.iter_mut().enumerate() {
            *li += w(k + i) * x[k + i];
        }
    }
    let h = [l[0] + l[4], l[1] + l[5], l[2] + l[6], l[3] + l[7]];
    let mut acc = (h[0] + h[2]) + (h[1] + h[3]);
    let mut tail = 0.0f32;
    for (k, &xk) in x.iter().enumerate().skip(full) {
        tail += w(k) * xk;
    }
    acc += tail;
    acc
}

/// F32 weights (little-endian bytes, any alignment) · f32 activations.
pub fn vec_dot_f32_ref(w: &[u8], x: &[f32]) -> f32 {
    dot_lanes(x, |k| {
        f32::from_le_bytes([w[4 * k], w[4 * k + 1], w[4 * k + 2], w[4 * k + 3]])
    })
}

/// F16 weights (little-endian bytes) · f32 activations.
pub fn vec_dot_f16_f32_ref(w: &[u8], x: &[f32]) -> f32 {
    dot_lanes(x, |k| f16_from_le([w[2 * k], w[2 * k + 1]]))
}

/// BF16 weights (little-endian bytes) · f32 activations.
pub fn vec_dot_bf16_f32_ref(w: &[u8], x: &[f32]) -> f32 {
    dot_lanes(x, |k| {
        f32::from_bits((u16::from_le_bytes([w[2 * k], w[2 * k + 1]]) as u32) << 16)
    })
}
