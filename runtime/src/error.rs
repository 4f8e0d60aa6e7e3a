//! The runtime's error type.

/// Everything that can go wrong loading or running a model.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RuntimeError {
    /// The file could not be mapped.
    #[error("{path}: {source}")]
    Io {
        /// File path.
        path: String,
        /// Underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A file was refused (not a regular file, too large, an input given as the
    /// output) or could not be opened, read or written; the message names the path.
    #[error(transparent)]
    File(#[from] mamba_files::FileError),
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
    /// The forward pass produced NaN or infinity, first seen in `what` (the token
    /// embeddings, the output of layer `layer`, or the logits): the model's weights
    /// are damaged, or the values overflow. The states of the sequences in the call
    /// are then partly advanced: reset or restore them before reuse.
    #[error(
        "{what} holds non-finite values (NaN or infinity) at token {position} of \
         sequence {sequence}: the model's weights are damaged or overflow"
    )]
    NonFinite {
        /// The first layer whose output (the residual stream) is non-finite; `None`
        /// for the embeddings or the logits.
        layer: Option<usize>,
        /// Where, in words: "the token embeddings", "the output of layer 3", "the logits".
        what: String,
        /// The sequence (segment of the call, batch row) it was seen in.
        sequence: usize,
        /// The token's position in that sequence (0 for its first token).
        position: u64,
    },
    /// The requested device is unavailable or failed.
    #[error("device: {0}")]
    Device(String),
}

/// The runtime's result type.
pub type Result<T, E = RuntimeError> = std::result::Result<T, E>;
