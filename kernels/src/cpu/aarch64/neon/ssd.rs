//! NEON Mamba-2 scans: the AVX2 kernels (`cpu/x86_64/avx2/ssd.rs`) at half the
//! width. Scalar references:
//! [`mamba2_scan_task_ref`](crate::ops::ssd::mamba2_scan_task_ref) and
//! [`mamba2_chunked_task_ref`](crate::ops::ssd::mamba2_chunked_task_ref); the
//! results differ from them by rounding only (`tests/ssd.rs` bounds it, under
//! qemu: `.ci/arm-test.sh`).
//!
//! - The recurrence ([`mamba2_scan`]): channels in pairs, 16 states per step
//!   (4 registers), the state update and `Σ h·C` fused in one pass, as AVX2's.
//! - The chunked scan ([`mamba2_chunked`]): the portable `chunked_task_with`
//!   over the matrix products of [`Neon`]: register tiles of 6, 4, 2 or 1 rows ×
//!   16, 8 or 4 columns (24 of the 32 registers accumulate in the 6 × 16 tile)
//!   and a zero-padded vector for widths that are not a multiple of 4, and 4 × 4
//!   register transposes of the state. Each output's arithmetic is that of the
//!   portable tiles with FMA (the table's former entry), so the results are the
//!   same bit for bit; only the code differs.
//!
//! No fast `exp`: unlike Mamba-1's scan ([`super::ssm`], one `exp` per channel
//! and state), `A` is one scalar per head, so `exp(dt·A)` is one libm call per
//! head and token, as in the AVX2 kernels and the references.
//!
//! Not measured: there is no ARM machine here (qemu's timings say nothing about
//! a core), so the tile shapes follow the register budget, not a benchmark.
//!
//! NEON is baseline on aarch64: the entry points are safe `fn`s, and the
//! `unsafe` blocks are for the intrinsics and the raw-pointer loads and stores,
//! whose bounds the asserted shapes establish.

use super::math::splat;
use crate::ops::ssd::{
    check, chunked_task_with, Mamba2Inputs, Mamba2Params, Mamba2Task, Products, Tri,
};
use std::arch::aarch64::*;

// ── the recurrence ───────────────────────────────────────────────────────────

/// The recurrence of `scan_task_with`, with the state update and `Σ h·C` fused
/// in one pass over each channel's state (the AVX2 `scan`'s design).
///
/// ```text
/// per head, token:   dt, exp(dt·A)                          (libm, once)
///   per pair of channels:   dtx = dt·x
///     16 states at a time:  h = fma(exp(dt·A), h, dtx·B);   s[v] = fma(h, C, s[v])  (v < 4)
///     then 4 at a time into s[0];   s = hsum((s0 + s1) + (s2 + s3)), then N mod 4 one by one
///     y = fma(x, D, s)
/// ```
///
/// A channel's operations do not depend on whether it is paired, so neither the
/// channel split nor the number of tokens changes any output.
pub(super) fn mamba2_scan(p: &Mamba2Params<'_>, inp: &Mamba2Inputs<'_>, task: Mamba2Task<'_>) {
    check(p, inp, &task);
    let (n, c0) = (p.d_state, task.channels.start);
    for (hd, cs) in p.parts(task.channels.clone()) {
        let (bo, co) = (p.bc_col(p.group(hd), false), p.bc_col(p.group(hd), true));
        for t in 0..task.l {
            let dt = p.dt(inp, t, hd);
            let da = (dt * p.a[hd]).exp();
            let row = &inp.xbc[t * inp.xbc_stride..];
            let (b, cc) = (&row[bo..bo + n], &row[co..co + n]);
            // Channels in pairs: one load of B and C serves both, and the pair's
            // sums are eight independent FMA chains.
            let mut c = cs.start;
            while c < cs.end {
                let (x0, i0) = (row[c], c - c0);
                if c + 1 < cs.end {
                    let x1 = row[c + 1];
                    let h2 = &mut task.state[i0 * n..(i0 + 2) * n];
                    let (h0, h1) = h2.split_at_mut(n);
                    let [s0, s1] = channels([h0, h1], b, cc, da, [dt * x0, dt * x1]);
                    task.y[t * task.y_stride + i0] = x0.mul_add(p.d[hd], s0);
                    task.y[t * task.y_stride + i0 + 1] = x1.mul_add(p.d[hd], s1);
                    c += 2;
                } else {
                    let h = &mut task.state[i0 * n..(i0 + 1) * n];
                    let [s] = channels([h], b, cc, da, [dt * x0]);
                    task.y[t * task.y_stride + i0] = x0.mul_add(p.d[hd], s);
                    c += 1;
                }
            }
        }
    }
}

/// `K` channels' state updates `h = fma(da, h, dtx·B)` for one head and token,
/// returning each channel's `Σ h·C`: the same operations and order for each
/// channel whatever `K`.
#[inline(always)]
fn channels<const K: usize>(
    mut h: [&mut [f32]; K],
    b: &[f32],
    c: &[f32],
    da: f32,
    dtx: [f32; K],
) -> [f32; K] {
    let n = b.len();
    assert!(
        c.len() == n && h.iter().all(|hk| hk.len() == n),
        "mamba2 scan: state width"
    );
    let (n16, n4) = (n / 16 * 16, n / 4 * 4);
    let (bp, cp) = (b.as_ptr(), c.as_ptr());
    let hp: [*mut f32; K] = std::array::from_fn(|k| h[k].as_mut_ptr());
    let mut acc = [[splat(0.0); 4]; K];
    for j in (0..n16).step_by(16) {
        // SAFETY: j + 16 <= n, the length of b, c and every h[k] (asserted).
        unsafe {
            let bv: [float32x4_t; 4] = std::array::from_fn(|v| vld1q_f32(bp.add(j + 4 * v)));
            let cv: [float32x4_t; 4] = std::array::from_fn(|v| vld1q_f32(cp.add(j + 4 * v)));
            for k in 0..K {
                for v in 0..4 {
                    let hq = hp[k].add(j + 4 * v);
                    // vfmaq_n_f32(a, b, s) = a + b·s, fused.
                    let hv = vfmaq_n_f32(vmulq_n_f32(bv[v], dtx[k]), vld1q_f32(hq), da);
                    vst1q_f32(hq, hv);
                    acc[k][v] = vfmaq_f32(acc[k][v], hv, cv[v]);
                }
            }
        }
    }
    for j in (n16..n4).step_by(4) {
        // SAFETY: j + 4 <= n, the length of b, c and every h[k] (asserted).
        unsafe {
            let (bv, cv) = (vld1q_f32(bp.add(j)), vld1q_f32(cp.add(j)));
            for k in 0..K {
                let hq = hp[k].add(j);
                let hv = vfmaq_n_f32(vmulq_n_f32(bv, dtx[k]), vld1q_f32(hq), da);
                vst1q_f32(hq, hv);
                acc[k][0] = vfmaq_f32(acc[k][0], hv, cv);
            }
        }
    }
    std::array::from_fn(|k| {
        let a = &acc[k];
        // SAFETY: register-only NEON instructions (NEON is baseline on aarch64).
        // faddp: (a0 + a1) + (a2 + a3).
        let mut s = unsafe { vaddvq_f32(vaddq_f32(vaddq_f32(a[0], a[1]), vaddq_f32(a[2], a[3]))) };
        let hk = &mut *h[k];
        for j in n4..n {
            hk[j] = da.mul_add(hk[j], dtx[k] * b[j]);
            s = hk[j].mul_add(c[j], s);
        }
        s
    })
}

// ── the chunked scan's products ──────────────────────────────────────────────

/// The chunked scan, NEON products.
pub(super) fn mamba2_chunked(
    p: &Mamba2Params<'_>,
    inp: &Mamba2Inputs<'_>,
    task: Mamba2Task<'_>,
    chunk: usize,
    scratch: &mut [f32],
) {
    chunked_task_with::<Neon>(p, inp, task, chunk, scratch)
}

/// The NEON [`Products`].
struct Neon;

impl Products for Neon {
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
        gemm(tri, m, w, kk, a, as_, b, bs, out, os)
    }

    #[inline(always)]
    fn transpose(src: &[f32], rows: usize, cols: usize, dst: &mut [f32]) {
        transpose(src, rows, cols, dst)
    }
}

/// [`Products::transpose`] in 4 × 4 blocks through registers; edges element by
/// element.
fn transpose(src: &[f32], rows: usize, cols: usize, dst: &mut [f32]) {
    assert!(
        src.len() >= rows * cols && dst.len() >= rows * cols,
        "transpose: shapes"
    );
    let (full_r, full_c) = (rows / 4 * 4, cols / 4 * 4);
    for r0 in (0..full_r).step_by(4) {
        for c0 in (0..full_c).step_by(4) {
            // SAFETY: rows r0..r0+4 <= rows and columns c0..c0+4 <= cols of src;
            // rows c0..c0+4 and columns r0..r0+4 of dst (asserted lengths).
            unsafe {
                let s = src.as_ptr().add(r0 * cols + c0);
                let t = transpose4(std::array::from_fn(|i| vld1q_f32(s.add(i * cols))));
                let d = dst.as_mut_ptr().add(c0 * rows + r0);
                for (i, ti) in t.iter().enumerate() {
                    vst1q_f32(d.add(i * rows), *ti);
                }
            }
        }
    }
    for r in 0..rows {
        let c_from = if r < full_r { full_c } else { 0 };
        for c in c_from..cols {
            dst[c * rows + r] = src[r * cols + c];
        }
    }
}

/// The 4 × 4 transpose of 4 rows: `trn1`/`trn2` of lanes, then of lane pairs.
#[inline(always)]
fn transpose4(r: [float32x4_t; 4]) -> [float32x4_t; 4] {
    // SAFETY: register-only NEON instructions (NEON is baseline on aarch64).
    unsafe {
        let t0 = vreinterpretq_f64_f32(vtrn1q_f32(r[0], r[1])); // a0 b0 a2 b2
        let t1 = vreinterpretq_f64_f32(vtrn2q_f32(r[0], r[1])); // a1 b1 a3 b3
        let t2 = vreinterpretq_f64_f32(vtrn1q_f32(r[2], r[3])); // c0 d0 c2 d2
        let t3 = vreinterpretq_f64_f32(vtrn2q_f32(r[2], r[3])); // c1 d1 c3 d3
        [
            vreinterpretq_f32_f64(vtrn1q_f64(t0, t2)),
            vreinterpretq_f32_f64(vtrn1q_f64(t1, t3)),
            vreinterpretq_f32_f64(vtrn2q_f64(t0, t2)),
            vreinterpretq_f32_f64(vtrn2q_f64(t1, t3)),
        ]
    }
}

/// [`Products::gemm`] in tiles of 6, 4, 2 or 1 rows × 16, 8, 4 or a zero-padded
/// remainder of columns; each output's operations and order are those of the
/// portable tiles with FMA (a sum from zero in `k` order, then added to `out`).
///
/// ```text
/// per tile:  acc[R][V] = 0
///   for k:   b[v] = B[k, j+4v..j+4v+4]  (v < V)
///            for r < R:  a = A[i+r, k];  acc[r][v] = fma(b[v], a, acc[r][v])   (fmla by element)
///   out[i.., j..] += acc
/// ```
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
) {
    if m == 0 || w == 0 {
        return;
    }
    // Every pointer read and write below stays within these bounds.
    assert!(a.len() >= (m - 1) * as_ + kk, "gemm: a too short");
    assert!(kk == 0 || b.len() >= (kk - 1) * bs + w, "gemm: b too short");
    assert!(out.len() >= (m - 1) * os + w, "gemm: out too short");
    let mut i = 0;
    while i < m {
        let mr = match m - i {
            6.. => 6,
            4 | 5 => 4,
            2 | 3 => 2,
            _ => 1,
        };
        let k_n = if tri == Tri::K { kk.min(i + mr) } else { kk };
        let w_n = if tri == Tri::Cols { w.min(i + mr) } else { w };
        // SAFETY: rows i .. i + mr <= m of a and of out, columns < w_n <= w and
        // k < k_n <= kk, within the asserted lengths.
        unsafe {
            let (ap, op) = (a.as_ptr().add(i * as_), out.as_mut_ptr().add(i * os));
            let bp = b.as_ptr();
            match mr {
                6 => cols::<6>(k_n, w_n, ap, as_, bp, bs, op, os),
                4 => cols::<4>(k_n, w_n, ap, as_, bp, bs, op, os),
                2 => cols::<2>(k_n, w_n, ap, as_, bp, bs, op, os),
                _ => cols::<1>(k_n, w_n, ap, as_, bp, bs, op, os),
            }
        }
        i += mr;
    }
}

/// One band of `R` rows of [`gemm`], across `w` columns.
///
/// # Safety
/// `a` has `R` rows of `kk` values at stride `as_`, `b` has `kk` rows of `w` at
/// stride `bs`, `out` has `R` rows of `w` at stride `os`.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
unsafe fn cols<const R: usize>(
    kk: usize,
    w: usize,
    a: *const f32,
    as_: usize,
    b: *const f32,
    bs: usize,
    out: *mut f32,
    os: usize,
) {
    let mut j = 0;
    while j + 16 <= w {
        tile::<R, 4>(kk, a, as_, b.add(j), bs, out.add(j), os, 4);
        j += 16;
    }
    if j + 8 <= w {
        tile::<R, 2>(kk, a, as_, b.add(j), bs, out.add(j), os, 4);
        j += 8;
    }
    if j + 4 <= w {
        tile::<R, 1>(kk, a, as_, b.add(j), bs, out.add(j), os, 4);
        j += 4;
    }
    if j < w {
        tile::<R, 1>(kk, a, as_, b.add(j), bs, out.add(j), os, w - j);
    }
}

/// One `R × 4·V` tile, whose last vector of columns holds only its first `last`
/// lanes (1 to 4): read zero-padded, written back in part.
///
/// # Safety
/// As [`cols`], for the tile's `4·(V − 1) + last` columns.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
unsafe fn tile<const R: usize, const V: usize>(
    kk: usize,
    a: *const f32,
    as_: usize,
    b: *const f32,
    bs: usize,
    out: *mut f32,
    os: usize,
    last: usize,
) {
    let lanes = |v: usize| if v == V - 1 { last } else { 4 };
    let mut acc = [[splat(0.0); V]; R];
    for k in 0..kk {
        let row = b.add(k * bs);
        let bv: [float32x4_t; V] = std::array::from_fn(|v| load(row.add(4 * v), lanes(v)));
        for (r, acc_r) in acc.iter_mut().enumerate() {
            let av = *a.add(r * as_ + k);
            for v in 0..V {
                // vfmaq_n_f32(acc, b, a) = acc + b·a, fused.
                acc_r[v] = vfmaq_n_f32(acc_r[v], bv[v], av);
            }
        }
    }
    for (r, acc_r) in acc.iter().enumerate() {
        for (v, &s) in acc_r.iter().enumerate() {
            let o = out.add(r * os + 4 * v);
            store(o, vaddq_f32(load(o, lanes(v)), s), lanes(v));
        }
    }
}

/// The `m` (1 to 4) floats at `p`, zero-padded to 4 lanes.
///
/// # Safety
/// `p` is valid for reading `m` floats.
#[inline(always)]
unsafe fn load(p: *const f32, m: usize) -> float32x4_t {
    if m == 4 {
        vld1q_f32(p)
    } else {
        let mut buf = [0.0f32; 4];
        std::ptr::copy_nonoverlapping(p, buf.as_mut_ptr(), m);
        vld1q_f32(buf.as_ptr())
    }
}

/// The first `m` (1 to 4) lanes of `v` to `p`.
///
/// # Safety
/// `p` is valid for writing `m` floats.
#[inline(always)]
unsafe fn store(p: *mut f32, v: float32x4_t, m: usize) {
    if m == 4 {
        vst1q_f32(p, v)
    } else {
        let mut buf = [0.0f32; 4];
        vst1q_f32(buf.as_mut_ptr(), v);
        std::ptr::copy_nonoverlapping(buf.as_ptr(), p, m);
    }
}
