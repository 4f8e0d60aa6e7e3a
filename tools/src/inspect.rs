//! `mamba-inspect`: what is in a `.mbin` file (header, metadata, chat template,
//! tensor table, totals), and with `--verify` whether all of it is intact (every checksum and
//! padding byte, and the architecture rules of SPEC.md §5).
//!
//! [`Report::new`] builds the report from the file's bytes; [`Report::text`] and the
//! `Serialize` impl render the same content as text or as one JSON object.

use anyhow::{bail, Context, Result};
use clap::Parser;
use mamba_format::arch::KEY_CHAT_TEMPLATE;
use mamba_format::{Array, FormatError, MbinFile, ModelConfig, Value};
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::PathBuf;

/// Longest string value shown in full; longer ones (the tokenizer) are shown by size.
pub const MAX_SHOWN_STRING: usize = 80;
/// Longest array shown element by element; longer ones are shown by length.
pub const MAX_SHOWN_ARRAY: usize = 16;

/// Command line of `mamba-inspect`.
#[derive(Parser, Debug, Clone)]
#[command(
    name = "mamba-inspect",
    version,
    about = "Show the header, metadata and tensors of a .mbin model file",
    after_help = "Exit status: 0 if the file is valid (and, with --verify, intact); \
                  1 with one `error: ...` line on stderr otherwise."
)]
pub struct InspectArgs {
    /// Model file (.mbin).
    pub model: PathBuf,
    /// Also check every tensor checksum, the padding between tensors and the
    /// architecture rules, then load the model as the runtime does and check what it
    /// loads: every tensor value finite (after dequantization), the embedded
    /// tokenizer valid and its ids below the vocabulary size (reads the whole file).
    #[arg(long)]
    pub verify: bool,
    /// Print the report as one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Runs `mamba-inspect`: prints the report, then fails if `--verify` found problems.
pub fn run(args: &InspectArgs) -> Result<()> {
    let storage = mamba_runtime::loader::Storage::map(&args.model)?;
    let file =
        MbinFile::parse(storage.bytes()).with_context(|| args.model.display().to_string())?;
    let mut report = Report::new(&file, args.verify);
    if let Some(v) = report.verify.as_mut().filter(|v| v.config.is_some()) {
        v.problems
            .extend(crate::inspect_content::content_problems(&args.model, &file));
        v.ok = v.problems.is_empty();
    }
    let out = if args.json {
        serde_json::to_string_pretty(&report)? + "\n"
    } else {
        report.text(&args.model.display().to_string())
    };
    if let Err(e) = std::io::stdout().lock().write_all(out.as_bytes()) {
        if e.kind() != std::io::ErrorKind::BrokenPipe {
            return Err(e).context("writing to stdout");
        }
    }
    if let Some(v) = &report.verify {
        if !v.problems.is_empty() {
            bail!(
                "{}: verification failed, {} problem(s): {}",
                args.model.display(),
                v.problems.len(),
                v.problems.join("; ")
            );
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// The report
// ---------------------------------------------------------------------------

/// Everything `mamba-inspect` prints.
#[derive(Debug, Serialize)]
pub struct Report {
    /// The header fields.
    pub header: HeaderInfo,
    /// The metadata entries, in file order.
    pub metadata: Vec<MetadataEntry>,
    /// The chat template (`tokenizer.chat_template`), summarized; `None` when the
    /// file has none (or one that is not a string, which `--verify` reports).
    pub chat_template: Option<ChatTemplateInfo>,
    /// The tensor index, in file order.
    pub tensors: Vec<TensorRow>,
    /// Sums over the tensors.
    pub totals: Totals,
    /// The result of `--verify`, if it was asked for.
    pub verify: Option<Verification>,
}

/// The header, as stored.
#[derive(Debug, Serialize)]
pub struct HeaderInfo {
    /// Format version.
    pub version: u32,
    /// File length in bytes.
    pub file_size: u64,
    /// Alignment of the data section and of each tensor.
    pub alignment: u64,
    /// Number of metadata entries.
    pub n_metadata: u64,
    /// Offset of the metadata section.
    pub metadata_offset: u64,
    /// Length of the metadata section.
    pub metadata_size: u64,
    /// Number of tensors.
    pub n_tensors: u64,
    /// Offset of the tensor index.
    pub index_offset: u64,
    /// Length of the tensor index.
    pub index_size: u64,
    /// Offset of the tensor data.
    pub data_offset: u64,
    /// Length of the tensor data.
    pub data_size: u64,
    /// XXH3-64 of the metadata, hex.
    pub metadata_checksum: String,
    /// XXH3-64 of the index, hex.
    pub index_checksum: String,
}

/// One metadata entry. Scalars and short strings and arrays carry their `value`;
/// long strings carry only `bytes`, long arrays only `len`.
#[derive(Debug, Serialize)]
pub struct MetadataEntry {
    /// Key.
    pub key: String,
    /// Value type: `u32` … `string`, or `array<T>`.
    #[serde(rename = "type")]
    pub ty: String,
    /// The value, when short enough to show.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<serde_json::Value>,
    /// Length in bytes of a string value.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bytes: Option<u64>,
    /// Number of elements of an array value.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub len: Option<u64>,
}

/// A chat template, summarized: the whole Jinja source is long and belongs to the
/// server, what a reader of the report needs is whether there is one and which.
#[derive(Debug, Serialize)]
pub struct ChatTemplateInfo {
    /// Its length in bytes.
    pub bytes: u64,
    /// Its first line that is not blank, trimmed, cut to [`MAX_SHOWN_STRING`]
    /// characters (`…` marks a cut): templates often start with a blank line, which
    /// would say nothing about them.
    pub first_line: String,
}

impl ChatTemplateInfo {
    /// The summary of `template`.
    pub fn new(template: &str) -> ChatTemplateInfo {
        let line = template
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty())
            .unwrap_or("");
        let mut first_line: String = line.chars().take(MAX_SHOWN_STRING).collect();
        if first_line.len() < line.len() {
            first_line.push('…');
        }
        ChatTemplateInfo {
            bytes: template.len() as u64,
            first_line,
        }
    }
}

/// One row of the tensor table.
#[derive(Debug, Serialize)]
pub struct TensorRow {
    /// Name.
    pub name: String,
    /// Type name (`q8_0`).
    #[serde(rename = "type")]
    pub ty: &'static str,
    /// Dimensions, outermost first.
    pub shape: Vec<u64>,
    /// Number of elements.
    pub parameters: u64,
    /// Stored bytes.
    pub bytes: u64,
    /// Absolute file offset of the first byte.
    pub file_offset: u64,
    /// Storage cost of the type, block overhead included.
    pub bits_per_weight: f64,
}

/// Sums over all tensors and per type.
#[derive(Debug, Serialize)]
pub struct Totals {
    /// Number of tensors.
    pub tensors: u64,
    /// Number of elements.
    pub parameters: u64,
    /// Tensor data bytes (padding excluded).
    pub bytes: u64,
    /// `bytes * 8 / parameters` (0 without tensors).
    pub bits_per_weight: f64,
    /// Per type, in type-id order.
    pub per_type: Vec<TypeTotal>,
}

/// Sums over the tensors of one type.
#[derive(Debug, Serialize)]
pub struct TypeTotal {
    /// Type name.
    #[serde(rename = "type")]
    pub ty: &'static str,
    /// Number of tensors.
    pub tensors: u64,
    /// Number of elements.
    pub parameters: u64,
    /// Stored bytes.
    pub bytes: u64,
}

/// What `--verify` found.
#[derive(Debug, Serialize)]
pub struct Verification {
    /// True when nothing is wrong.
    pub ok: bool,
    /// One line per problem.
    pub problems: Vec<String>,
    /// Tensors whose data or following padding is damaged, in file order.
    pub failed_tensors: Vec<String>,
    /// The architecture and hyper-parameters, when the file passes
    /// `ModelConfig::from_file`.
    pub config: Option<BTreeMap<String, serde_json::Value>>,
}

impl Report {
    /// Builds the report of a parsed file; with `verify`, reads every tensor.
    pub fn new(file: &MbinFile<'_>, verify: bool) -> Report {
        let h = &file.header;
        let header = HeaderInfo {
            version: mamba_format::header::VERSION,
            file_size: file.bytes().len() as u64,
            alignment: mamba_format::header::ALIGNMENT,
            n_metadata: h.n_metadata,
            metadata_offset: h.metadata_offset,
            metadata_size: h.metadata_size,
            n_tensors: h.n_tensors,
            index_offset: h.index_offset,
            index_size: h.index_size,
            data_offset: h.data_offset,
            data_size: h.data_size,
            metadata_checksum: format!("{:016x}", h.metadata_checksum),
            index_checksum: format!("{:016x}", h.index_checksum),
        };
        let metadata = file
            .metadata
            .iter()
            .map(|(k, v)| MetadataEntry::new(k, v))
            .collect();
        let chat_template = file
            .metadata
            .get(KEY_CHAT_TEMPLATE)
            .and_then(Value::as_str)
            .map(ChatTemplateInfo::new);
        let tensors: Vec<TensorRow> = file
            .tensors
            .iter()
            .map(|t| TensorRow {
                name: t.name.clone(),
                ty: t.ty.name(),
                shape: t.shape.clone(),
                parameters: t.n_elements(),
                bytes: t.size,
                file_offset: file.tensor_file_offset(t),
                bits_per_weight: t.ty.bits_per_weight(),
            })
            .collect();
        let totals = Totals::new(file);
        let verify = verify.then(|| Verification::new(file));
        Report {
            header,
            metadata,
            chat_template,
            tensors,
            totals,
            verify,
        }
    }

    /// The report as aligned text.
    pub fn text(&self, path: &str) -> String {
        let h = &self.header;
        let mut s = String::new();
        let _ = writeln!(s, "file      {path} ({} bytes)", h.file_size);
        let _ = writeln!(
            s,
            "format    .mbin v{}, little-endian, alignment {}",
            h.version, h.alignment
        );
        let _ = writeln!(s, "header    0..128");
        let _ = writeln!(
            s,
            "metadata  {}..{} ({} bytes, {} entries, xxh3 {})",
            h.metadata_offset,
            h.metadata_offset + h.metadata_size,
            h.metadata_size,
            h.n_metadata,
            h.metadata_checksum
        );
        let _ = writeln!(
            s,
            "index     {}..{} ({} bytes, {} tensors, xxh3 {})",
            h.index_offset,
            h.index_offset + h.index_size,
            h.index_size,
            h.n_tensors,
            h.index_checksum
        );
        let _ = writeln!(
            s,
            "data      {}..{} ({} bytes)",
            h.data_offset,
            h.data_offset + h.data_size,
            h.data_size
        );

        let _ = writeln!(s, "\nmetadata ({})", self.metadata.len());
        let kw = self.metadata.iter().map(|m| m.key.len()).max().unwrap_or(0);
        let tw = self.metadata.iter().map(|m| m.ty.len()).max().unwrap_or(0);
        for m in &self.metadata {
            let _ = writeln!(s, "  {:kw$}  {:tw$}  {}", m.key, m.ty, m.shown());
        }

        let _ = writeln!(s, "\nchat template");
        match &self.chat_template {
            // Quoted and escaped as JSON, like the metadata strings: the line is the
            // file's text, and a control character in it must not reach the terminal.
            Some(c) => {
                let _ = writeln!(
                    s,
                    "  {} bytes, first line {}",
                    c.bytes,
                    serde_json::Value::from(c.first_line.as_str())
                );
            }
            None => {
                let _ = writeln!(s, "  none");
            }
        }

        let _ = writeln!(s, "\ntensors ({})", self.tensors.len());
        let shapes: Vec<String> = self
            .tensors
            .iter()
            .map(|t| format!("{:?}", t.shape))
            .collect();
        let head = [
            "name",
            "type",
            "shape",
            "parameters",
            "bytes",
            "bits/weight",
        ];
        let rows: Vec<[String; 6]> = self
            .tensors
            .iter()
            .zip(&shapes)
            .map(|(t, shape)| {
                [
                    t.name.clone(),
                    t.ty.to_string(),
                    shape.clone(),
                    t.parameters.to_string(),
                    t.bytes.to_string(),
                    format!("{:.4}", t.bits_per_weight),
                ]
            })
            .collect();
        table(&mut s, head, &rows);

        let t = &self.totals;
        let _ = writeln!(s, "\ntotals");
        let _ = writeln!(
            s,
            "  {} tensors, {} parameters, {} bytes, {:.4} bits/weight",
            t.tensors, t.parameters, t.bytes, t.bits_per_weight
        );
        let rows: Vec<[String; 4]> = t
            .per_type
            .iter()
            .map(|p| {
                [
                    p.ty.to_string(),
                    p.tensors.to_string(),
                    p.parameters.to_string(),
                    p.bytes.to_string(),
                ]
            })
            .collect();
        table(&mut s, ["type", "tensors", "parameters", "bytes"], &rows);

        if let Some(v) = &self.verify {
            let _ = writeln!(s, "\nverify");
            if v.ok {
                let _ = writeln!(
                    s,
                    "  ok: every checksum, the padding, the architecture rules, finite values, the tokenizer"
                );
            }
            for p in &v.problems {
                let _ = writeln!(s, "  FAIL {p}");
            }
            if let Some(c) = &v.config {
                let kv: Vec<String> = c.iter().map(|(k, v)| format!("{k}={v}")).collect();
                let _ = writeln!(s, "  config {}", kv.join(" "));
            }
        }
        s
    }
}

/// Appends a left-aligned table with a header row; numbers are right-aligned.
fn table<const N: usize>(s: &mut String, head: [&str; N], rows: &[[String; N]]) {
    let mut w = head.map(str::len);
    for r in rows {
        for (w, c) in w.iter_mut().zip(r) {
            *w = (*w).max(c.len());
        }
    }
    let line = |s: &mut String, cells: [&str; N]| {
        let mut l = String::from(" ");
        for (i, c) in cells.iter().enumerate() {
            let numeric = i > 0 && c.parse::<f64>().is_ok();
            let _ = if numeric {
                write!(l, " {c:>w$}", w = w[i])
            } else {
                write!(l, " {c:<w$}", w = w[i])
            };
        }
        let _ = writeln!(s, "{}", l.trim_end());
    };
    line(s, head);
    for r in rows {
        line(s, std::array::from_fn(|i| r[i].as_str()));
    }
}

impl MetadataEntry {
    fn new(key: &str, v: &Value) -> MetadataEntry {
        use serde_json::json;
        let scalar = |ty: &str, value: serde_json::Value| MetadataEntry {
            key: key.to_string(),
            ty: ty.to_string(),
            value: Some(value),
            bytes: None,
            len: None,
        };
        match v {
            Value::U32(x) => scalar("u32", json!(x)),
            Value::I32(x) => scalar("i32", json!(x)),
            Value::U64(x) => scalar("u64", json!(x)),
            Value::I64(x) => scalar("i64", json!(x)),
            Value::F32(x) => scalar("f32", float(*x as f64)),
            Value::F64(x) => scalar("f64", float(*x)),
            Value::Bool(x) => scalar("bool", json!(x)),
            Value::String(x) => MetadataEntry {
                key: key.to_string(),
                ty: "string".into(),
                // The chat template is summarized in its own section, even when short.
                value: (x.len() <= MAX_SHOWN_STRING && key != KEY_CHAT_TEMPLATE).then(|| json!(x)),
                bytes: Some(x.len() as u64),
                len: None,
            },
            Value::Array(a) => {
                let (ty, values): (&str, serde_json::Value) = match a {
                    Array::U32(v) => ("u32", json!(v)),
                    Array::I32(v) => ("i32", json!(v)),
                    Array::U64(v) => ("u64", json!(v)),
                    Array::I64(v) => ("i64", json!(v)),
                    Array::F32(v) => ("f32", v.iter().map(|&x| float(x as f64)).collect()),
                    Array::F64(v) => ("f64", v.iter().map(|&x| float(x)).collect()),
                    Array::Bool(v) => ("bool", json!(v)),
                    Array::String(v) => ("string", json!(v)),
                };
                MetadataEntry {
                    key: key.to_string(),
                    ty: format!("array<{ty}>"),
                    value: (a.len() <= MAX_SHOWN_ARRAY).then_some(values),
                    bytes: None,
                    len: Some(a.len() as u64),
                }
            }
        }
    }

    /// The value as shown in the text report.
    fn shown(&self) -> String {
        match (&self.value, self.bytes, self.len) {
            // A non-finite float, a string only in JSON: shown bare, like the others.
            (Some(serde_json::Value::String(x)), _, _) if self.ty.starts_with('f') => x.clone(),
            (Some(v), _, _) => v.to_string(),
            (None, Some(b), _) => format!("<{b} bytes>"),
            (None, _, Some(n)) => format!("<{n} elements>"),
            (None, None, None) => String::new(),
        }
    }
}

/// A float as JSON; NaN and infinities, which JSON lacks, as strings.
/// The architecture and its hyper-parameters as JSON: `architecture` and each
/// `ARCH.key` of SPEC.md §5 without its namespace.
fn config_json(c: &ModelConfig) -> BTreeMap<String, serde_json::Value> {
    use serde_json::json;
    let mut md = mamba_format::Metadata::new();
    // A config read from a file writes back without error.
    let _ = c.to_metadata(&mut md);
    md.iter()
        .map(|(k, v)| {
            let key = match k.split_once('.') {
                Some(("general", "architecture")) | None => "architecture",
                Some((_, name)) => name,
            };
            let value = match v {
                Value::F64(x) => float(*x),
                Value::U64(x) => json!(x),
                Value::Bool(x) => json!(x),
                Value::String(x) => json!(x),
                other => json!(other.summary()),
            };
            (key.to_string(), value)
        })
        .collect()
}

fn float(x: f64) -> serde_json::Value {
    serde_json::Number::from_f64(x).map_or_else(
        || serde_json::Value::String(x.to_string()),
        serde_json::Value::Number,
    )
}

impl Totals {
    fn new(file: &MbinFile<'_>) -> Totals {
        let mut per: BTreeMap<u32, TypeTotal> = BTreeMap::new();
        for t in &file.tensors {
            let e = per.entry(t.ty.id()).or_insert(TypeTotal {
                ty: t.ty.name(),
                tensors: 0,
                parameters: 0,
                bytes: 0,
            });
            e.tensors += 1;
            e.parameters += t.n_elements();
            e.bytes += t.size;
        }
        let parameters: u64 = per.values().map(|p| p.parameters).sum();
        let bytes: u64 = per.values().map(|p| p.bytes).sum();
        Totals {
            tensors: file.tensors.len() as u64,
            parameters,
            bytes,
            bits_per_weight: if parameters == 0 {
                0.0
            } else {
                bytes as f64 * 8.0 / parameters as f64
            },
            per_type: per.into_values().collect(),
        }
    }
}

impl Verification {
    fn new(file: &MbinFile<'_>) -> Verification {
        let mut problems = Vec::new();
        let mut failed_tensors = Vec::new();
        for e in file.verify() {
            let (tensor, problem) = match &e {
                // The message names the tensor already.
                FormatError::ChecksumMismatch {
                    tensor: Some(t), ..
                } => (Some(t.clone()), e.to_string()),
                // Name the tensor whose trailing padding holds the byte.
                FormatError::NonZeroPadding { offset } => {
                    let t = file
                        .tensors
                        .iter()
                        .rev()
                        .find(|t| file.tensor_file_offset(t) + t.size <= *offset);
                    match t {
                        Some(t) => (
                            Some(t.name.clone()),
                            format!("padding after tensor `{}`: {e}", t.name),
                        ),
                        None => (None, e.to_string()),
                    }
                }
                _ => (None, e.to_string()),
            };
            problems.push(problem);
            if let Some(t) = tensor {
                if failed_tensors.last() != Some(&t) {
                    failed_tensors.push(t);
                }
            }
        }
        let config = match ModelConfig::from_file(file) {
            Ok(c) => Some(config_json(&c)),
            Err(e) => {
                problems.push(format!("architecture: {e}"));
                None
            }
        };
        Verification {
            ok: problems.is_empty(),
            problems,
            failed_tensors,
            config,
        }
    }
}
