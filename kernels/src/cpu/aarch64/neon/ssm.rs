//! NEON selective scan and causal conv1d + SiLU (4 f32 lanes). Scalar
//! references: [`selective_scan_ref`] and [`conv1d_silu_ref`]; same formulas,
//! with the vector softplus and SiLU (3 ulp) of [`super::math`] instead of
//! libm's, and the scan's `exp(dt·A)` as `2^(dt·(A·log2 e))` (1 ulp, plus the
//! rounding of `A·log2 e`). conv1d keeps the reference's association order.
//!
//! The design is the AVX2 one (`cpu/x86_64/avx2/ssm.rs`) at half the width,
//! with one simplification: the scan has only the states-vectorised form (AVX2's
//! `scan_states`, tokens outer), not the channels-vectorised one AVX2 adds for
//! long sequences, which is a throughput tuning that needs a machine to measure
//! on. As there, the scan fuses its multiply-adds (`h = fma(exp(dt·A), h,
//! (dt·x)·B)`, `Σ h·C` by FMA) and forms `dt·x` once per channel and token
//! instead of `(dt·B)·x` per state: fewer operations and roundings, so it
//! differs from the reference by rounding only (the tests bound it). Each
//! output's arithmetic depends neither on the number of tokens in the call nor on
//! the channel split, so prefill and token-by-token decode agree bit for bit.
//!
//! NEON is baseline on aarch64: the entry points are safe `fn`s, and the
//! `unsafe` blocks are for the raw-pointer loads and stores, whose bounds the
//! shape checks establish.

use super::math::{exp2_nonpos, silu, softplus, splat};
use crate::ops::conv1d::conv1d_silu_ref;
use crate::ops::scan::{check_shapes, selective_scan_ref, ScanInputs, ScanParams};
use std::arch::aarch64::*;

/// Up to 4 consecutive values at `src[at..]` (zero-padded to 4 lanes).
#[inline]
fn load_upto4(src: &[f32], at: usize, m: usize) -> float32x4_t {
    if m == 4 {
        // SAFETY: the slice holds the 4 floats read.
        unsafe { vld1q_f32(src[at..at + 4].as_ptr()) }
    } else {
        let mut buf = [0.0f32; 4];
        buf[..m].copy_from_slice(&src[at..at + m]);
        // SAFETY: `buf` holds 4 floats.
        unsafe { vld1q_f32(buf.as_ptr()) }
    }
}

/// The lanes of `v` as an array.
#[inline]
fn lanes(v: float32x4_t) -> [f32; 4] {
    let mut out = [0.0f32; 4];
    // SAFETY: `out` has room for 4 floats.
    unsafe { vst1q_f32(out.as_mut_ptr(), v) };
    out
}

// ── selective scan ───────────────────────────────────────────────────────────

/// [`selective_scan_ref`] vectorised over the state: 4 states per register.
/// d_state other than a multiple of 4 up to 32, or 64, goes to the reference
/// (each size is its own instantiation, so that B, C and the decay factors of a
/// group of channels are fixed-size arrays the compiler can keep in registers;
/// Mamba checkpoints use 16).
pub(super) fn selective_scan(
    p: &ScanParams<'_>,
    inp: &ScanInputs<'_>,
    c0: usize,
    n_ch: usize,
    h: &mut [f32],
    y_t: &mut [f32],
) {
    match p.d_state {
        4 => scan::<1>(p, inp, c0, n_ch, h, y_t),
        8 => scan::<2>(p, inp, c0, n_ch, h, y_t),
        12 => scan::<3>(p, inp, c0, n_ch, h, y_t),
        16 => scan::<4>(p, inp, c0, n_ch, h, y_t),
        20 => scan::<5>(p, inp, c0, n_ch, h, y_t),
        24 => scan::<6>(p, inp, c0, n_ch, h, y_t),
        28 => scan::<7>(p, inp, c0, n_ch, h, y_t),
        32 => scan::<8>(p, inp, c0, n_ch, h, y_t),
        64 => scan::<16>(p, inp, c0, n_ch, h, y_t),
        _ => selective_scan_ref(p, inp, c0, n_ch, h, y_t),
    }
}

/// The scan with `N = 4·NV` states: checks the shapes (every pointer access of
/// [`scan_states`] relies on them), then runs all the channels through it.
fn scan<const NV: usize>(
    p: &ScanParams<'_>,
    inp: &ScanInputs<'_>,
    c0: usize,
    n_ch: usize,
    h: &mut [f32],
    y_t: &mut [f32],
) {
    let n = 4 * NV;
    assert!(p.d_state == n, "scan: d_state");
    let l = check_shapes(p, inp, c0, n_ch, h, y_t);
    if l == 0 {
        return;
    }
    // SAFETY: the shapes were checked above.
    unsafe { scan_states::<NV>(p, inp, c0, n_ch, h.as_mut_ptr(), y_t.as_mut_ptr()) }
}

/// Channels `0 .. n_ch` of the task starting at channel `c0`, vectorised over the
/// state; the tokens in the outer loop.
///
/// ```text
/// for t:                                   (B, C of token t loaded once)
///   for 4 channels at a time:  dt = softplus(dt_raw + bias), g = silu(z)   (vector)
///     exp(dt·A) = 2^(dt·(A·log2 e)) for the 4 channels × N states
///     for each channel c:
///       for 4 states at a time:  h = fma(exp(dt·A), h, (dt·x)·B) ;  acc = fma(h, C, acc)
///       y[c, t] = (hsum(acc) + D·x) · g
/// ```
///
/// # Safety
/// [`scan`]'s shape checks hold; `h_all` and `y_t` point to the task's state
/// `(n_ch, N)` and output `(n_ch, L)`.
unsafe fn scan_states<const NV: usize>(
    p: &ScanParams<'_>,
    inp: &ScanInputs<'_>,
    c0: usize,
    n_ch: usize,
    h_all: *mut f32,
    y_t: *mut f32,
) {
    let n = 4 * NV;
    let d_inner = p.d.len();
    let l = inp.x.len() / d_inner;
    let a_all = p.a.as_ptr().add(c0 * n);
    let log2e = vdupq_n_f32(std::f32::consts::LOG2_E);
    for t in 0..l {
        // SAFETY: row t of B/C has n values at b_off and at c_off (checked by scan).
        let row = inp.bc.as_ptr().add(t * inp.bc_stride);
        let mut b = [vdupq_n_f32(0.0); NV];
        let mut cc = [vdupq_n_f32(0.0); NV];
        for v in 0..NV {
            b[v] = vld1q_f32(row.add(inp.b_off + 4 * v));
            cc[v] = vld1q_f32(row.add(inp.c_off + 4 * v));
        }
        for cb in (0..n_ch).step_by(4) {
            let m = 4.min(n_ch - cb);
            let at = t * d_inner + c0 + cb;
            let dt = softplus(vaddq_f32(
                load_upto4(inp.dt, at, m),
                load_upto4(p.dt_bias, c0 + cb, m),
            ));
            let (dts, gs, xs) = (
                lanes(dt),
                lanes(silu(load_upto4(inp.z, at, m))),
                lanes(load_upto4(inp.x, at, m)),
            );
            // exp(dt·A) of the 4 channels first: independent chains the core can
            // overlap, instead of one long polynomial chain per channel.
            let mut da = [[vdupq_n_f32(0.0); NV]; 4];
            for (k, dak) in da.iter_mut().enumerate().take(m) {
                let dtv = vdupq_n_f32(dts[k]);
                // SAFETY: channel cb + k < n_ch has n values of A (from c0).
                let a = a_all.add((cb + k) * n);
                for (v, dakv) in dak.iter_mut().enumerate() {
                    let a2 = vmulq_f32(vld1q_f32(a.add(4 * v)), log2e);
                    *dakv = exp2_nonpos(vmulq_f32(dtv, a2));
                }
            }
            for k in 0..m {
                let ci = cb + k;
                let dtx = vdupq_n_f32(dts[k] * xs[k]);
                // SAFETY: channel ci < n_ch has n values of h and l of y_t.
                let hc = h_all.add(ci * n);
                let mut acc = vdupq_n_f32(0.0);
                for v in 0..NV {
                    let dbx = vmulq_f32(dtx, b[v]);
                    // vfmaq_f32(c, a, b) = a·b + c, fused.
                    let hv = vfmaq_f32(dbx, da[k][v], vld1q_f32(hc.add(4 * v)));
                    vst1q_f32(hc.add(4 * v), hv);
                    acc = vfmaq_f32(acc, hv, cc[v]);
                }
                // faddp: (a0 + a1) + (a2 + a3).
                let out = vaddvq_f32(acc) + p.d[c0 + ci] * xs[k];
                *y_t.add(ci * l + t) = out * gs[k];
            }
        }
    }
}

// ── causal conv1d + SiLU ─────────────────────────────────────────────────────

/// [`conv1d_silu_ref`] vectorised over 4 channels, for kernel widths 2 to 8.
pub(super) fn conv1d_silu(
    x: &mut [f32],
    d_inner: usize,
    state: &mut [f32],
    w: &[f32],
    bias: Option<&[f32]>,
) {
    let k = w.len().checked_div(d_inner).unwrap_or(0);
    match k {
        2 => conv::<2>(x, d_inner, state, w, bias),
        3 => conv::<3>(x, d_inner, state, w, bias),
        4 => conv::<4>(x, d_inner, state, w, bias),
        5 => conv::<5>(x, d_inner, state, w, bias),
        6 => conv::<6>(x, d_inner, state, w, bias),
        7 => conv::<7>(x, d_inner, state, w, bias),
        8 => conv::<8>(x, d_inner, state, w, bias),
        _ => conv1d_silu_ref(x, d_inner, state, w, bias),
    }
}

/// One token (decode): the channel-major weights and state are read in place
/// (gathering them into registers, as [`conv`] does for long runs, costs more
/// than the work), the sums in scalar code in the reference order, then one
/// vector SiLU pass over the row. [`conv`]'s shape checks hold with `L = 1`.
fn conv_step<const K: usize>(x: &mut [f32], state: &mut [f32], w: &[f32], bias: Option<&[f32]>) {
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
    let mut chunks = x.chunks_exact_mut(4);
    for ch in &mut chunks {
        // SAFETY: `ch` holds 4 floats.
        unsafe { vst1q_f32(ch.as_mut_ptr(), silu(vld1q_f32(ch.as_ptr()))) };
    }
    let rest = chunks.into_remainder();
    if !rest.is_empty() {
        let m = rest.len();
        let y = lanes(silu(load_upto4(rest, 0, m)));
        rest.copy_from_slice(&y[..m]);
    }
}

/// ```text
/// for 4 channels at a time:
///   w[j], hist[j] (the K−1 previous inputs) gathered into registers
///   for t:  acc = bias + Σ_{j<K−1} w[j]·hist[j] + w[K−1]·x[t]     (reference order)
///           shift hist, x[t] = silu(acc)
///   hist written back to the state
/// ```
///
/// The products and sums are separate `fmul` and `fadd` (no FMA), as the
/// reference's `acc += w·x` rounds twice: the sums come out bit-identical.
fn conv<const K: usize>(
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
    for cb in (0..d_inner).step_by(4) {
        let m = 4.min(d_inner - cb);
        // Transposed to (K, 4 channels): one register per tap.
        let mut wt = [[0.0f32; 4]; K];
        let mut ht = [[0.0f32; 4]; K];
        for ch in 0..m {
            for j in 0..K {
                wt[j][ch] = w[(cb + ch) * K + j];
            }
            for j in 0..K - 1 {
                ht[j][ch] = state[(cb + ch) * (K - 1) + j];
            }
        }
        let wv: [float32x4_t; K] = std::array::from_fn(|j| load_upto4(&wt[j], 0, 4));
        let mut hv: [float32x4_t; K] = std::array::from_fn(|j| load_upto4(&ht[j], 0, 4));
        let bv = match bias {
            Some(b) => load_upto4(b, cb, m),
            None => splat(0.0),
        };
        for t in 0..l {
            let at = t * d_inner + cb;
            let cur = load_upto4(x, at, m);
            // SAFETY: register-only NEON instructions (NEON is baseline on aarch64).
            let acc = unsafe {
                let mut acc = bv;
                for j in 0..K - 1 {
                    acc = vaddq_f32(acc, vmulq_f32(wv[j], hv[j]));
                }
                vaddq_f32(acc, vmulq_f32(wv[K - 1], cur))
            };
            hv.copy_within(1..K - 1, 0);
            hv[K - 2] = cur;
            x[at..at + m].copy_from_slice(&lanes(silu(acc))[..m]);
        }
        for (j, hj) in hv.iter().enumerate().take(K - 1) {
            let v = lanes(*hj);
            for ch in 0..m {
                state[(cb + ch) * (K - 1) + j] = v[ch];
            }
        }
    }
}
