//! RMSNorm, as `MambaRMSNorm` in transformers: `w * x / sqrt(mean(x²) + eps)`.

/// Normalises each row of `x` (`rows × w.len()`) into `out`.
pub fn rmsnorm(x: &[f32], w: &[f32], eps: f32, out: &mut [f32]) {
    let d = w.len();
    for (xr, or) in x.chunks_exact(d).zip(out.chunks_exact_mut(d)) {
        // Sum in f64: the reference sums in f32 with pairwise/tree order we cannot
        // reproduce exactly; f64 keeps our error well below either.
        let ss: f64 = xr.iter().map(|&v| (v as f64) * (v as f64)).sum();
        let scale = 1.0 / ((ss / d as f64) as f32 + eps).sqrt();
        for ((o, &v), &g) in or.iter_mut().zip(xr).zip(w) {
            *o = g * (v * scale);
        }
    }
}
