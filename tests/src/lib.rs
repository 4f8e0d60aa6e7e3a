//! Shared helpers of the end-to-end tests: finding `../shared`, reading reference
//! tensors, converting fixtures.
#![deny(missing_docs)]

use std::path::{Path, PathBuf};

/// The shared data folder: `$MAMBA_SHARED`, else `<workspace>/../shared`.
///
/// When it is absent, returns `None` after a loud message, so the calling test can
/// skip — except under `CI=true`, where missing data is a failure.
pub fn shared_dir() -> Option<PathBuf> {
    let dir = match std::env::var_os("MAMBA_SHARED") {
        Some(d) => PathBuf::from(d),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared"),
    };
    if dir.join("fixtures").is_dir() {
        return Some(dir);
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!(
            "shared data not found at {} (set MAMBA_SHARED); required under CI=true",
            dir.display()
        );
    }
    eprintln!(
        "SKIPPED: shared data not found at {} (set MAMBA_SHARED)",
        dir.display()
    );
    None
}

/// A tensor read from a reference `.safetensors` file, as f32 or i64 values.
pub struct RefTensor {
    /// Shape.
    pub shape: Vec<usize>,
    /// Values as f64 (exact for f32 and for the i64 token ids used here).
    pub data: Vec<f64>,
}

impl RefTensor {
    /// Values as u32 token ids.
    pub fn ids(&self) -> Vec<u32> {
        self.data.iter().map(|&v| v as u32).collect()
    }
    /// Values as f32.
    pub fn f32s(&self) -> Vec<f32> {
        self.data.iter().map(|&v| v as f32).collect()
    }
}

/// Reads the tensors of a reference file.
pub fn read_reference(path: &Path) -> std::collections::HashMap<String, RefTensor> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let st = safetensors::SafeTensors::deserialize(&bytes).expect("valid reference file");
    let mut out = std::collections::HashMap::new();
    for (name, view) in st.tensors() {
        let raw = view.data();
        let data: Vec<f64> = match view.dtype() {
            safetensors::Dtype::F32 => raw
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes(c.try_into().unwrap()) as f64)
                .collect(),
            safetensors::Dtype::F64 => raw
                .chunks_exact(8)
                .map(|c| f64::from_le_bytes(c.try_into().unwrap()))
                .collect(),
            safetensors::Dtype::I64 => raw
                .chunks_exact(8)
                .map(|c| i64::from_le_bytes(c.try_into().unwrap()) as f64)
                .collect(),
            d => panic!("unexpected dtype {d:?} in {}", path.display()),
        };
        out.insert(
            name.to_string(),
            RefTensor {
                shape: view.shape().to_vec(),
                data,
            },
        );
    }
    out
}

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
