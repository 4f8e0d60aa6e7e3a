//! The norms of the Mamba-2 and Falcon-Mamba blocks.
//!
//! - [`gated_rmsnorm_ref`]: Mamba-2's gated, grouped RMSNorm after the scan,
//!   transformers `MambaRMSNormGated` (`modeling_mamba2.py`, with `group_size =
//!   d_inner / n_groups`): `v = y·silu(z)`, each group of `v` scaled by
//!   `1/sqrt(mean(v²) + eps)`, times the weight. mamba_ssm's `RMSNormGated` with
//!   `norm_before_gate=True` gates after the norm instead:
//!   `w·rmsnorm_grouped(y)·silu(z)`.
//! - [`rms_normalize`]: Falcon-Mamba's weightless RMS norm of dt, B and C
//!   (transformers `modeling_falcon_mamba.py`, `rms_forward`).
//!
//! Sums of squares are in f64, as in [`super::norm::rmsnorm`].

use super::act::silu;

/// `1/sqrt(mean(v²) + eps)` of one group, the mean summed in f64.
fn inv_rms(v: impl Iterator<Item = f32>, len: usize, eps: f32) -> f32 {
    let ss: f64 = v.map(|x| (x as f64) * (x as f64)).sum();
    1.0 / ((ss / len as f64) as f32 + eps).sqrt()
}

/// Gated grouped RMSNorm of `T` rows: `y, z, out: (T, d_inner)`, `w: (d_inner)`,
/// `n_groups` dividing `d_inner`. With `norm_before_gate = false` (transformers,
/// and Mamba-2's default): `out = w · norm_g(y·silu(z))`; with `true`:
/// `out = w · norm_g(y) · silu(z)`, where `norm_g` scales each group of
/// `d_inner / n_groups` values by its `1/sqrt(mean(v²) + eps)`.
pub fn gated_rmsnorm_ref(
    y: &[f32],
    z: &[f32],
    w: &[f32],
    n_groups: usize,
    eps: f32,
    norm_before_gate: bool,
    out: &mut [f32],
) {
    let d = w.len();
    assert!(
        n_groups > 0 && d.is_multiple_of(n_groups),
        "gated rmsnorm: n_groups must divide d_inner"
    );
    assert!(
        y.len().is_multiple_of(d.max(1)) && z.len() == y.len() && out.len() == y.len(),
        "gated rmsnorm: shapes"
    );
    let gs = d / n_groups;
    if gs == 0 {
        return;
    }
    for ((yg, zg), (og, wg)) in y
        .chunks_exact(gs)
        .zip(z.chunks_exact(gs))
        .zip(out.chunks_exact_mut(gs).zip(w.chunks_exact(gs).cycle()))
    {
        if norm_before_gate {
            let s = inv_rms(yg.iter().copied(), gs, eps);
            for (((o, &yv), &zv), &g) in og.iter_mut().zip(yg).zip(zg).zip(wg) {
                *o = g * (yv * s) * silu(zv);
            }
        } else {
            for ((o, &yv), &zv) in og.iter_mut().zip(yg).zip(zg) {
                *o = yv * silu(zv);
            }
            let s = inv_rms(og.iter().copied(), gs, eps);
            for (o, &g) in og.iter_mut().zip(wg) {
                *o = g * (*o * s);
            }
        }
    }
}

/// Scales each `width`-long row of `x` in place by `1/sqrt(mean(x²) + eps)`: the
/// weightless RMS norm Falcon-Mamba applies to dt, B and C.
pub fn rms_normalize(x: &mut [f32], width: usize, eps: f32) {
    assert!(
        width > 0 && x.len().is_multiple_of(width),
        "rms_normalize: rows of width"
    );
    for row in x.chunks_exact_mut(width) {
        let s = inv_rms(row.iter().copied(), width, eps);
        row.iter_mut().for_each(|v| *v *= s);
    }
}
