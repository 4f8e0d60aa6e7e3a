//! `y = x · Wᵀ` with `W` in its stored layout: the projection of every Mamba layer.
//!
//! `x: (n, cols)` activations, `W: (rows, cols)` weights, `y: (n, rows)`. The work
//! goes through the CPU function table chosen at start-up ([`crate::cpu::kernels`]).

use crate::cpu;
use crate::weights::WeightView;
use mamba_format::QuantType;
use rayon::prelude::*;

/// Computes `y[t][r] = Σ_c W[r][c] · x[t][c]` for `n` tokens.
///
/// With the SIMD and generic tables, quantized weight types multiply quantized
/// activations (8-bit, one scale per 256 values; see [`crate::cpu::act`]), so the
/// result differs from [`matmul_ref`] within [`crate::cpu::act_nmse_budget`]; F32,
/// F16 and BF16 weights keep f32 activations (only the summation order differs).
/// Each output depends only on its weight row and token: not on `n`, the other
/// tokens, or the thread count.
///
/// # Panics
/// If the slice lengths disagree with `w`'s shape and `n` (a caller bug).
pub fn matmul(w: &WeightView<'_>, x: &[f32], n: usize, y: &mut [f32]) {
    assert_eq!(x.len(), n * w.cols, "x has the wrong length");
    assert_eq!(y.len(), n * w.rows, "y has the wrong length");
    (cpu::kernels().matmul)(w, x, n, y)
}

/// Rows per parallel task: big enough to amortise scheduling, small enough to
/// balance a few cores.
const ROWS_PER_TASK: usize = 16;

/// The scalar reference matmul: every weight block is dequantized on the stack and
/// dotted with the f32 activations (no activation quantization), threads over rows.
pub fn matmul_ref(w: &WeightView<'_>, x: &[f32], n: usize, y: &mut [f32]) {
    for t in 0..n {
        let xt = &x[t * w.cols..(t + 1) * w.cols];
        y[t * w.rows..(t + 1) * w.rows]
            .par_chunks_mut(ROWS_PER_TASK)
            .enumerate()
            .for_each(|(i, ys)| {
                for (j, out) in ys.iter_mut().enumerate() {
                    *out = dot_ref(w.ty, w.row(i * ROWS_PER_TASK + j), xt);
                }
            });
    }
}

/// Dot product of one stored row with f32 activations, dequantizing one block at a
/// time into a stack buffer (the scalar reference for every type).
pub fn dot_ref(ty: QuantType, row: &[u8], x: &[f32]) -> f32 {
    if ty == QuantType::F32 {
        return dot_f32(bytemuck_f32(row).unwrap_or(&[]), x, row);
    }
    // Float types have 1-element blocks: dequantize them 32 at a time (the last
    // group may be shorter); quantized types one block at a time.
    let group = ty.block_size().max(32);
    let mut buf = [0.0f32; 256];
    let mut acc = 0.0f32;
    let mut c = 0;
    while c < x.len() {
        let len = group.min(x.len() - c);
        let (b0, b1) = (
            c / ty.block_size() * ty.type_size(),
            (c + len) / ty.block_size() * ty.type_size(),
        );
        let b = &mut buf[..len];
        ty.dequantize_row(&row[b0..b1], b);
        acc += dot_plain(b, &x[c..c + len]);
        c += len;
    }
    acc
}

fn bytemuck_f32(row: &[u8]) -> Option<&[f32]> {
    bytemuck::try_cast_slice(row).ok()
}

fn dot_f32(w: &[f32], x: &[f32], raw: &[u8]) -> f32 {
    if w.len() == x.len() {
        return dot_plain(w, x);
    }
    // Unaligned storage (never for an mmapped .mbin, whose tensors are 64-aligned).
    let mut acc = 0.0;
    for (c, xv) in raw.chunks_exact(4).zip(x) {
        acc += f32::from_le_bytes([c[0], c[1], c[2], c[3]]) * xv;
    }
    acc
}

/// f32 dot with 8 independent accumulators, which the compiler vectorises.
#[inline]
pub fn dot_plain(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    let ca = a.chunks_exact(8);
    let cb = b.chunks_exact(8);
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (xa, xb) in ca.zip(cb) {
        for i in 0..8 {
            acc[i] += xa[i] * xb[i];
        }
    }
    acc.iter().sum::<f32>() + tail
}
