//! The selective scan (Mamba §3.2, Algorithm 2), fused with the dt bias, softplus,
//! the D skip connection and the SiLU(z) gate, with the state in fp32:
//!
//! ```text
//! dt      = softplus(dt_raw[t,c] + dt_bias[c])
//! h[c,n]  = exp(dt * A[c,n]) * h[c,n] + dt * B[t,n] * x[t,c]
//! y[t,c]  = (sum_n h[c,n] * C[t,n] + D[c] * x[t,c]) * silu(z[t,c])
//! ```
//! Reference: transformers `MambaMixer.slow_forward`; mamba_ssm `selective_scan_ref`.

use super::act::{silu, softplus};

/// Per-layer SSM parameters.
#[derive(Clone, Copy, Debug)]
pub struct ScanParams<'a> {
    /// `(d_inner, d_state)`, already `-exp(A_log)`.
    pub a: &'a [f32],
    /// `(d_inner)`.
    pub d: &'a [f32],
    /// `(d_inner)`.
    pub dt_bias: &'a [f32],
    /// d_state N.
    pub d_state: usize,
}

/// Per-token inputs for `L` tokens of one sequence. Row strides allow B and C to be
/// read in place from the x_proj output `(L, dt_rank + 2N)`.
#[derive(Clone, Copy, Debug)]
pub struct ScanInputs<'a> {
    /// `(L, d_inner)` conv output.
    pub x: &'a [f32],
    /// `(L, d_inner)` dt before bias and softplus.
    pub dt: &'a [f32],
    /// B of token t at `bc[t * bc_stride + b_off ..][..N]`.
    pub bc: &'a [f32],
    /// Row stride of `bc`.
    pub bc_stride: usize,
    /// Offset of B in a row of `bc`.
    pub b_off: usize,
    /// Offset of C in a row of `bc`.
    pub c_off: usize,
    /// `(L, d_inner)` gate z.
    pub z: &'a [f32],
}

/// Scans channels `c0 .. c0 + n_ch` over the whole sequence, so callers can split
/// channels across threads. `h` is those channels' state `(n_ch, N)`; `y_t: (n_ch, L)`
/// receives the gated output channel-major (each thread writes a contiguous slice).
///
/// Runs the kernel of [`crate::cpu::kernels`]: the AVX2 and NEON ones compute `exp`,
/// softplus and SiLU with vector approximations of a few ulp (tested against
/// [`selective_scan_ref`] in `tests/ops.rs`).
pub fn selective_scan(
    p: &ScanParams<'_>,
    inp: &ScanInputs<'_>,
    c0: usize,
    n_ch: usize,
    h: &mut [f32],
    y_t: &mut [f32],
) {
    (crate::cpu::kernels().selective_scan)(p, inp, c0, n_ch, h, y_t)
}

/// Checks the shapes a SIMD scan kernel's pointer reads rely on (the arguments of
/// [`selective_scan`]) and returns the token count `L`; panics naming the first
/// mismatch.
pub(crate) fn check_shapes(
    p: &ScanParams<'_>,
    inp: &ScanInputs<'_>,
    c0: usize,
    n_ch: usize,
    h: &[f32],
    y_t: &[f32],
) -> usize {
    let (n, d_inner) = (p.d_state, p.d.len());
    let l = inp.x.len() / d_inner;
    assert!(
        c0 + n_ch <= d_inner && p.a.len() == d_inner * n && p.dt_bias.len() == d_inner,
        "scan: parameter shapes"
    );
    assert!(
        inp.x.len() == l * d_inner && inp.dt.len() == l * d_inner && inp.z.len() == l * d_inner,
        "scan: input shapes"
    );
    assert!(
        h.len() >= n_ch * n && y_t.len() >= n_ch * l,
        "scan: state or output too short"
    );
    if l > 0 {
        let need = (l - 1) * inp.bc_stride + inp.b_off.max(inp.c_off) + n;
        assert!(inp.bc.len() >= need, "scan: B/C too short");
    }
    l
}

/// The scalar reference of [`selective_scan`]: libm `exp`, fp32 state, the
/// association order of transformers' `slow_forward`.
pub fn selective_scan_ref(
    p: &ScanParams<'_>,
    inp: &ScanInputs<'_>,
    c0: usize,
    n_ch: usize,
    h: &mut [f32],
    y_t: &mut [f32],
) {
    let n = p.d_state;
    let d_inner = p.d.len();
    let l = inp.x.len() / d_inner;
    for ci in 0..n_ch {
        let c = c0 + ci;
        let a = &p.a[c * n..(c + 1) * n];
        let hc = &mut h[ci * n..(ci + 1) * n];
        for t in 0..l {
            let x = inp.x[t * d_inner + c];
            let dt = softplus(inp.dt[t * d_inner + c] + p.dt_bias[c]);
            let row = &inp.bc[t * inp.bc_stride..];
            let b = &row[inp.b_off..inp.b_off + n];
            let cc = &row[inp.c_off..inp.c_off + n];
            let mut acc = 0.0f32;
            for j in 0..n {
                // Same association as the reference: (dt * B) * x.
                hc[j] = (dt * a[j]).exp() * hc[j] + (dt * b[j]) * x;
                acc += hc[j] * cc[j];
            }
            let out = acc + p.d[c] * x;
            y_t[ci * l + t] = out * silu(inp.z[t * d_inner + c]);
        }
    }
}
