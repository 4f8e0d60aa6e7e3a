//! What a conversion did ([`Summary`], [`TensorReport`]) or would do ([`DryRun`],
//! [`PlannedTensor`]), and the tables the CLI prints.

use std::fmt::Write as _;
use std::path::PathBuf;

pub use mamba_files::human_bytes;
use mamba_format::{Architecture, ModelConfig, QuantType};

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
    /// The architecture and hyper-parameters written.
    pub model: ModelConfig,
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
    /// `general.quantization` as written: the preset's name, or a GGUF file's own mix
    /// when its tensors were kept as stored.
    pub quantization: String,
    /// `general.source_format` of the file.
    pub source_format: &'static str,
    /// Warnings (no tokenizer, an ignored `lm_head` that differs from the embedding,
    /// unused checkpoint tensors, fallbacks); also printed live when
    /// [`crate::ConvertOptions::progress`] is set.
    pub warnings: Vec<String>,
}

impl Summary {
    /// The architecture written.
    pub fn architecture(&self) -> Architecture {
        self.model.architecture()
    }

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

    /// The architecture and its shape on one line, a table per tensor class (type(s)
    /// written, max abs and RMS error, fallbacks), then totals; `peak_rss` (bytes) is
    /// added when known. Ends with a newline.
    pub fn table(&self, peak_rss: Option<u64>) -> String {
        let lines: Vec<Line<'_>> = self
            .tensors
            .iter()
            .map(|t| Line {
                name: &t.name,
                requested: t.requested,
                chosen: t.chosen,
                fallback: t.fallback,
                n_elements: t.n_elements(),
                err: Some((t.max_abs_err, t.rms_err)),
            })
            .collect();
        let mut s = format!("{}\n", describe_model(&self.model));
        class_table(&mut s, &lines);
        let _ = write!(
            s,
            "{}: {} ({} bytes), {:.2} M parameters, {:.3} bits/weight ({}), {:.2} s",
            self.output.display(),
            human_bytes(self.file_bytes),
            self.file_bytes,
            self.n_params as f64 / 1e6,
            self.bits_per_weight(),
            self.quantization,
            self.seconds
        );
        if let Some(rss) = peak_rss {
            let _ = write!(s, ", peak RSS {}", human_bytes(rss));
        }
        s.push('\n');
        s
    }
}

/// One tensor a dry run would write.
#[derive(Clone, Debug, PartialEq)]
pub struct PlannedTensor {
    /// Standard name (`layers.0.mixer.in_proj.weight`).
    pub name: String,
    /// Shape, outermost first.
    pub shape: Vec<u64>,
    /// The type the preset asks for.
    pub requested: QuantType,
    /// The type that would be written (differs from `requested` after a fallback).
    pub chosen: QuantType,
    /// True when the row length forces a different type (see [`crate::preset`]).
    pub fallback: bool,
    /// Bytes of tensor data it would take.
    pub bytes: u64,
}

impl PlannedTensor {
    /// Number of elements.
    pub fn n_elements(&self) -> u64 {
        self.shape.iter().product()
    }
}

/// What a conversion would write: the result of [`crate::dry_run`].
#[derive(Clone, Debug)]
pub struct DryRun {
    /// The architecture and hyper-parameters that would be written.
    pub model: ModelConfig,
    /// Every tensor, in file order.
    pub tensors: Vec<PlannedTensor>,
    /// Number of weights (a tied embedding counts once).
    pub n_params: u64,
    /// The preset.
    pub preset: Preset,
    /// `general.quantization` the file would have (see [`Summary::quantization`]).
    pub quantization: String,
    /// `general.source_format` the file would have.
    pub source_format: &'static str,
    /// The warnings the conversion would give before writing (no tokenizer, unused
    /// checkpoint tensors, fallbacks).
    pub warnings: Vec<String>,
}

impl DryRun {
    /// The architecture that would be written.
    pub fn architecture(&self) -> Architecture {
        self.model.architecture()
    }

    /// Bytes of tensor data the file would hold (header, metadata and index come on
    /// top).
    pub fn tensor_bytes(&self) -> u64 {
        self.tensors.iter().map(|t| t.bytes).sum()
    }

    /// The architecture and its shape on one line, a table per tensor class (type(s),
    /// fallbacks; no errors, nothing having been quantized), then totals. Ends with a
    /// newline.
    pub fn table(&self) -> String {
        let lines: Vec<Line<'_>> = self
            .tensors
            .iter()
            .map(|t| Line {
                name: &t.name,
                requested: t.requested,
                chosen: t.chosen,
                fallback: t.fallback,
                n_elements: t.n_elements(),
                err: None,
            })
            .collect();
        let mut s = format!("{}\n", describe_model(&self.model));
        class_table(&mut s, &lines);
        let bytes = self.tensor_bytes();
        let _ = writeln!(
            s,
            "dry run ({}), nothing written: {} of tensor data ({} bytes), {:.2} M parameters, \
             {:.3} bits/weight ({})",
            self.source_format,
            human_bytes(bytes),
            bytes,
            self.n_params as f64 / 1e6,
            bytes as f64 * 8.0 / self.n_params.max(1) as f64,
            self.quantization,
        );
        s
    }
}

/// The architecture name and the shape that matters for running it, on one line:
/// `mamba2: d_model 768, 24 layers, 24 heads × 64, 1 group, d_state 128, ...`.
pub fn describe_model(model: &ModelConfig) -> String {
    let tied = |t: bool| if t { "tied" } else { "untied" };
    match model {
        ModelConfig::Mamba(c) => {
            let mut s = format!(
                "{}: d_model {}, {} layers, d_inner {}, d_state {}, d_conv {}, dt_rank {}, \
                 vocab {} ({}), eps {:e}",
                c.architecture(),
                c.d_model,
                c.n_layer,
                c.d_inner,
                c.d_state,
                c.d_conv,
                c.dt_rank,
                c.vocab_size,
                tied(c.tie_embeddings),
                c.rms_norm_eps
            );
            if let Some(eps) = c.mixer_rms_eps {
                let _ = write!(s, ", dt/B/C norm eps {eps:e}");
            }
            s
        }
        ModelConfig::Mamba2(c) => format!(
            "{}: d_model {}, {} layers, {} heads × {}, {} group{}, d_state {}, d_conv {}, \
             chunk {}, vocab {} ({}), eps {:e}, dt in [{}, {}]",
            Architecture::Mamba2,
            c.d_model,
            c.n_layer,
            c.n_heads,
            c.head_dim,
            c.n_groups,
            if c.n_groups == 1 { "" } else { "s" },
            c.d_state,
            c.d_conv,
            c.chunk_size,
            c.vocab_size,
            tied(c.tie_embeddings),
            c.rms_norm_eps,
            c.dt_min,
            c.dt_max
        ),
    }
}

/// One row of a class table: a written or a planned tensor.
struct Line<'a> {
    name: &'a str,
    requested: QuantType,
    chosen: QuantType,
    fallback: bool,
    n_elements: u64,
    /// Max abs and RMS quantization error, once quantized.
    err: Option<(f32, f32)>,
}

/// A row per tensor class present: count, type(s), errors, fallbacks.
fn class_table(s: &mut String, lines: &[Line<'_>]) {
    let _ = writeln!(
        s,
        "{:<12} {:>7} {:<22} {:>11} {:>11}  fallback",
        "class", "tensors", "type(s)", "max |err|", "rms err"
    );
    for class in TensorClass::ALL {
        let ts: Vec<&Line<'_>> = lines
            .iter()
            .filter(|t| TensorClass::of(t.name) == class)
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
        let (max, rms) = if ts.iter().all(|t| t.err.is_some()) {
            let errs = ts.iter().filter_map(|t| t.err.map(|e| (e, t.n_elements)));
            let (max, sq, n) = errs.fold((0f32, 0f64, 0u64), |(m, sq, n), ((max, rms), k)| {
                (m.max(max), sq + (rms as f64).powi(2) * k as f64, n + k)
            });
            (
                format!("{max:.3e}"),
                format!("{:.3e}", (sq / n.max(1) as f64).sqrt()),
            )
        } else {
            ("-".into(), "-".into())
        };
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
            "{:<12} {:>7} {:<22} {:>11} {:>11}  {}",
            class.label(),
            ts.len(),
            types,
            max,
            rms,
            fb
        );
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
