//! The Mamba-1 mixer (Gu & Dao 2023, §3.4 fig. 3; transformers
//! `MambaMixer.slow_forward`), and Falcon-Mamba's, which adds weightless RMS norms
//! on dt, B and C (transformers `FalconMambaMixer.slow_forward`).

use crate::model::{grow, Model, Segment, TRef};
use mamba_format::MambaConfig;
use mamba_kernels::ops::act::add_bias;
use mamba_kernels::ops::gated_norm::rms_normalize;
use mamba_kernels::ops::scan::{ScanInputs, ScanParams};
use mamba_kernels::sched::scan::{scan_segment, scan_step};
use mamba_kernels::{matmul, WeightView};

/// One layer's tensors.
#[derive(Clone, Debug)]
pub(crate) struct Layer {
    pub(crate) norm: TRef,  // (d_model)
    in_proj: TRef,          // (2 d_inner, d_model)
    in_bias: Option<TRef>,  // (2 d_inner)
    conv_w: TRef,           // (d_inner, d_conv)
    conv_b: Option<TRef>,   // (d_inner)
    x_proj: TRef,           // (R + 2N, d_inner)
    dt_proj: TRef,          // (d_inner, R)
    dt_bias: TRef,          // (d_inner)
    a: TRef,                // (d_inner, N), = -exp(A_log)
    d: TRef,                // (d_inner)
    out_proj: TRef,         // (d_model, d_inner)
    out_bias: Option<TRef>, // (d_model)
}

impl Layer {
    /// The tensors of the layer whose names `p` gives.
    pub(crate) fn new(
        p: impl Fn(&str) -> String,
        req: impl Fn(&str) -> TRef,
        opt: impl Fn(&str) -> Option<TRef>,
    ) -> Layer {
        Layer {
            norm: req(&p("norm.weight")),
            in_proj: req(&p("mixer.in_proj.weight")),
            in_bias: opt(&p("mixer.in_proj.bias")),
            conv_w: req(&p("mixer.conv1d.weight")),
            conv_b: opt(&p("mixer.conv1d.bias")),
            x_proj: req(&p("mixer.x_proj.weight")),
            dt_proj: req(&p("mixer.dt_proj.weight")),
            dt_bias: req(&p("mixer.dt_proj.bias")),
            a: req(&p("mixer.A")),
            d: req(&p("mixer.D")),
            out_proj: req(&p("mixer.out_proj.weight")),
            out_bias: opt(&p("mixer.out_proj.bias")),
        }
    }
}

/// The Mamba-1 activations of one forward call.
#[derive(Default)]
pub(crate) struct Scratch {
    x: Vec<f32>,     // (T, d_inner)
    z: Vec<f32>,     // (T, d_inner)
    xdbl: Vec<f32>,  // (T, R + 2N)
    dt: Vec<f32>,    // (T, d_inner)
    dt_in: Vec<f32>, // (T, R)
    y_t: Vec<f32>,   // (d_inner, L) of one segment's block
    y: Vec<f32>,     // (T, d_inner)
}

/// Layer `li`'s mixer: `s.xn (T, d_model)` → `s.out (T, d_model)`, advancing each
/// segment's conv and SSM state.
pub(crate) fn mixer(
    m: &Model,
    c: &MambaConfig,
    l: &Layer,
    li: usize,
    segs: &mut [Segment<'_>],
    t_total: usize,
    s: &mut crate::model::Scratch,
) {
    let (d, di, n, r) = (c.d_model, c.d_inner, c.d_state, c.dt_rank);
    let xn = &s.xn[..t_total * d];
    let m1 = &mut s.mamba1;
    // ── in_proj → (x, z) ──────────────────────────────────────────────────────
    let (x, z): (&mut [f32], &mut [f32]) = if t_total == 1 {
        // One token: one matmul (one parallel region), and the output row [x | z]
        // splits in place.
        let xz = grow(&mut m1.x, 2 * di);
        matmul(&m.view(&l.in_proj), xn, 1, xz);
        xz.split_at_mut(di)
    } else {
        let x = grow(&mut m1.x, t_total * di);
        matmul(&m.view_rows(&l.in_proj, 0..di), xn, t_total, x);
        let z = grow(&mut m1.z, t_total * di);
        matmul(&m.view_rows(&l.in_proj, di..2 * di), xn, t_total, z);
        (x, z)
    };
    if let Some(b) = &l.in_bias {
        let b = m.f32s(b);
        add_bias(x, &b[..di]);
        add_bias(z, &b[di..]);
    }
    // ── causal conv1d + SiLU, per sequence ────────────────────────────────────
    m.conv_segments(
        li,
        x,
        di,
        (&l.conv_w, l.conv_b.as_ref()),
        segs,
        &mut s.conv_buf,
    );
    // ── x_proj → (dt, B, C); Falcon-Mamba normalizes each ────────────────────
    let w = r + 2 * n;
    let xdbl = grow(&mut m1.xdbl, t_total * w);
    matmul(&m.view(&l.x_proj), x, t_total, xdbl);
    if let Some(eps) = c.mixer_rms_eps {
        for row in xdbl.chunks_exact_mut(w) {
            let (dt, bc) = row.split_at_mut(r);
            rms_normalize(dt, r, eps as f32);
            rms_normalize(bc, n, eps as f32);
        }
    }
    // ── dt_proj; selective scan (dt bias, softplus, D skip, SiLU(z) gate fused),
    // per sequence ─────────────────────────────────────────────────────────────
    let p = ScanParams {
        a: m.f32s(&l.a),
        d: m.f32s(&l.d),
        dt_bias: m.f32s(&l.dt_bias),
        d_state: n,
    };
    let y = grow(&mut m1.y, t_total * di);
    if t_total == 1 {
        let inp = ScanInputs {
            x,
            dt: &[],
            bc: &xdbl[..w],
            bc_stride: w,
            b_off: r,
            c_off: r + n,
            z,
        };
        scan_step(&m.view(&l.dt_proj), &p, &inp, segs[0].state.ssm_mut(li), y);
    } else {
        let dt = grow(&mut m1.dt, t_total * di);
        dt_proj(&m.view(&l.dt_proj), xdbl, w, r, t_total, &mut m1.dt_in, dt);
        let mut off = 0;
        for seg in segs.iter_mut() {
            let rows = off * di..(off + seg.tokens.len()) * di;
            let inp = ScanInputs {
                x: &x[rows.clone()],
                dt: &dt[rows.clone()],
                bc: &xdbl[off * w..(off + seg.tokens.len()) * w],
                bc_stride: w,
                b_off: r,
                c_off: r + n,
                z: &z[rows.clone()],
            };
            scan_segment(&p, &inp, seg.state.ssm_mut(li), &mut m1.y_t, &mut y[rows]);
            off += seg.tokens.len();
        }
    }
    // ── out_proj ──────────────────────────────────────────────────────────────
    let out = grow(&mut s.out, t_total * d);
    matmul(&m.view(&l.out_proj), y, t_total, out);
    if let Some(b) = &l.out_bias {
        add_bias(out, m.f32s(b));
    }
}

/// `dt = dt_proj(xdbl[:, :R])`: the first R columns of each x_proj row, which are not
/// contiguous across rows, so they are gathered per token first.
fn dt_proj(
    w: &WeightView<'_>,
    xdbl: &[f32],
    stride: usize,
    r: usize,
    t: usize,
    buf: &mut Vec<f32>,
    dt: &mut [f32],
) {
    let gathered = grow(buf, t * r);
    for (dst, row) in gathered.chunks_exact_mut(r).zip(xdbl.chunks_exact(stride)) {
        dst.copy_from_slice(&row[..r]);
    }
    matmul(w, gathered, t, dt);
}
