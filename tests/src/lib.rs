//! Shared helpers of the end-to-end tests: finding `../shared`, reading reference
//! tensors, converting fixtures.
#![deny(missing_docs)]

use std::path::Path;

pub use mamba_testkit::{read_reference, shared_dir, RefTensor};

/// Converts a checkpoint folder to `out` with the given preset name (`"f32"`, `"q8_0"`, ...).
pub fn convert_dir(input: &Path, out: &Path, preset: &str) {
    let opts = mamba_convert::ConvertOptions {
        input: mamba_convert::Input::Dir(input.to_path_buf()),
        output: out.to_path_buf(),
        preset: preset.parse().expect("known preset"),
        force: true,
        tokenizer: None,
        progress: false,
    };
    mamba_convert::convert(&opts).unwrap_or_else(|e| panic!("converting {}: {e}", input.display()));
}

/// Largest absolute difference, and the standard deviation of `reference`.
pub fn max_abs_diff(got: &[f32], reference: &[f32]) -> (f32, f32) {
    assert_eq!(got.len(), reference.len(), "length mismatch");
    let max = got
        .iter()
        .zip(reference)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    let n = reference.len() as f64;
    let mean = reference.iter().map(|&v| v as f64).sum::<f64>() / n;
    let var = reference
        .iter()
        .map(|&v| (v as f64 - mean).powi(2))
        .sum::<f64>()
        / n;
    (max, var.sqrt() as f32)
}

/// `-log_softmax(row)[target]` in nats, computed in f64.
pub fn nll(row: &[f32], target: u32) -> f64 {
    let max = row.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b)) as f64;
    let lse = max
        + row
            .iter()
            .map(|&x| (x as f64 - max).exp())
            .sum::<f64>()
            .ln();
    lse - row[target as usize] as f64
}
