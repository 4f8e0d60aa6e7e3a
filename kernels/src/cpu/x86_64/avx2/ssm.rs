//! AVX2 selective scan and causal conv1d + SiLU. Scalar references:
//! [`selective_scan_ref`] and [`conv1d_silu_ref`]; same formulas and association
//! order, with the vector `exp`/`softplus`/`silu` of [`super::math`].

use super::hsum_ps;
use super::math::{exp, silu, softplus};
use crate::ops::conv1d::conv1d_silu_ref;
use crate::ops::scan::{selective_scan_ref, ScanInputs, ScanParams};
use std::arch::x86_64::*;

/// Up to 8 consecutive values at `src[at..]` (zero-padded to 8 lanes).
///
/// # Safety
/// The CPU must support AVX2.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn load_upto8(src: &[f32], at: usize, m: usize) -> __m256 {
    if m == 8 {
        _mm256_loadu_ps(src[at..at + 8].as_ptr())
    } else {
        let mut buf = [0.0f32; 8];
        buf[..m].copy_from_slice(&src[at..at + m]);
        _mm256_loadu_ps(buf.as_ptr())
    }
}

/// The lanes of `v` as an array.
///
/// # Safety
/// The CPU must support AVX2.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn lanes(v: __m256) -> [f32; 8] {
    let mut out = [0.0f32; 8];
    _mm256_storeu_ps(out.as_mut_ptr(), v);
    out
}

// ── selective scan ───────────────────────────────────────────────────────────

/// [`selective_scan_ref`] vectorised over the state: 8 states per register.
/// d_state that is not a multiple of 8 (or above 64) goes to the reference.
pub(super) fn selective_scan(p: &ScanParams<'_>, inp: &ScanInputs<'_>, c0: usize, n_ch: usize, h: &mut [f32], y_t: &mut [f32]) {
    if p.d_state % 8 != 0 || p.d_state > 64 || p.d_state == 0 {
        return selective_scan_ref(p, inp, c0, n_ch, h, y_t);
    }
    // SAFETY: reachable only through the AVX2 table, handed out after detection.
    unsafe { scan(p, inp, c0, n_ch, h, y_t) }
}

/// ```text
/// for t:                                   (B, C of token t loaded once)
///   for 8 channels at a time:  dt = softplus(dt_raw + bias), g = silu(z)   (vector)
///     for each channel c:
///       for 8 states at a time:  h = exp(dt·A)·h + (dt·B)·x ;  acc += h·C
///       y[c, t] = (hsum(acc) + D·x) · g
/// ```
///
/// # Safety
/// The CPU must support AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn scan(p: &ScanParams<'_>, inp: &ScanInputs<'_>, c0: usize, n_ch: usize, h: &mut [f32], y_t: &mut [f32]) {
    let n = p.d_state;
    let d_inner = p.d.len();
    let l = inp.x.len() / d_inner;
    assert!(c0 + n_ch <= d_inner && p.a.len() == d_inner * n && p.dt_bias.len() == d_inner, "scan: parameter shapes");
    assert!(inp.x.len() == l * d_inner && inp.dt.len() == l * d_inner && inp.z.len() == l * d_inner, "scan: input shapes");
    assert!(h.len() >= n_ch * n && y_t.len() >= n_ch * l, "scan: state or output too short");
    if l > 0 {
        let need = (l - 1) * inp.bc_stride + inp.b_off.max(inp.c_off) + n;
        assert!(inp.bc.len() >= need, "scan: B/C too short");
    }
    let nv = n / 8;
    for t in 0..l {
        let row = &inp.bc[t * inp.bc_stride..];
        let (b, cc) = (&row[inp.b_off..inp.b_off + n], &row[inp.c_off..inp.c_off + n]);
        for cb in (0..n_ch).step_by(8) {
            let m = 8.min(n_ch - cb);
            let at = t * d_inner + c0 + cb;
            let dt = softplus(_mm256_add_ps(load_upto8(inp.dt, at, m), load_upto8(p.dt_bias, c0 + cb, m)));
            let (dts, gs, xs) = (lanes(dt), lanes(silu(load_upto8(inp.z, at, m))), lanes(load_upto8(inp.x, at, m)));
            for k in 0..m {
                let (ci, c) = (cb + k, c0 + cb + k);
                let (dtv, xv) = (_mm256_set1_ps(dts[k]), _mm256_set1_ps(xs[k]));
                let a = &p.a[c * n..(c + 1) * n];
                let hc = &mut h[ci * n..(ci + 1) * n];
                let mut acc = _mm256_setzero_ps();
                for v in 0..nv {
                    let s = 8 * v;
                    // SAFETY: s + 8 <= n for every slice indexed here (lengths n).
                    let da = exp(_mm256_mul_ps(dtv, _mm256_loadu_ps(a.as_ptr().add(s))));
                    let dbx = _mm256_mul_ps(_mm256_mul_ps(dtv, _mm256_loadu_ps(b.as_ptr().add(s))), xv);
                    let hv = _mm256_add_ps(_mm256_mul_ps(da, _mm256_loadu_ps(hc.as_ptr().add(s))), dbx);
                    _mm256_storeu_ps(hc.as_mut_ptr().add(s), hv);
                    acc = _mm256_add_ps(acc, _mm256_mul_ps(hv, _mm256_loadu_ps(cc.as_ptr().add(s))));
                }
                let out = hsum_ps(acc) + p.d[c] * xs[k];
                y_t[ci * l + t] = out * gs[k];
            }
        }
    }
}

// ── causal conv1d + SiLU ─────────────────────────────────────────────────────

/// [`conv1d_silu_ref`] vectorised over 8 channels, for kernel widths 2 to 8.
pub(super) fn conv1d_silu(x: &mut [f32], d_inner: usize, state: &mut [f32], w: &[f32], bias: Option<&[f32]>) {
    let k = if d_inner == 0 { 0 } else { w.len() / d_inner };
    // SAFETY (all arms): reachable only through the AVX2 table, handed out after detection.
    match k {
        2 => unsafe { conv::<2>(x, d_inner, state, w, bias) },
        3 => unsafe { conv::<3>(x, d_inner, state, w, bias) },
        4 => unsafe { conv::<4>(x, d_inner, state, w, bias) },
        5 => unsafe { conv::<5>(x, d_inner, state, w, bias) },
        6 => unsafe { conv::<6>(x, d_inner, state, w, bias) },
        7 => unsafe { conv::<7>(x, d_inner, state, w, bias) },
        8 => unsafe { conv::<8>(x, d_inner, state, w, bias) },
        _ => conv1d_silu_ref(x, d_inner, state, w, bias),
    }
}

/// ```text
/// for 8 channels at a time:
///   w[j], hist[j] (the K−1 previous inputs) gathered into registers
///   for t:  acc = bias + Σ_{j<K−1} w[j]·hist[j] + w[K−1]·x[t]     (reference order)
///           shift hist, x[t] = silu(acc)
///   hist written back to the state
/// ```
///
/// # Safety
/// The CPU must support AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn conv<const K: usize>(x: &mut [f32], d_inner: usize, state: &mut [f32], w: &[f32], bias: Option<&[f32]>) {
    let l = x.len() / d_inner;
    assert!(x.len() == l * d_inner && w.len() == d_inner * K && state.len() == d_inner * (K - 1), "conv1d: shapes");
    if let Some(b) = bias {
        assert_eq!(b.len(), d_inner, "conv1d: bias shape");
    }
    for cb in (0..d_inner).step_by(8) {
        let m = 8.min(d_inner - cb);
        let mut wt = [[0.0f32; 8]; K];
        let mut ht = [[0.0f32; 8]; K];
        for ch in 0..m {
            for j in 0..K {
                wt[j][ch] = w[(cb + ch) * K + j];
            }
            for j in 0..K - 1 {
                ht[j][ch] = state[(cb + ch) * (K - 1) + j];
            }
        }
        let mut wv = [_mm256_setzero_ps(); K];
        let mut hv = [_mm256_setzero_ps(); K];
        for j in 0..K {
            wv[j] = _mm256_loadu_ps(wt[j].as_ptr());
            hv[j] = _mm256_loadu_ps(ht[j].as_ptr());
        }
        let bv = match bias {
            Some(b) => load_upto8(b, cb, m),
            None => _mm256_setzero_ps(),
        };
        for t in 0..l {
            let at = t * d_inner + cb;
            let cur = load_upto8(x, at, m);
            let mut acc = bv;
            for j in 0..K - 1 {
                acc = _mm256_add_ps(acc, _mm256_mul_ps(wv[j], hv[j]));
            }
            acc = _mm256_add_ps(acc, _mm256_mul_ps(wv[K - 1], cur));
            for j in 0..K - 2 {
                hv[j] = hv[j + 1];
            }
            hv[K - 2] = cur;
            let y = silu(acc);
            if m == 8 {
                _mm256_storeu_ps(x[at..at + 8].as_mut_ptr(), y);
            } else {
                x[at..at + m].copy_from_slice(&lanes(y)[..m]);
            }
        }
        for (j, hj) in hv.iter().enumerate().take(K - 1) {
            let v = lanes(*hj);
            for ch in 0..m {
                state[(cb + ch) * (K - 1) + j] = v[ch];
            }
        }
    }
}
