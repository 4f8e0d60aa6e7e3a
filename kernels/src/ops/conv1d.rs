//! Causal depthwise conv1d followed by SiLU (Mamba §3.4, `MambaMixer.conv1d`).
//!
//! The state holds the last `K - 1` inputs of each channel, oldest first:
//! `state: (d_inner, K - 1)`; weights `w: (d_inner, K)`, `w[c][K-1]` multiplies the
//! current input.

use super::act::silu;

/// Runs the convolution over `L` tokens in place: `x: (L, d_inner)` is replaced by
/// `silu(conv(x) + bias)`, and `state` is advanced past the `L` tokens.
///
/// Runs the kernel of [`crate::cpu::kernels`]; the AVX2 one sums in the same order
/// as [`conv1d_silu_ref`] and differs only by its vector SiLU (a few ulp).
pub fn conv1d_silu(
    x: &mut [f32],
    d_inner: usize,
    state: &mut [f32],
    w: &[f32],
    bias: Option<&[f32]>,
) {
    (crate::cpu::kernels().conv1d_silu)(x, d_inner, state, w, bias)
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
