//! The Mamba-2 mixer (Dao & Gu 2024, §7 fig. 6; transformers
//! `Mamba2Mixer.torch_forward`; mamba_ssm `Mamba2.forward`).

use crate::model::{grow, Model, Segment, TRef};
use mamba_format::Mamba2Config;
use mamba_kernels::matmul;
use mamba_kernels::ops::act::add_bias;
use mamba_kernels::ops::gated_norm::gated_rmsnorm_ref;
use mamba_kernels::ops::ssd::{Mamba2Inputs, Mamba2Params};
use mamba_kernels::pool;
use mamba_kernels::sched::mamba2::{mamba2_scan, Mamba2Scratch};
use mamba_kernels::sched::scan::rows_per_task;

/// One layer's tensors.
#[derive(Clone, Debug)]
pub(crate) struct Layer {
    pub(crate) norm: TRef,  // (d_model)
    in_proj: TRef,          // (d_inner + conv_dim + H, d_model): rows [z, xBC, dt]
    in_bias: Option<TRef>,  // (d_inner + conv_dim + H)
    conv_w: TRef,           // (conv_dim, d_conv)
    conv_b: Option<TRef>,   // (conv_dim)
    dt_bias: TRef,          // (H)
    a: TRef,                // (H), = -exp(A_log)
    d: TRef,                // (H)
    gate_norm: TRef,        // (d_inner)
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
            dt_bias: req(&p("mixer.dt_bias")),
            a: req(&p("mixer.A")),
            d: req(&p("mixer.D")),
            gate_norm: req(&p("mixer.norm.weight")),
            out_proj: req(&p("mixer.out_proj.weight")),
            out_bias: opt(&p("mixer.out_proj.bias")),
        }
    }
}

/// The Mamba-2 activations of one forward call.
#[derive(Default)]
pub(crate) struct Scratch {
    z: Vec<f32>,   // (T, d_inner)
    xbc: Vec<f32>, // (T, conv_dim), or the whole in_proj row of one token
    dt: Vec<f32>,  // (T, H), before bias and softplus
    y: Vec<f32>,   // (T, d_inner)
    yn: Vec<f32>,  // (T, d_inner), gated and normalized
    scan: Mamba2Scratch,
}

/// Layer `li`'s mixer: `s.xn (T, d_model)` → `s.out (T, d_model)`, advancing each
/// segment's conv and SSM state.
pub(crate) fn mixer(
    m: &Model,
    c: &Mamba2Config,
    l: &Layer,
    li: usize,
    segs: &mut [Segment<'_>],
    t_total: usize,
    s: &mut crate::model::Scratch,
) {
    let (d, di, cd, h) = (c.d_model, c.d_inner(), c.conv_dim(), c.n_heads);
    let xn = &s.xn[..t_total * d];
    let m2 = &mut s.mamba2;
    // ── in_proj → (z, xBC, dt) ────────────────────────────────────────────────
    let (z, xbc, dt): (&mut [f32], &mut [f32], &mut [f32]) = if t_total == 1 {
        // One token: one matmul (one parallel region), and the output row
        // [z | xBC | dt] splits in place.
        let row = grow(&mut m2.xbc, di + cd + h);
        matmul(&m.view(&l.in_proj), xn, 1, row);
        let (z, rest) = row.split_at_mut(di);
        let (xbc, dt) = rest.split_at_mut(cd);
        (z, xbc, dt)
    } else {
        // One matmul per part, so that each part's rows are contiguous.
        let z = grow(&mut m2.z, t_total * di);
        matmul(&m.view_rows(&l.in_proj, 0..di), xn, t_total, z);
        let xbc = grow(&mut m2.xbc, t_total * cd);
        matmul(&m.view_rows(&l.in_proj, di..di + cd), xn, t_total, xbc);
        let dt = grow(&mut m2.dt, t_total * h);
        let dt_rows = di + cd..di + cd + h;
        matmul(&m.view_rows(&l.in_proj, dt_rows), xn, t_total, dt);
        (z, xbc, dt)
    };
    if let Some(b) = &l.in_bias {
        let b = m.f32s(b);
        add_bias(z, &b[..di]);
        add_bias(xbc, &b[di..di + cd]);
        add_bias(dt, &b[di + cd..]);
    }
    // ── causal conv1d + SiLU over x, B and C, per sequence ────────────────────
    m.conv_segments(
        li,
        xbc,
        cd,
        (&l.conv_w, l.conv_b.as_ref()),
        segs,
        &mut s.conv_buf,
    );
    // ── the scan: dt = clamp(softplus(dt + dt_bias)), h = exp(dt·A)·h + dt·B·x,
    // y = C·h + D·x, per sequence ───────────────────────────────────────────────
    let p = Mamba2Params {
        a: m.f32s(&l.a),
        d: m.f32s(&l.d),
        dt_bias: m.f32s(&l.dt_bias),
        head_dim: c.head_dim,
        d_state: c.d_state,
        n_groups: c.n_groups,
        dt_min: c.dt_min as f32,
        dt_max: c.dt_max as f32,
    };
    let y = grow(&mut m2.y, t_total * di);
    let mut off = 0;
    for seg in segs.iter_mut() {
        let rows = off..off + seg.tokens.len();
        let inp = Mamba2Inputs {
            xbc: &xbc[rows.start * cd..rows.end * cd],
            xbc_stride: cd,
            dt: &dt[rows.start * h..rows.end * h],
            dt_stride: h,
            dt_off: 0,
        };
        mamba2_scan(
            &p,
            &inp,
            seg.state.ssm_mut(li),
            &mut y[rows.start * di..rows.end * di],
            &mut m2.scan,
        );
        off = rows.end;
    }
    // ── gated grouped RMSNorm: norm(y · SiLU(z)) ─────────────────────────────
    let yn = grow(&mut m2.yn, t_total * di);
    let (y, z, w) = (&*y, &*z, m.f32s(&l.gate_norm));
    let eps = c.norm_eps as f32;
    let rows = rows_per_task(t_total);
    pool::for_each_chunk(yn, rows * di, |i, yn| {
        let span = i * rows * di..i * rows * di + yn.len();
        gated_rmsnorm_ref(
            &y[span.clone()],
            &z[span],
            w,
            c.n_groups,
            eps,
            c.norm_before_gate,
            yn,
        );
    });
    // ── out_proj ──────────────────────────────────────────────────────────────
    let out = grow(&mut s.out, t_total * d);
    matmul(&m.view(&l.out_proj), yn, t_total, out);
    if let Some(b) = &l.out_bias {
        add_bias(out, m.f32s(b));
    }
}
