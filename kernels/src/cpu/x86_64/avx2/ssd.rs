//! AVX2 + FMA Mamba-2 scans. Scalar references:
//! [`mamba2_scan_task_ref`](crate::ops::ssd::mamba2_scan_task_ref) and
//! [`mamba2_chunked_task_ref`](crate::ops::ssd::mamba2_chunked_task_ref); the
//! results differ from them by rounding only (`tests/ssd.rs` bounds it).
//!
//! Why not the portable code compiled with AVX2 (the brief's rule: keep it if
//! within 1.5× of hand-written code)? Measured on one layer (H 8, P 64, N 64,
//! L 512, one thread; `cargo bench --bench matmul -- mamba2`):
//!
//! - The recurrence ([`scan`]): the portable `scan_task_with` built inside a
//!   `#[target_feature]` function vectorises the state update 8 wide but
//!   `Σ h·C` only 4 wide with spills (LLVM's SLP vectoriser): 6.0 ms; these
//!   intrinsics (channels in pairs, 4 FMA chains): 2.2 ms; the scalar table's
//!   recurrence: 15.6 ms.
//! - The chunked scan is the portable `chunked_task_with` (contiguous loops,
//!   `#[inline(always)]` throughout) compiled inside a `#[target_feature]`
//!   function, over the matrix products of [`Avx2`]: 6 × 16 register tiles (12
//!   YMM accumulators) and masked loads for widths that are not a multiple of
//!   8, and 8 × 8 register transposes of the state. With the portable 4 × 16
//!   tiles compiled this way (vectorised, but with bounds checks and index
//!   arithmetic in the `k` loop) it took 2.9 ms (29 GFLOP/s in its products);
//!   with these, 1.4 ms (55 GFLOP/s). The scalar table's: 6.7 ms.

use super::hsum_ps;
use crate::ops::ssd::{
    check, chunked_task_with, Mamba2Inputs, Mamba2Params, Mamba2Task, Products, Tri,
};
use std::arch::x86_64::*;

/// The recurrence, AVX2 + FMA.
pub(super) fn mamba2_scan(p: &Mamba2Params<'_>, inp: &Mamba2Inputs<'_>, task: Mamba2Task<'_>) {
    // SAFETY: reachable only through the AVX2 table, handed out after detection.
    unsafe { scan(p, inp, task) }
}

/// The chunked scan, AVX2 + FMA.
pub(super) fn mamba2_chunked(
    p: &Mamba2Params<'_>,
    inp: &Mamba2Inputs<'_>,
    task: Mamba2Task<'_>,
    chunk: usize,
    scratch: &mut [f32],
) {
    // SAFETY: reachable only through the AVX2 table, handed out after detection.
    unsafe { chunked(p, inp, task, chunk, scratch) }
}

/// # Safety
/// The CPU must support AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn chunked(
    p: &Mamba2Params<'_>,
    inp: &Mamba2Inputs<'_>,
    task: Mamba2Task<'_>,
    chunk: usize,
    scratch: &mut [f32],
) {
    chunked_task_with::<Avx2>(p, inp, task, chunk, scratch)
}

/// The recurrence of `scan_task_with`, with the state update and `Σ h·C` fused
/// in one pass over each channel's state; the same operations in the same
/// order as that function built with FMA (the NEON table's), so the two give
/// identical results.
///
/// ```text
/// per head, token:   dt, exp(dt·A)                          (libm, once)
///   per channel:     dtx = dt·x
///     16 states at a time:   h = fma(exp(dt·A), h, dtx·B);   s0|s1 = fma(h, C, s0|s1)
///     s = hsum(s0 + s1), then the N mod 16 states one by one
///     y = fma(x, D, s)
/// ```
///
/// # Safety
/// The CPU must support AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn scan(p: &Mamba2Params<'_>, inp: &Mamba2Inputs<'_>, task: Mamba2Task<'_>) {
    check(p, inp, &task);
    let (n, c0) = (p.d_state, task.channels.start);
    for (hd, cs) in p.parts(task.channels.clone()) {
        let (bo, co) = (p.bc_col(p.group(hd), false), p.bc_col(p.group(hd), true));
        for t in 0..task.l {
            let dt = p.dt(inp, t, hd);
            let da = (dt * p.a[hd]).exp();
            let row = &inp.xbc[t * inp.xbc_stride..];
            let (b, cc) = (&row[bo..bo + n], &row[co..co + n]);
            // Channels in pairs: one load of B and C serves both, and the two
            // channels' sums are four independent FMA chains (one pair of chains
            // waits on the FMA latency: 1.8× slower).
            let mut c = cs.start;
            while c < cs.end {
                let (x0, i0) = (row[c], c - c0);
                if c + 1 < cs.end {
                    let x1 = row[c + 1];
                    let h2 = &mut task.state[i0 * n..(i0 + 2) * n];
                    let (h0, h1) = h2.split_at_mut(n);
                    let (s0, s1) = channel_pair(h0, h1, b, cc, da, dt * x0, dt * x1);
                    task.y[t * task.y_stride + i0] = x0.mul_add(p.d[hd], s0);
                    task.y[t * task.y_stride + i0 + 1] = x1.mul_add(p.d[hd], s1);
                    c += 2;
                } else {
                    let h = &mut task.state[i0 * n..(i0 + 1) * n];
                    let s = channel(h, b, cc, da, dt * x0);
                    task.y[t * task.y_stride + i0] = x0.mul_add(p.d[hd], s);
                    c += 1;
                }
            }
        }
    }
}

/// [`channel`] for two channels of one head and token: the same operations
/// and order for each.
///
/// # Safety
/// The CPU must support AVX2, FMA and F16C.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn channel_pair(
    h0: &mut [f32],
    h1: &mut [f32],
    b: &[f32],
    c: &[f32],
    da: f32,
    dtx0: f32,
    dtx1: f32,
) -> (f32, f32) {
    let n = h0.len();
    assert!(
        h1.len() == n && b.len() == n && c.len() == n,
        "mamba2 scan: state width"
    );
    let n16 = n / 16 * 16;
    let dav = _mm256_set1_ps(da);
    let (d0, d1) = (_mm256_set1_ps(dtx0), _mm256_set1_ps(dtx1));
    let z = _mm256_setzero_ps();
    let (mut s00, mut s01, mut s10, mut s11) = (z, z, z, z);
    let (p0, p1, bp, cp) = (h0.as_mut_ptr(), h1.as_mut_ptr(), b.as_ptr(), c.as_ptr());
    for j in (0..n16).step_by(16) {
        // SAFETY: j + 16 <= n, the length of h0, h1, b and c.
        let (b0, b1) = (_mm256_loadu_ps(bp.add(j)), _mm256_loadu_ps(bp.add(j + 8)));
        let (c0, c1) = (_mm256_loadu_ps(cp.add(j)), _mm256_loadu_ps(cp.add(j + 8)));
        let a0 = _mm256_fmadd_ps(dav, _mm256_loadu_ps(p0.add(j)), _mm256_mul_ps(d0, b0));
        let a1 = _mm256_fmadd_ps(dav, _mm256_loadu_ps(p0.add(j + 8)), _mm256_mul_ps(d0, b1));
        let e0 = _mm256_fmadd_ps(dav, _mm256_loadu_ps(p1.add(j)), _mm256_mul_ps(d1, b0));
        let e1 = _mm256_fmadd_ps(dav, _mm256_loadu_ps(p1.add(j + 8)), _mm256_mul_ps(d1, b1));
        _mm256_storeu_ps(p0.add(j), a0);
        _mm256_storeu_ps(p0.add(j + 8), a1);
        _mm256_storeu_ps(p1.add(j), e0);
        _mm256_storeu_ps(p1.add(j + 8), e1);
        s00 = _mm256_fmadd_ps(a0, c0, s00);
        s01 = _mm256_fmadd_ps(a1, c1, s01);
        s10 = _mm256_fmadd_ps(e0, c0, s10);
        s11 = _mm256_fmadd_ps(e1, c1, s11);
    }
    let (mut s0, mut s1) = (
        hsum_ps(_mm256_add_ps(s00, s01)),
        hsum_ps(_mm256_add_ps(s10, s11)),
    );
    for j in n16..n {
        h0[j] = da.mul_add(h0[j], dtx0 * b[j]);
        s0 = h0[j].mul_add(c[j], s0);
        h1[j] = da.mul_add(h1[j], dtx1 * b[j]);
        s1 = h1[j].mul_add(c[j], s1);
    }
    (s0, s1)
}

/// One channel's state update `h = fma(da, h, dtx·B)`, returning `Σ h·C`.
///
/// # Safety
/// The CPU must support AVX2, FMA and F16C.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn channel(h: &mut [f32], b: &[f32], c: &[f32], da: f32, dtx: f32) -> f32 {
    let n = h.len();
    assert!(b.len() == n && c.len() == n, "mamba2 scan: state width");
    let n16 = n / 16 * 16;
    let (dav, dtxv) = (_mm256_set1_ps(da), _mm256_set1_ps(dtx));
    let (mut s0, mut s1) = (_mm256_setzero_ps(), _mm256_setzero_ps());
    let (hp, bp, cp) = (h.as_mut_ptr(), b.as_ptr(), c.as_ptr());
    for j in (0..n16).step_by(16) {
        // SAFETY: j + 16 <= n, the length of h, b and c.
        let h0 = _mm256_fmadd_ps(
            dav,
            _mm256_loadu_ps(hp.add(j)),
            _mm256_mul_ps(dtxv, _mm256_loadu_ps(bp.add(j))),
        );
        let h1 = _mm256_fmadd_ps(
            dav,
            _mm256_loadu_ps(hp.add(j + 8)),
            _mm256_mul_ps(dtxv, _mm256_loadu_ps(bp.add(j + 8))),
        );
        _mm256_storeu_ps(hp.add(j), h0);
        _mm256_storeu_ps(hp.add(j + 8), h1);
        s0 = _mm256_fmadd_ps(h0, _mm256_loadu_ps(cp.add(j)), s0);
        s1 = _mm256_fmadd_ps(h1, _mm256_loadu_ps(cp.add(j + 8)), s1);
    }
    let mut s = hsum_ps(_mm256_add_ps(s0, s1));
    for j in n16..n {
        h[j] = da.mul_add(h[j], dtx * b[j]);
        s = h[j].mul_add(c[j], s);
    }
    s
}

// ── the chunked scan's products ──────────────────────────────────────────────

/// The AVX2 [`Products`]. Used only inside [`chunked`] (a private type, so no
/// other code can run it), which is reached only through the AVX2 table.
struct Avx2;

impl Products for Avx2 {
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
        // SAFETY: see `Avx2`: the CPU has AVX2, FMA and F16C.
        unsafe { gemm(tri, m, w, kk, a, as_, b, bs, out, os) }
    }

    #[inline(always)]
    fn transpose(src: &[f32], rows: usize, cols: usize, dst: &mut [f32]) {
        // SAFETY: see `Avx2`.
        unsafe { transpose(src, rows, cols, dst) }
    }
}

/// [`Products::transpose`] in 8 × 8 blocks through registers (the portable
/// blocks compile to scalar moves with spills: 80% of the chunked scan's time
/// for a single token); edges element by element.
///
/// # Safety
/// The CPU must support AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn transpose(src: &[f32], rows: usize, cols: usize, dst: &mut [f32]) {
    assert!(
        src.len() >= rows * cols && dst.len() >= rows * cols,
        "transpose: shapes"
    );
    let (full_r, full_c) = (rows / 8 * 8, cols / 8 * 8);
    for r0 in (0..full_r).step_by(8) {
        for c0 in (0..full_c).step_by(8) {
            // SAFETY: rows r0..r0+8 < rows and columns c0..c0+8 < cols of src;
            // rows c0.. of dst likewise (asserted lengths).
            let s = src.as_ptr().add(r0 * cols + c0);
            let v: [__m256; 8] = std::array::from_fn(|i| _mm256_loadu_ps(s.add(i * cols)));
            let t = transpose8(v);
            let d = dst.as_mut_ptr().add(c0 * rows + r0);
            for (i, ti) in t.iter().enumerate() {
                _mm256_storeu_ps(d.add(i * rows), *ti);
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

/// The 8 × 8 transpose of 8 rows: unpack pairs, shuffle quads, swap halves.
///
/// # Safety
/// The CPU must support AVX2, FMA and F16C.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn transpose8(r: [__m256; 8]) -> [__m256; 8] {
    let t0 = _mm256_unpacklo_ps(r[0], r[1]);
    let t1 = _mm256_unpackhi_ps(r[0], r[1]);
    let t2 = _mm256_unpacklo_ps(r[2], r[3]);
    let t3 = _mm256_unpackhi_ps(r[2], r[3]);
    let t4 = _mm256_unpacklo_ps(r[4], r[5]);
    let t5 = _mm256_unpackhi_ps(r[4], r[5]);
    let t6 = _mm256_unpacklo_ps(r[6], r[7]);
    let t7 = _mm256_unpackhi_ps(r[6], r[7]);
    let u0 = _mm256_shuffle_ps::<0x44>(t0, t2);
    let u1 = _mm256_shuffle_ps::<0xEE>(t0, t2);
    let u2 = _mm256_shuffle_ps::<0x44>(t1, t3);
    let u3 = _mm256_shuffle_ps::<0xEE>(t1, t3);
    let u4 = _mm256_shuffle_ps::<0x44>(t4, t6);
    let u5 = _mm256_shuffle_ps::<0xEE>(t4, t6);
    let u6 = _mm256_shuffle_ps::<0x44>(t5, t7);
    let u7 = _mm256_shuffle_ps::<0xEE>(t5, t7);
    [
        _mm256_permute2f128_ps::<0x20>(u0, u4),
        _mm256_permute2f128_ps::<0x20>(u1, u5),
        _mm256_permute2f128_ps::<0x20>(u2, u6),
        _mm256_permute2f128_ps::<0x20>(u3, u7),
        _mm256_permute2f128_ps::<0x31>(u0, u4),
        _mm256_permute2f128_ps::<0x31>(u1, u5),
        _mm256_permute2f128_ps::<0x31>(u2, u6),
        _mm256_permute2f128_ps::<0x31>(u3, u7),
    ]
}

/// [`Products::gemm`] in tiles of 6, 4, 2 or 1 rows × 16, 8 or a masked
/// remainder of columns; each output's operations and order are those of the
/// portable tiles (a sum from zero in `k` order, then added to `out`).
///
/// ```text
/// per tile:  acc[R][V] = 0
///   for k:   b0, b1 = B[k, j..j+16]               (2 loads)
///            for r < R:  a = A[i+r, k] (broadcast);  acc[r][v] = fma(a, b_v, acc[r][v])
///   out[i.., j..] += acc
/// ```
///
/// # Safety
/// The CPU must support AVX2, FMA and F16C.
#[allow(clippy::too_many_arguments)] // a BLAS-style signature
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn gemm(
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
        // SAFETY: row i + r < m of a and of out, as asserted.
        let (ap, op) = (a.as_ptr().add(i * as_), out.as_mut_ptr().add(i * os));
        let bp = b.as_ptr();
        match mr {
            6 => cols::<6>(k_n, w_n, ap, as_, bp, bs, op, os),
            4 => cols::<4>(k_n, w_n, ap, as_, bp, bs, op, os),
            2 => cols::<2>(k_n, w_n, ap, as_, bp, bs, op, os),
            _ => cols::<1>(k_n, w_n, ap, as_, bp, bs, op, os),
        }
        i += mr;
    }
}

/// One band of `R` rows of [`gemm`], across `w` columns.
///
/// # Safety
/// The CPU must support AVX2, FMA and F16C; `a` has `R` rows of `kk` values at
/// stride `as_`, `b` has `kk` rows of `w` at stride `bs`, `out` has `R` rows of
/// `w` at stride `os`.
#[allow(clippy::too_many_arguments)]
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
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
    let all = _mm256_set1_epi32(-1);
    let mut j = 0;
    while j + 16 <= w {
        tile::<R, 2, false>(kk, a, as_, b.add(j), bs, out.add(j), os, all);
        j += 16;
    }
    if j + 8 <= w {
        tile::<R, 1, false>(kk, a, as_, b.add(j), bs, out.add(j), os, all);
        j += 8;
    }
    if j < w {
        // Lanes below w − j: lane index < count, as a sign mask.
        let lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
        let mask = _mm256_cmpgt_epi32(_mm256_set1_epi32((w - j) as i32), lanes);
        tile::<R, 1, true>(kk, a, as_, b.add(j), bs, out.add(j), os, mask);
    }
}

/// One `R × 8·V` tile; with `MASKED`, the last vector of columns holds only the
/// lanes of `mask` (read with masked loads, written with masked stores).
///
/// # Safety
/// As [`cols`], for the tile's columns (`8·V`, or fewer in masked lanes).
#[allow(clippy::too_many_arguments)]
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn tile<const R: usize, const V: usize, const MASKED: bool>(
    kk: usize,
    a: *const f32,
    as_: usize,
    b: *const f32,
    bs: usize,
    out: *mut f32,
    os: usize,
    mask: __m256i,
) {
    let load = |p: *const f32, v: usize| {
        if MASKED && v == V - 1 {
            _mm256_maskload_ps(p, mask)
        } else {
            _mm256_loadu_ps(p)
        }
    };
    let mut acc = [[_mm256_setzero_ps(); V]; R];
    for k in 0..kk {
        let row = b.add(k * bs);
        let mut bv = [_mm256_setzero_ps(); V];
        for (v, x) in bv.iter_mut().enumerate() {
            *x = load(row.add(8 * v), v);
        }
        for (r, acc_r) in acc.iter_mut().enumerate() {
            let av = _mm256_broadcast_ss(&*a.add(r * as_ + k));
            for v in 0..V {
                acc_r[v] = _mm256_fmadd_ps(av, bv[v], acc_r[v]);
            }
        }
    }
    for (r, acc_r) in acc.iter().enumerate() {
        for (v, &s) in acc_r.iter().enumerate() {
            let o = out.add(r * os + 8 * v);
            let sum = _mm256_add_ps(load(o, v), s);
            if MASKED && v == V - 1 {
                _mm256_maskstore_ps(o, mask, sum);
            } else {
                _mm256_storeu_ps(o, sum);
            }
        }
    }
}
