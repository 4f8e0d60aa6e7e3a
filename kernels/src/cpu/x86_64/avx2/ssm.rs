//! AVX2 selective scan and causal conv1d + SiLU. Scalar references:
//! [`selective_scan_ref`] and [`conv1d_silu_ref`]; same formulas, with the vector
//! softplus and SiLU (3 ulp) of [`super::math`] instead of libm's, and the scan's
//! `exp(dt·A)` as `2^(dt·(A·log2 e))` (1 ulp, plus the rounding of `A·log2 e`).
//! conv1d keeps the reference's association order. The scan fuses its
//! multiply-adds (`h = fma(exp(dt·A), h, (dt·x)·B)`, `Σ h·C` by FMA) and forms
//! `dt·x` once per channel and token instead of `(dt·B)·x` per state: fewer
//! operations and roundings, so it differs from the reference by rounding only
//! (the tests bound it). Its two paths (tokens outer, channels outer) do the
//! same operations on each value in the same order: bit-identical.

use super::hsum_ps;
use super::math::{exp2_nonpos, silu, softplus};
use crate::ops::conv1d::conv1d_silu_ref;
use crate::ops::scan::{check_shapes, selective_scan_ref, ScanInputs, ScanParams};
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
pub(super) fn selective_scan(
    p: &ScanParams<'_>,
    inp: &ScanInputs<'_>,
    c0: usize,
    n_ch: usize,
    h: &mut [f32],
    y_t: &mut [f32],
) {
    // SAFETY (all arms): reachable only through the AVX2 table, handed out after detection.
    match p.d_state {
        8 => unsafe { scan::<1>(p, inp, c0, n_ch, h, y_t) },
        16 => unsafe { scan::<2>(p, inp, c0, n_ch, h, y_t) },
        24 => unsafe { scan::<3>(p, inp, c0, n_ch, h, y_t) },
        32 => unsafe { scan::<4>(p, inp, c0, n_ch, h, y_t) },
        64 => unsafe { scan::<8>(p, inp, c0, n_ch, h, y_t) },
        _ => selective_scan_ref(p, inp, c0, n_ch, h, y_t),
    }
}

/// Tokens from which full groups of 8 channels take [`scan_channels`]: below, its
/// transposition of `A` and `h` costs more than it saves.
const CHANNEL_PATH_MIN_L: usize = 4;

/// The scan with `N = 8·NV` states: checks the shapes, then runs full groups of 8
/// channels through [`scan_channels`] for sequences of at least
/// [`CHANNEL_PATH_MIN_L`] tokens, and everything else through [`scan_states`]. Both
/// give bit-identical results (same operations on each value, same order).
///
/// # Safety
/// The CPU must support AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn scan<const NV: usize>(
    p: &ScanParams<'_>,
    inp: &ScanInputs<'_>,
    c0: usize,
    n_ch: usize,
    h: &mut [f32],
    y_t: &mut [f32],
) {
    let n = 8 * NV;
    assert!(p.d_state == n, "scan: d_state");
    let l = check_shapes(p, inp, c0, n_ch, h, y_t);
    if l == 0 {
        return;
    }
    let full = if l >= CHANNEL_PATH_MIN_L {
        n_ch / 8 * 8
    } else {
        0
    };
    for cb in (0..full).step_by(8) {
        scan_channels::<NV>(p, inp, c0, cb, h.as_mut_ptr(), y_t.as_mut_ptr());
    }
    scan_states::<NV>(p, inp, c0, full..n_ch, h.as_mut_ptr(), y_t.as_mut_ptr());
}

/// Channels `chans` (of the task starting at channel `c0`), vectorised over the
/// state; the tokens in the outer loop.
///
/// ```text
/// for t:                                   (B, C of token t loaded once)
///   for 8 channels at a time:  dt = softplus(dt_raw + bias), g = silu(z)   (vector)
///     exp(dt·A) = 2^(dt·(A·log2 e)) for the 8 channels × N states
///     for each channel c:
///       for 8 states at a time:  h = fma(exp(dt·A), h, (dt·x)·B) ;  acc = fma(h, C, acc)
///       y[c, t] = (hsum(acc) + D·x) · g
/// ```
///
/// # Safety
/// The CPU must support AVX2, FMA and F16C; [`scan`]'s shape checks hold; `h` and
/// `y_t` point to the task's state `(n_ch, N)` and output `(n_ch, L)`.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn scan_states<const NV: usize>(
    p: &ScanParams<'_>,
    inp: &ScanInputs<'_>,
    c0: usize,
    chans: std::ops::Range<usize>,
    h_all: *mut f32,
    y_t: *mut f32,
) {
    let n = 8 * NV;
    let d_inner = p.d.len();
    let l = inp.x.len() / d_inner;
    let a_all = p.a.as_ptr().add(c0 * n);
    let log2e = _mm256_set1_ps(std::f32::consts::LOG2_E);
    for t in 0..l {
        // SAFETY: row t of B/C has n values at b_off and at c_off (checked by scan).
        let row = inp.bc.as_ptr().add(t * inp.bc_stride);
        let mut b = [_mm256_setzero_ps(); NV];
        let mut cc = [_mm256_setzero_ps(); NV];
        for v in 0..NV {
            b[v] = _mm256_loadu_ps(row.add(inp.b_off + 8 * v));
            cc[v] = _mm256_loadu_ps(row.add(inp.c_off + 8 * v));
        }
        for cb in chans.clone().step_by(8) {
            let m = 8.min(chans.end - cb);
            let at = t * d_inner + c0 + cb;
            let dt = softplus(_mm256_add_ps(
                load_upto8(inp.dt, at, m),
                load_upto8(p.dt_bias, c0 + cb, m),
            ));
            let (dts, gs, xs) = (
                lanes(dt),
                lanes(silu(load_upto8(inp.z, at, m))),
                lanes(load_upto8(inp.x, at, m)),
            );
            // exp(dt·A) of the 8 channels first: independent chains the core can
            // overlap, instead of one long polynomial chain per channel.
            let mut da = [[_mm256_setzero_ps(); NV]; 8];
            for (k, dak) in da.iter_mut().enumerate().take(m) {
                let dtv = _mm256_set1_ps(dts[k]);
                // SAFETY: channel cb + k < n_ch has n values of A (from c0).
                let a = a_all.add((cb + k) * n);
                for (v, dakv) in dak.iter_mut().enumerate() {
                    let a2 = _mm256_mul_ps(_mm256_loadu_ps(a.add(8 * v)), log2e);
                    *dakv = exp2_nonpos(_mm256_mul_ps(dtv, a2));
                }
            }
            for k in 0..m {
                let ci = cb + k;
                let dtx = _mm256_set1_ps(dts[k] * xs[k]);
                // SAFETY: channel ci < n_ch has n values of h and l of y_t.
                let hc = h_all.add(ci * n);
                let mut acc = _mm256_setzero_ps();
                for v in 0..NV {
                    let dbx = _mm256_mul_ps(dtx, b[v]);
                    let hv = _mm256_fmadd_ps(da[k][v], _mm256_loadu_ps(hc.add(8 * v)), dbx);
                    _mm256_storeu_ps(hc.add(8 * v), hv);
                    acc = _mm256_fmadd_ps(hv, cc[v], acc);
                }
                let out = hsum_ps(acc) + p.d[c0 + ci] * xs[k];
                *y_t.add(ci * l + t) = out * gs[k];
            }
        }
    }
}

/// Tokens per block of [`scan_channels`]: its per-token buffers (8 of them, 8
/// lanes each) stay in L1.
const CHANNEL_BLOCK_L: usize = 64;

/// Channels `cb .. cb + 8` (of the task starting at `c0`) over all tokens, 8
/// channels per register: `A` and `h` are transposed to `(N, 8)` once; then, per
/// block of tokens, each state runs through the block in a tight loop (its `A`
/// and `h` and the `exp2` constants in registers, nothing spilled), adding its
/// `h·C` into the per-token partial sums of its lane group. The per-value
/// operations and their order are those of [`scan_states`], including its lane
/// order for `Σ h·C`, so the results are bit-identical.
///
/// ```text
/// At[n], Ht[n] = A[c.., n]·log2 e, h[c.., n]                     (gathered)
/// for each block of ≤ 64 tokens:
///   per t:  dt[t], dt·x[t] for the 8 channels                     (vector)
///   for n = 8v + j:                          (v outer, so each s_j sums over v in order)
///     for t:  Ht[n] = fma(2^(dt[t]·At[n]), Ht[n], (dt·x)[t]·B[t, n])
///             s_j[t] = fma(Ht[n], C[t, n], s_j[t])           (s_j[t] = 0 before v = 0)
///   per t:  y[c.., t] = (((s0+s4)+(s2+s6)) + ((s1+s5)+(s3+s7)) + D·x) · silu(z)
/// h[c.., n] = Ht[n]                                                (scattered)
/// ```
///
/// # Safety
/// As [`scan_states`]; `cb + 8 <= n_ch`.
// The final pass reads token k of all 8 partial-sum buffers: an index reads best.
#[allow(clippy::needless_range_loop)]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn scan_channels<const NV: usize>(
    p: &ScanParams<'_>,
    inp: &ScanInputs<'_>,
    c0: usize,
    cb: usize,
    h_all: *mut f32,
    y_t: *mut f32,
) {
    let n = 8 * NV;
    let d_inner = p.d.len();
    let l = inp.x.len() / d_inner;
    let c = c0 + cb;
    let stride = _mm256_mullo_epi32(
        _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
        _mm256_set1_epi32(n as i32),
    );
    let log2e = _mm256_set1_ps(std::f32::consts::LOG2_E);
    let mut at = [[_mm256_setzero_ps(); 8]; NV];
    let mut ht = [[_mm256_setzero_ps(); 8]; NV];
    for v in 0..NV {
        for j in 0..8 {
            // SAFETY: channels c .. c + 8 have n values of A, and (from cb) of h.
            at[v][j] = _mm256_mul_ps(
                _mm256_i32gather_ps::<4>(p.a.as_ptr().add(c * n + 8 * v + j), stride),
                log2e,
            );
            ht[v][j] = _mm256_i32gather_ps::<4>(h_all.add(cb * n + 8 * v + j), stride);
        }
    }
    // SAFETY: c + 8 <= d_inner.
    let d8 = _mm256_loadu_ps(p.d.as_ptr().add(c));
    let bias8 = _mm256_loadu_ps(p.dt_bias.as_ptr().add(c));
    let mut dts = [_mm256_setzero_ps(); CHANNEL_BLOCK_L];
    let mut dtxs = [_mm256_setzero_ps(); CHANNEL_BLOCK_L];
    let mut sums = [[_mm256_setzero_ps(); CHANNEL_BLOCK_L]; 8];
    for t0 in (0..l).step_by(CHANNEL_BLOCK_L) {
        let m = CHANNEL_BLOCK_L.min(l - t0);
        for (k, (dt, dtx)) in dts.iter_mut().zip(&mut dtxs).take(m).enumerate() {
            // SAFETY: (t0 + k)·d_inner + c + 8 <= l·d_inner (checked by scan).
            let at_t = (t0 + k) * d_inner + c;
            *dt = softplus(_mm256_add_ps(
                _mm256_loadu_ps(inp.dt.as_ptr().add(at_t)),
                bias8,
            ));
            *dtx = _mm256_mul_ps(*dt, _mm256_loadu_ps(inp.x.as_ptr().add(at_t)));
        }
        for v in 0..NV {
            for (j, sj) in sums.iter_mut().enumerate() {
                let st = 8 * v + j;
                let a = at[v][j];
                let mut h = ht[v][j];
                // SAFETY: rows t0 .. t0 + m of B/C have n values at b_off and c_off.
                let mut row = inp.bc.as_ptr().add(t0 * inp.bc_stride);
                for k in 0..m {
                    let bn = _mm256_broadcast_ss(&*row.add(inp.b_off + st));
                    let cn = _mm256_broadcast_ss(&*row.add(inp.c_off + st));
                    let da = exp2_nonpos(_mm256_mul_ps(dts[k], a));
                    h = _mm256_fmadd_ps(da, h, _mm256_mul_ps(dtxs[k], bn));
                    sj[k] = if v == 0 {
                        _mm256_mul_ps(h, cn)
                    } else {
                        _mm256_fmadd_ps(h, cn, sj[k])
                    };
                    row = row.add(inp.bc_stride);
                }
                ht[v][j] = h;
            }
        }
        for k in 0..m {
            let t = t0 + k;
            let at_t = t * d_inner + c;
            let s = |j: usize| sums[j][k];
            let u = [
                _mm256_add_ps(s(0), s(4)),
                _mm256_add_ps(s(1), s(5)),
                _mm256_add_ps(s(2), s(6)),
                _mm256_add_ps(s(3), s(7)),
            ];
            let sum = _mm256_add_ps(_mm256_add_ps(u[0], u[2]), _mm256_add_ps(u[1], u[3]));
            // SAFETY: as above.
            let x8 = _mm256_loadu_ps(inp.x.as_ptr().add(at_t));
            let g8 = silu(_mm256_loadu_ps(inp.z.as_ptr().add(at_t)));
            let y = lanes(_mm256_mul_ps(_mm256_add_ps(sum, _mm256_mul_ps(d8, x8)), g8));
            for (ch, &yk) in y.iter().enumerate() {
                // SAFETY: channel cb + ch < n_ch has l outputs.
                *y_t.add((cb + ch) * l + t) = yk;
            }
        }
    }
    for (v, htv) in ht.iter().enumerate() {
        for (j, &htvj) in htv.iter().enumerate() {
            for (k, &hk) in lanes(htvj).iter().enumerate() {
                // SAFETY: channel cb + k has n values of h.
                *h_all.add((cb + k) * n + 8 * v + j) = hk;
            }
        }
    }
}

// ── causal conv1d + SiLU ─────────────────────────────────────────────────────

/// [`conv1d_silu_ref`] vectorised over 8 channels, for kernel widths 2 to 8.
pub(super) fn conv1d_silu(
    x: &mut [f32],
    d_inner: usize,
    state: &mut [f32],
    w: &[f32],
    bias: Option<&[f32]>,
) {
    let k = w.len().checked_div(d_inner).unwrap_or(0);
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

/// One token (decode): the channel-major weights and state are read in place
/// (gathering them into registers, as [`conv`] does for long runs, costs more
/// than the work), the sums in scalar code in the reference order, then one
/// vector SiLU pass over the row.
///
/// # Safety
/// The CPU must support AVX2, FMA and F16C; [`conv`]'s shape checks hold with
/// `L = 1`.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn conv_step<const K: usize>(
    x: &mut [f32],
    state: &mut [f32],
    w: &[f32],
    bias: Option<&[f32]>,
) {
    for (c, ((xc, st), wc)) in x
        .iter_mut()
        .zip(state.chunks_exact_mut(K - 1))
        .zip(w.chunks_exact(K))
        .enumerate()
    {
        let cur = *xc;
        let mut acc = bias.map_or(0.0, |b| b[c]);
        for j in 0..K - 1 {
            acc += wc[j] * st[j];
        }
        acc += wc[K - 1] * cur;
        st.copy_within(1.., 0);
        st[K - 2] = cur;
        *xc = acc;
    }
    let mut chunks = x.chunks_exact_mut(8);
    for ch in &mut chunks {
        _mm256_storeu_ps(ch.as_mut_ptr(), silu(_mm256_loadu_ps(ch.as_ptr())));
    }
    let rest = chunks.into_remainder();
    if !rest.is_empty() {
        let m = rest.len();
        let y = lanes(silu(load_upto8(rest, 0, m)));
        rest.copy_from_slice(&y[..m]);
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
unsafe fn conv<const K: usize>(
    x: &mut [f32],
    d_inner: usize,
    state: &mut [f32],
    w: &[f32],
    bias: Option<&[f32]>,
) {
    let l = x.len() / d_inner;
    assert!(
        x.len() == l * d_inner && w.len() == d_inner * K && state.len() == d_inner * (K - 1),
        "conv1d: shapes"
    );
    if let Some(b) = bias {
        assert_eq!(b.len(), d_inner, "conv1d: bias shape");
    }
    if l == 1 {
        return conv_step::<K>(x, state, w, bias);
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
