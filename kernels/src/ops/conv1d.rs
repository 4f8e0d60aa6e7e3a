//! Causal depthwise conv1d followed by SiLU (Mamba §3.4, `MambaMixer.conv1d`).
//!
//! The state holds the last `K - 1` inputs of each channel, oldest first:
//! `state: (d_inner, K - 1)`; weights `w: (d_inner, K)`, `w[c][K-1]` multiplies the
//! current input.

use super::act::silu;

/// Runs the convolution over `L` tokens in place: `x: (L, d_inner)` is replaced by
/// `silu(conv(x) + bias)`, and `state` is advanced past the `L` tokens.
///
/// Runs the kernel of [`crate::cpu::kernels`]; the AVX2 and NEON ones sum in the same
/// order as [`conv1d_silu_ref`] and differ only by their vector SiLU (a few ulp).
pub fn conv1d_silu(
    x: &mut [f32],
    d_inner: usize,
    state: &mut [f32],
    w: &[f32],
    bias: Option<&[f32]>,
) {
    (crate::cpu::kernels().conv1d_silu)(x, d_inner, state, w, bias)
}

/// Channels per task of [`conv1d_silu_threaded`].
const CHANNELS_PER_TASK: usize = 64;
/// Tokens from which [`conv1d_silu_threaded`] splits the work across threads.
const THREADED_MIN_L: usize = 16;

/// [`conv1d_silu`] split across the kernel threads by channels, with the same
/// results. A sequence's channels are strided in `x: (L, d_inner)`, so each task
/// copies its `L × 64` columns into `buf` (grown as needed; pass the same buffer
/// every call), convolves them there, and a second parallel pass by rows copies
/// them back. A single token is split by channels in place; other short
/// sequences run [`conv1d_silu`] directly.
pub fn conv1d_silu_threaded(
    x: &mut [f32],
    d_inner: usize,
    state: &mut [f32],
    w: &[f32],
    bias: Option<&[f32]>,
    buf: &mut Vec<f32>,
) {
    let l = x.len().checked_div(d_inner).unwrap_or(0);
    let k = w.len().checked_div(d_inner).unwrap_or(0);
    if k < 2 || crate::pool::threads() == 1 {
        return conv1d_silu(x, d_inner, state, w, bias);
    }
    if l == 1 && x.len() == d_inner && state.len() == d_inner * (k - 1) {
        // One token: each task's channels are contiguous in x too, so the chunks
        // are convolved in place, two per thread (the weights and state stream
        // from memory in decode; one thread alone waits on them).
        let per = d_inner
            .div_ceil(2 * crate::pool::threads())
            .next_multiple_of(8);
        crate::pool::for_each_chunk_pair(x, per, state, per * (k - 1), |i, xc, sc| {
            let cs = i * per..i * per + xc.len();
            conv1d_silu(
                xc,
                cs.len(),
                sc,
                &w[cs.start * k..cs.end * k],
                bias.map(|b| &b[cs]),
            );
        });
        return;
    }
    if l < THREADED_MIN_L {
        return conv1d_silu(x, d_inner, state, w, bias);
    }
    assert!(
        x.len() == l * d_inner && state.len() == d_inner * (k - 1) && w.len() == d_inner * k,
        "conv1d: shapes"
    );
    if buf.len() < x.len() {
        buf.resize(x.len(), 0.0);
    }
    let cols = &mut buf[..x.len()];
    // Pass 1, by channel chunks: chunk i of `cols` holds its channels as (L, n).
    {
        let x = &*x;
        crate::pool::for_each_chunk_pair(
            cols,
            l * CHANNELS_PER_TASK,
            state,
            CHANNELS_PER_TASK * (k - 1),
            |i, ci, si| {
                let (c0, n) = (i * CHANNELS_PER_TASK, si.len() / (k - 1));
                for (dst, row) in ci.chunks_exact_mut(n).zip(x.chunks_exact(d_inner)) {
                    dst.copy_from_slice(&row[c0..c0 + n]);
                }
                conv1d_silu(
                    ci,
                    n,
                    si,
                    &w[c0 * k..(c0 + n) * k],
                    bias.map(|b| &b[c0..c0 + n]),
                );
            },
        );
    }
    // Pass 2, by token rows: gather each row back from the chunks.
    let cols = &*cols;
    let rows = l.div_ceil(2 * crate::pool::threads());
    crate::pool::for_each_chunk(x, rows * d_inner, |i, xr| {
        for (j, row) in xr.chunks_exact_mut(d_inner).enumerate() {
            let t = i * rows + j;
            for (c0, dst) in (0..d_inner)
                .step_by(CHANNELS_PER_TASK)
                .zip(row.chunks_mut(CHANNELS_PER_TASK))
            {
                let n = dst.len();
                dst.copy_from_slice(&cols[c0 * l + t * n..][..n]);
            }
        }
    });
}

/// The scalar reference of [`conv1d_silu`].
pub fn conv1d_silu_ref(
    x: &mut [f32],
    d_inner: usize,
    state: &mut [f32],
    w: &[f32],
    bias: Option<&[f32]>,
) {
    let k = w.len() / d_inner;
    let l = x.len() / d_inner;
    let mut window = vec![0.0f32; k];
    for c in 0..d_inner {
        let st = &mut state[c * (k - 1)..(c + 1) * (k - 1)];
        let wc = &w[c * k..(c + 1) * k];
        let b = bias.map_or(0.0, |b| b[c]);
        window[..k - 1].copy_from_slice(st);
        for t in 0..l {
            window[k - 1] = x[t * d_inner + c];
            let mut acc = b;
            for j in 0..k {
                acc += wc[j] * window[j];
            }
            x[t * d_inner + c] = silu(acc);
            window.copy_within(1.., 0);
        }
        st.copy_from_slice(&window[..k - 1]);
    }
}
