//! The small matrix products of the chunked Mamba-2 scan ([`super`]), behind
//! the [`Products`] trait so that an instruction set can bring its own tiles:
//! [`Portable`] here (plain Rust the compiler vectorises), AVX2 in
//! `cpu::x86_64::avx2::ssd`.

use super::fma;

/// The matrix products of the chunked algorithm, by instruction set: [`Portable`]
/// here, an AVX2 one in `cpu::x86_64::avx2::ssd`.
pub(crate) trait Products {
    /// `out[i·os + j] += Σ_k a[i·as_ + k] · b[k·bs + j]` for `i < m`, `j < w`,
    /// `k < kk` (restricted by `tri`). Each output sums its products in `k` order
    /// from zero and is then added to `out`, in any tile, so the results do not
    /// depend on `w` or `m` (nor on the thread split).
    #[allow(clippy::too_many_arguments)] // a BLAS-style signature
    fn gemm(
        tri: Tri,
        m: usize,
        w: usize,
        kk: usize,
        a: &[f32],
        as_: usize,
        b: &[f32],
        bs: usize,
        out: &mut [f32],
        os: usize,
    );

    /// `dst (cols, rows) = srcᵀ` of `src (rows, cols)` (the state, to and from
    /// the `(N, w)` layout the products use).
    #[inline(always)]
    fn transpose(src: &[f32], rows: usize, cols: usize, dst: &mut [f32]) {
        transpose(src, rows, cols, dst)
    }
}

/// The portable products: register tiles in plain Rust ([`gemm`]), with fused
/// multiply-adds when `FMA`.
pub(crate) struct Portable<const FMA: bool>;

impl<const FMA: bool> Products for Portable<FMA> {
    #[inline(always)]
    fn gemm(
        tri: Tri,
        m: usize,
        w: usize,
        kk: usize,
        a: &[f32],
        as_: usize,
        b: &[f32],
        bs: usize,
        out: &mut [f32],
        os: usize,
    ) {
        gemm::<FMA>(tri, m, w, kk, a, as_, b, bs, out, os)
    }
}

/// Which part of a product [`Products::gemm`] computes.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Tri {
    /// All of it.
    None,
    /// Row i sums k ≤ i only: a causal, lower-triangular left factor (tiles may
    /// add its zeros above the diagonal, which changes nothing).
    K,
    /// Row i needs columns j ≤ i only (a lower-triangular result).
    Cols,
}

/// Output rows per register tile.
const MR: usize = 4;
/// Output columns per register tile: two AVX registers; 4 × 16 accumulators
/// leave half the 16 YMM registers for the operands.
const NR: usize = 16;

/// [`Products::gemm`] in register tiles of [`MR`] × [`NR`].
#[allow(clippy::too_many_arguments)] // a BLAS-style signature
#[inline(always)]
fn gemm<const FMA: bool>(
    tri: Tri,
    m: usize,
    w: usize,
    kk: usize,
    a: &[f32],
    as_: usize,
    b: &[f32],
    bs: usize,
    out: &mut [f32],
    os: usize,
) {
    let mut i = 0;
    while i < m {
        let mr = if m - i >= MR { MR } else { 1 };
        let k_n = if tri == Tri::K { kk.min(i + mr) } else { kk };
        let w_n = if tri == Tri::Cols { w.min(i + mr) } else { w };
        let (a, o) = (&a[i * as_..], &mut out[i * os..]);
        let mut j = 0;
        while j < w_n {
            let left = w_n - j;
            match (mr, left) {
                (MR, NR..) => tile::<FMA, MR, NR>(k_n, a, as_, &b[j..], bs, &mut o[j..], os),
                (MR, 8..) => tile::<FMA, MR, 8>(k_n, a, as_, &b[j..], bs, &mut o[j..], os),
                (MR, _) => tile::<FMA, MR, 1>(k_n, a, as_, &b[j..], bs, &mut o[j..], os),
                (_, NR..) => tile::<FMA, 1, NR>(k_n, a, as_, &b[j..], bs, &mut o[j..], os),
                (_, 8..) => tile::<FMA, 1, 8>(k_n, a, as_, &b[j..], bs, &mut o[j..], os),
                _ => tile::<FMA, 1, 1>(k_n, a, as_, &b[j..], bs, &mut o[j..], os),
            }
            j += match left {
                NR.. => NR,
                8.. => 8,
                _ => 1,
            };
        }
        i += mr;
    }
}

/// One `R × C` tile of [`gemm`]: the accumulators stay in registers while `k`
/// runs; each step broadcasts `R` values of `a` against one row of `b`.
#[allow(clippy::too_many_arguments)] // a BLAS-style signature
#[inline(always)]
fn tile<const FMA: bool, const R: usize, const C: usize>(
    kk: usize,
    a: &[f32],
    as_: usize,
    b: &[f32],
    bs: usize,
    out: &mut [f32],
    os: usize,
) {
    let a_rows: [&[f32]; R] = std::array::from_fn(|r| &a[r * as_..r * as_ + kk]);
    let mut acc = [[0.0f32; C]; R];
    for k in 0..kk {
        let br: &[f32; C] = b[k * bs..k * bs + C].try_into().expect("C values");
        for r in 0..R {
            let av = a_rows[r][k];
            for c in 0..C {
                acc[r][c] = fma::<FMA>(av, br[c], acc[r][c]);
            }
        }
    }
    for (r, acc_r) in acc.iter().enumerate() {
        let o = &mut out[r * os..r * os + C];
        o.iter_mut().zip(acc_r).for_each(|(v, &s)| *v += s);
    }
}

/// `dst (cols, rows) = srcᵀ` of `src (rows, cols)`, in 8 × 8 blocks.
#[inline(always)]
fn transpose(src: &[f32], rows: usize, cols: usize, dst: &mut [f32]) {
    const B: usize = 8;
    for r0 in (0..rows).step_by(B) {
        let rb = B.min(rows - r0);
        for c0 in (0..cols).step_by(B) {
            let cb = B.min(cols - c0);
            if rb == B && cb == B {
                let mut blk = [[0.0f32; B]; B];
                for (r, row) in blk.iter_mut().enumerate() {
                    row.copy_from_slice(&src[(r0 + r) * cols + c0..][..B]);
                }
                for c in 0..B {
                    let d = &mut dst[(c0 + c) * rows + r0..][..B];
                    for (r, v) in d.iter_mut().enumerate() {
                        *v = blk[r][c];
                    }
                }
            } else {
                for r in r0..r0 + rb {
                    for c in c0..c0 + cb {
                        dst[c * rows + r] = src[r * cols + c];
                    }
                }
            }
        }
    }
}
