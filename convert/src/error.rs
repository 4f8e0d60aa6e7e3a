//! [`ConvertError`]: one variant per way a conversion can fail, each naming the file
//! or tensor at fault.
//!
//! `Display` is one lowercase line that already includes the cause, so the CLI prints
//! `error: {err}` and nothing else; `source()` still exposes the cause for callers that
//! want to inspect it.

use std::path::{Path, PathBuf};

use mamba_files::FileError;
use mamba_format::{FormatError, QuantType};

use crate::torch::TorchError;

/// Why a conversion failed. Tests match on the variant, not on the message.
#[derive(thiserror::Error, Debug)]
pub enum ConvertError {
    /// The input directory does not exist or is not a directory.
    #[error("input {} is not a directory: {found}", path.display())]
    InputNotADirectory {
        /// The path given as input.
        path: PathBuf,
        /// What is there instead, in words ("it is a FIFO", "no such file or directory").
        found: String,
    },
    /// The input directory has no `config.json`.
    #[error("missing {}: a model directory needs a config.json", path.display())]
    MissingConfig {
        /// Where `config.json` was expected.
        path: PathBuf,
    },
    /// An input that must be a regular file is something else (a directory, FIFO,
    /// device, socket), or a file loaded whole is over its documented size limit
    /// ([`mamba_files::limits`]).
    #[error("{role} {source}")]
    InputFile {
        /// What the file was to be read as ("tokenizer", "weights file", ...).
        role: &'static str,
        /// The refusal; it names the path.
        #[source]
        source: FileError,
    },
    /// A file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A JSON file (`config.json`, the shard index, `tokenizer.json`) is not valid JSON.
    #[error("malformed JSON in {}: {source}", path.display())]
    MalformedJson {
        /// The file.
        path: PathBuf,
        /// The parser's error (with line and column).
        #[source]
        source: serde_json::Error,
    },
    /// `config.json` lacks a key the architecture needs.
    #[error("{} has no key `{key}`", path.display())]
    MissingConfigKey {
        /// The config file.
        path: PathBuf,
        /// The missing key (dotted for nested keys, e.g. `ssm_cfg.d_state`).
        key: String,
    },
    /// A `config.json` value has the wrong type or is out of range.
    #[error("{}: key `{key}` should be {expected}, found {found}", path.display())]
    BadConfigValue {
        /// The config file.
        path: PathBuf,
        /// The key.
        key: String,
        /// What was expected, e.g. "a positive integer".
        expected: String,
        /// The value found, as JSON.
        found: String,
    },
    /// `config.json` values that are each in range but disagree with each other
    /// (Mamba-2 heads that do not tile the inner width, groups that do not divide
    /// the heads).
    #[error("{}: {why}", path.display())]
    InconsistentConfig {
        /// The config file.
        path: PathBuf,
        /// Which keys disagree and how, with their values.
        why: String,
    },
    /// The config describes an architecture or variant this converter does not handle.
    #[error("{}: unsupported architecture {found}; supported: {supported}", path.display())]
    UnknownArchitecture {
        /// The config file.
        path: PathBuf,
        /// What the config declares (its `model_type`, layer type or feature).
        found: String,
        /// The supported architectures.
        supported: &'static str,
    },
    /// The directory has a config but no weights file this converter reads.
    #[error("no weights in {}: expected {expected}", dir.display())]
    MissingWeights {
        /// The input directory.
        dir: PathBuf,
        /// The file names looked for.
        expected: &'static str,
    },
    /// `model.safetensors.index.json` is inconsistent (bad shard name, no `weight_map`).
    #[error("bad shard index {}: {why}", path.display())]
    BadShardIndex {
        /// The index file.
        path: PathBuf,
        /// What is wrong.
        why: String,
    },
    /// A safetensors file is truncated or its header is invalid.
    #[error("invalid safetensors file {}: {why}", path.display())]
    Safetensors {
        /// The file.
        path: PathBuf,
        /// What is wrong, in words.
        why: String,
        /// The safetensors crate's error.
        #[source]
        source: safetensors::SafeTensorError,
    },
    /// A GGUF file's container is malformed (truncated, bad counts, offsets,
    /// shapes) or uses a tensor type `.mbin` does not have.
    #[error("invalid GGUF file {}: {source}", path.display())]
    Gguf {
        /// The file.
        path: PathBuf,
        /// The parser's error; it names the key or tensor at fault.
        #[source]
        source: mamba_format::gguf::GgufError,
    },
    /// A well-formed GGUF file that is not a model this converter can import: another
    /// architecture, a missing or inconsistent hyper-parameter, a tensor missing,
    /// misshapen or unknown.
    #[error("{}: {why}", path.display())]
    GgufModel {
        /// The file.
        path: PathBuf,
        /// What is wrong, naming the key, tensor or architecture.
        why: String,
    },
    /// A `pytorch_model.bin` could not be opened or a tensor in it read.
    #[error("{source}")]
    Torch {
        /// The reader's error (it names the file).
        #[source]
        source: TorchError,
    },
    /// A tensor the config requires is absent from the checkpoint.
    #[error("tensor {tensor} is missing from {}", file.display())]
    MissingTensor {
        /// The checkpoint's name for the tensor.
        tensor: String,
        /// The file (or shard index) where it was looked up.
        file: PathBuf,
    },
    /// A tensor's shape disagrees with the config.
    #[error("tensor {tensor} in {} has shape {found:?}, the config implies {expected:?}", file.display())]
    ShapeMismatch {
        /// The checkpoint's name for the tensor.
        tensor: String,
        /// The file holding it.
        file: PathBuf,
        /// Shape on disk.
        found: Vec<usize>,
        /// Shape implied by `config.json`.
        expected: Vec<usize>,
    },
    /// A Mamba-2 `in_proj.weight` has another number of rows than z, x, B, C and dt
    /// need. transformers' `Mamba2Mixer` accepts extra rows (a gated MLP, its
    /// `d_mlp`), which the `.mbin` format has no place for.
    #[error(
        "tensor {tensor} in {} has {found} rows, Mamba-2 needs {expected} \
         (z, x, B, C and dt: 2·d_inner + 2·n_groups·d_state + n_heads){}",
        file.display(),
        if found > expected {
            "; extra rows such as a gated MLP's (transformers' d_mlp) are not supported"
        } else {
            ""
        }
    )]
    InProjRows {
        /// The checkpoint's name for the tensor.
        tensor: String,
        /// The file holding it.
        file: PathBuf,
        /// Rows on disk.
        found: usize,
        /// Rows the config implies.
        expected: usize,
    },
    /// A tensor has an element type that does not widen exactly to f32.
    #[error("tensor {tensor} in {} has unsupported dtype {dtype} (f32, f16 and bf16 are supported)", file.display())]
    UnsupportedDtype {
        /// The checkpoint's name for the tensor.
        tensor: String,
        /// The file holding it.
        file: PathBuf,
        /// The dtype, as the source format names it.
        dtype: String,
    },
    /// A weight holds NaN or ±Inf.
    #[error("tensor {tensor} in {} holds a non-finite value {value} at element {index}", file.display())]
    NonFinite {
        /// The checkpoint's name for the tensor (or the standard name of a derived one).
        tensor: String,
        /// The file holding it.
        file: PathBuf,
        /// Flat index of the first bad element.
        index: usize,
        /// The bad value.
        value: f32,
    },
    /// Quantizing a tensor produced NaN/Inf (e.g. a value beyond f16's range), so the
    /// file would be corrupt.
    #[error("quantizing {tensor} to {ty} gives a non-finite value at element {index} (source value {value})")]
    QuantizedNonFinite {
        /// Standard name of the tensor.
        tensor: String,
        /// The target type.
        ty: QuantType,
        /// Flat index of the first bad element.
        index: usize,
        /// The source value at that index.
        value: f32,
    },
    /// The tokenizer file is not a Hugging Face `tokenizer.json`.
    #[error("bad tokenizer {}: {why}", path.display())]
    BadTokenizer {
        /// The tokenizer file.
        path: PathBuf,
        /// What is wrong.
        why: String,
    },
    /// The file given as the chat template (`--chat-template`) holds no template.
    #[error("bad chat template {}: {why}", path.display())]
    BadChatTemplate {
        /// The template file.
        path: PathBuf,
        /// What is wrong.
        why: String,
    },
    /// A Hugging Face Hub input could not be fetched: the repository or revision does
    /// not exist, access is denied (gated or private), the endpoint is unreachable, a
    /// download was cut off, or the repository holds no config or weights to convert.
    #[error("hugging face hub {repo}@{revision}: {message}")]
    Hub {
        /// The repository id, `owner/name`.
        repo: String,
        /// The branch, tag or commit asked for (`main` by default).
        revision: String,
        /// What went wrong and what to do about it, in one line (it names the
        /// endpoint, file or token source at fault).
        message: String,
    },
    /// The output exists and `force` is off.
    #[error("output {} already exists (use --force to overwrite)", path.display())]
    OutputExists {
        /// The output path.
        path: PathBuf,
    },
    /// The output path may not be written: it is not a regular file (a device, FIFO,
    /// directory, socket) or it is one of the conversion's own inputs (also through a
    /// hard link or a symlink).
    #[error("output {source}")]
    Output {
        /// The refusal; it names the path.
        #[source]
        source: FileError,
    },
    /// Writing the output failed (unwritable folder, disk full, ...).
    #[error("cannot write {}: {source}", path.display())]
    Write {
        /// The output path.
        path: PathBuf,
        /// The writer's error.
        #[source]
        source: FormatError,
    },
}

impl ConvertError {
    /// An input file's refusal: I/O errors stay [`ConvertError::Read`] (with `path`),
    /// a wrong kind of file or an oversized one becomes [`ConvertError::InputFile`].
    pub(crate) fn input_file(role: &'static str, path: &Path, e: FileError) -> ConvertError {
        match e {
            FileError::Io { source, .. } => ConvertError::Read {
                path: path.to_path_buf(),
                source,
            },
            other => ConvertError::InputFile {
                role,
                source: other,
            },
        }
    }

    /// An output path's refusal: an existing file without `force` stays
    /// [`ConvertError::OutputExists`], an I/O error (its folder is missing or not a
    /// folder) [`ConvertError::Write`], anything else becomes [`ConvertError::Output`].
    pub(crate) fn output(path: &Path, e: FileError) -> ConvertError {
        match e {
            FileError::OutputExists { path } => ConvertError::OutputExists { path },
            FileError::Io { source, .. } => ConvertError::Write {
                path: path.to_path_buf(),
                source: FormatError::Io {
                    context: "cannot examine it".into(),
                    source,
                },
            },
            other => ConvertError::Output { source: other },
        }
    }
}

impl From<TorchError> for ConvertError {
    fn from(source: TorchError) -> Self {
        ConvertError::Torch { source }
    }
}

/// A command-line style value (`--type`, `--synthetic`) that is not one of the accepted names.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
#[error("unknown {what} `{found}`; accepted: {accepted}")]
pub struct ParseNameError {
    /// What was being parsed ("type", "synthetic size").
    pub what: &'static str,
    /// The text given.
    pub found: String,
    /// The accepted names, comma-separated.
    pub accepted: String,
}
