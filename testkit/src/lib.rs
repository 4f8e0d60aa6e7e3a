//! Helpers shared by every crate's tests: finding the shared data folder
//! (`../shared` beside the workspace, or `$MAMBA_SHARED`) and reading the reference
//! tensors stored there. Missing data makes a test skip loudly, except under
//! `CI=true`, where it is a failure.
#![deny(missing_docs)]

pub mod gguf;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// True under `CI=true`, where missing shared data fails a test instead of
/// skipping it.
pub fn strict() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// The shared data folder: `$MAMBA_SHARED`, else `<workspace>/../shared`, if it
/// holds `fixtures/`. When it does not, prints a loud `SKIPPED` line and returns
/// `None` so the caller can skip; under `CI=true` it panics instead.
pub fn shared_dir() -> Option<PathBuf> {
    let dir = match std::env::var_os("MAMBA_SHARED") {
        Some(d) => PathBuf::from(d),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared"),
    };
    if dir.join("fixtures").is_dir() {
        return Some(dir);
    }
    missing(&dir)
}

/// `rel` inside the shared folder if it exists; otherwise skips loudly (`None`),
/// or panics under `CI=true`.
pub fn shared_path(rel: &str) -> Option<PathBuf> {
    let p = shared_dir()?.join(rel);
    if p.exists() {
        Some(p)
    } else {
        missing(&p)
    }
}

fn missing<T>(path: &Path) -> Option<T> {
    if strict() {
        panic!(
            "shared data not found at {} (set MAMBA_SHARED); required under CI=true",
            path.display()
        );
    }
    eprintln!(
        "SKIPPED: shared data not found at {} (set MAMBA_SHARED)",
        path.display()
    );
    None
}

/// A tensor read from a reference `.safetensors` file.
#[derive(Clone, Debug)]
pub struct RefTensor {
    /// Shape.
    pub shape: Vec<usize>,
    /// Values as f64 (exact for f32, f64 and the i64 token ids stored there).
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

/// Every tensor of a reference `.safetensors` file (F32, F64 or I64; anything else
/// panics, as does an unreadable file).
pub fn read_reference(path: &Path) -> HashMap<String, RefTensor> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let st = safetensors::SafeTensors::deserialize(&bytes)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    st.tensors()
        .into_iter()
        .map(|(name, view)| {
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
            let shape = view.shape().to_vec();
            (name, RefTensor { shape, data })
        })
        .collect()
}
