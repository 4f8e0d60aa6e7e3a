//! What a conversion did: [`Summary`], [`TensorReport`], and the table the CLI prints.

use std::fmt::Write as _;
use std::path::PathBuf;

pub use mamba_files::human_bytes;
use mamba_format::QuantType;

use crate::preset::{Preset, TensorClass};

/// One written tensor.
#[derive(Clone, Debug, PartialEq)]
pub struct TensorReport {
    /// Standard name (`layers.0.mixer.in_proj.weight`).
    pub name: String,
    /// Shape, outermost first.
    pub shape: Vec<u64>,
    /// The type the preset asked for.
    pub requested: QuantType,
    /// The type written (differs from `requested` after a fallback).
    pub chosen: QuantType,
    /// True when the row length forced a different type (see [`crate::preset`]).
    pub fallback: bool,
    /// Largest |dequantized − source| over the tensor (0 for f32).
    pub max_abs_err: f32,
    /// Root-mean-square of dequantized − source (0 for f32).
    pub rms_err: f32,
    /// Bytes of tensor data in the file.
    pub bytes: u64,
}

impl TensorReport {
    /// Number of elements.
    pub fn n_elements(&self) -> u64 {
        self.shape.iter().product()
    }
}

/// The result of a successful [`crate::convert`].
#[derive(Clone, Debug)]
pub struct Summary {
    /// Every tensor, in file order.
    pub tensors: Vec<TensorReport>,
    /// The output file.
    pub output: PathBuf,
    /// Size of the output file in bytes.
    pub file_bytes: u64,
    /// Number of weights written (a tied embedding counts once).
    pub n_params: u64,
    /// Wall-clock seconds for the whole conversion.
    pub seconds: f64,
    /// The preset used.
    pub preset: Preset,
    /// `general.source_format` of the file.
    pub source_format: &'static str,
    /// Warnings (no tokenizer, an ignored `lm_head` that differs from the embedding,
    /// unused checkpoint tensors, fallbacks); also printed live when
    /// [`crate::ConvertOptions::progress`] is set.
    pub warnings: Vec<String>,
}

impl Summary {
    /// Bytes of tensor data (the file minus header, metadata, index and padding).
    pub fn tensor_bytes(&self) -> u64 {
        self.tensors.iter().map(|t| t.bytes).sum()
    }

    /// Storage cost of the weights: tensor data bits per parameter.
    pub fn bits_per_weight(&self) -> f64 {
        self.tensor_bytes() as f64 * 8.0 / self.n_params.max(1) as f64
    }

    /// The tensors that fell back to another type.
    pub fn fallbacks(&self) -> impl Iterator<Item = &TensorReport> {
        self.tensors.iter().filter(|t| t.fallback)
    }

    /// A table per tensor class (type(s) written, max abs and RMS error, fallbacks),
    /// then totals; `peak_rss` (bytes) is added when known. Ends with a newline.
    pub fn table(&self, peak_rss: Option<u64>) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "{:<12} {:>7} {:<22} {:>11} {:>11}  fallback",
            "class", "tensors", "type(s)", "max |err|", "rms err"
        );
        for class in TensorClass::ALL {
            let ts: Vec<&TensorReport> = self
                .tensors
                .iter()
                .filter(|t| TensorClass::of(&t.name) == class)
                .collect();
            if ts.is_empty() {
                continue;
            }
            let mut types: Vec<QuantType> = ts.iter().map(|t| t.chosen).collect();
            types.sort();
            types.dedup();
            let types = types
                .iter()
                .map(|&ty| {
                    let n = ts.iter().filter(|t| t.chosen == ty).count();
                    if n == ts.len() {
                        ty.name().to_string()
                    } else {
                        format!("{}×{n}", ty.name())
                    }
                })
                .collect::<Vec<_>>()
                .join(" ");
            let max = ts.iter().map(|t| t.max_abs_err).fold(0f32, f32::max);
            let (sq, n) = ts.iter().fold((0f64, 0u64), |(sq, n), t| {
                (
                    sq + (t.rms_err as f64).powi(2) * t.n_elements() as f64,
                    n + t.n_elements(),
                )
            });
            let rms = (sq / n.max(1) as f64).sqrt();
            let mut pairs: Vec<(QuantType, QuantType)> = ts
                .iter()
                .filter(|t| t.fallback)
                .map(|t| (t.requested, t.chosen))
                .collect();
            let n_fallback = pairs.len();
            pairs.sort();
            pairs.dedup();
            let fb = if n_fallback == 0 {
                "-".to_string()
            } else {
                let pairs: Vec<String> = pairs.iter().map(|(r, c)| format!("{r}→{c}")).collect();
                format!("{n_fallback} ({})", pairs.join(", "))
            };
            let _ = writeln!(
                s,
                "{:<12} {:>7} {:<22} {:>11.3e} {:>11.3e}  {}",
                class.label(),
                ts.len(),
                types,
                max,
                rms,
                fb
            );
        }
        let _ = write!(
            s,
            "{}: {} ({} bytes), {:.2} M parameters, {:.3} bits/weight ({}), {:.2} s",
            self.output.display(),
            human_bytes(self.file_bytes),
            self.file_bytes,
            self.n_params as f64 / 1e6,
            self.bits_per_weight(),
            self.preset,
            self.seconds
        );
        if let Some(rss) = peak_rss {
            let _ = write!(s, ", peak RSS {}", human_bytes(rss));
        }
        s.push('\n');
        s
    }
}

/// The process's peak resident set size in bytes (`VmHWM` in `/proc/self/status`);
/// `None` where that file does not exist (non-Linux).
pub fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line
        .trim_start_matches("VmHWM:")
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kb * 1024)
}
