//! The runtime's error type.

/// Everything that can go wrong loading or running a model.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RuntimeError {
    /// The file could not be opened or mapped.
    #[error("{path}: {source}")]
    Io {
        /// File path.
        path: String,
        /// Underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The file breaks the format (SPEC.md).
    #[error("{path}: {source}")]
    Format {
        /// File path.
        path: String,
        /// The rule broken.
        #[source]
        source: mamba_format::FormatError,
    },
    /// A tensor's bytes cannot be viewed as f32 (misaligned storage).
    #[error("tensor `{0}` is not 4-byte aligned in memory")]
    Misaligned(String),
    /// A token id is not below the vocabulary size.
    #[error("token id {id} is out of range (vocabulary size {vocab})")]
    TokenOutOfRange {
        /// The id.
        id: u32,
        /// Vocabulary size.
        vocab: usize,
    },
    /// An empty prompt was given where tokens are needed.
    #[error("the prompt is empty")]
    EmptyPrompt,
    /// A sampling parameter is out of its range.
    #[error("invalid sampling parameter {name} = {value}: {why}")]
    BadSampling {
        /// Parameter name.
        name: &'static str,
        /// Value given.
        value: String,
        /// Allowed range.
        why: &'static str,
    },
    /// A saved state does not belong to this model or is damaged.
    #[error("state rejected: {0}")]
    BadState(String),
    /// The model has no embedded tokenizer, so text cannot be encoded or decoded.
    #[error("this model has no embedded tokenizer; give token ids instead of text")]
    NoTokenizer,
    /// The tokenizer failed.
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    /// A batch call got inputs of the wrong count.
    #[error("batch: {0}")]
    Batch(String),
    /// The requested device is unavailable or failed.
    #[error("device: {0}")]
    Device(String),
}

/// The runtime's result type.
pub type Result<T, E = RuntimeError> = std::result::Result<T, E>;
