//! The one error type of the format crate.

use crate::quant::QuantType;

/// Which part of a file an error or a checksum refers to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Section {
    /// The fixed-size header.
    Header,
    /// The metadata key/value section.
    Metadata,
    /// The tensor index.
    Index,
    /// The zero padding between the index and the tensor data, or between tensors.
    Padding,
    /// The tensor data section.
    Data,
}

impl std::fmt::Display for Section {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Section::Header => "header",
            Section::Metadata => "metadata",
            Section::Index => "tensor index",
            Section::Padding => "padding",
            Section::Data => "tensor data",
        })
    }
}

/// Everything that can be wrong with a `.mbin` file, or with a request to write one.
///
/// One variant per rule of SPEC.md; tests match variants, not messages.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FormatError {
    /// The file is shorter than the fixed header.
    #[error("file is {len} bytes, shorter than the {need}-byte header")]
    TooShort {
        /// File length.
        len: u64,
        /// Bytes required.
        need: u64,
    },
    /// The first 8 bytes are not the `.mbin` magic.
    #[error("bad magic {found:02x?}: not a .mbin file")]
    BadMagic {
        /// The bytes found (zero-filled past the end of a shorter file).
        found: [u8; 8],
    },
    /// The format version is not one this reader implements.
    #[error("unsupported format version {found} (this reader supports {supported})")]
    UnsupportedVersion {
        /// Version in the file.
        found: u32,
        /// Version supported.
        supported: u32,
    },
    /// The byte-order marker does not read as little-endian.
    #[error("byte-order marker {found:#010x} is not the little-endian marker {expected:#010x} (big-endian or corrupted file)")]
    WrongByteOrder {
        /// Marker value read as little-endian.
        found: u32,
        /// Expected value.
        expected: u32,
    },
    /// A header field has a value SPEC.md does not allow.
    #[error("header field `{field}` is {found}, expected {expected}")]
    BadHeaderField {
        /// Field name.
        field: &'static str,
        /// Value found.
        found: u64,
        /// What was expected, in words.
        expected: String,
    },
    /// A stored checksum does not match the bytes it covers.
    #[error("{section} checksum mismatch{}: stored {stored:#018x}, computed {computed:#018x}", tensor.as_ref().map(|t| format!(" in tensor `{t}`")).unwrap_or_default())]
    ChecksumMismatch {
        /// Section the checksum covers.
        section: Section,
        /// Tensor name, for tensor data.
        tensor: Option<String>,
        /// Checksum in the file.
        stored: u64,
        /// Checksum of the bytes.
        computed: u64,
    },
    /// A section or record extends past its container.
    #[error(
        "{section} truncated: {what} needs bytes up to {end}, but only {available} are available"
    )]
    Truncated {
        /// Section being read.
        section: Section,
        /// What was being read.
        what: String,
        /// End offset needed.
        end: u64,
        /// Bytes available.
        available: u64,
    },
    /// Sections are not laid out exactly as SPEC.md requires.
    #[error("bad layout: {0}")]
    BadLayout(String),
    /// A count exceeds its cap.
    #[error("{what} is {found}, over the limit of {limit}")]
    LimitExceeded {
        /// What was counted.
        what: &'static str,
        /// Value found.
        found: u64,
        /// Maximum allowed.
        limit: u64,
    },
    /// A string is not valid UTF-8.
    #[error("{what} is not valid UTF-8")]
    InvalidUtf8 {
        /// Which string.
        what: String,
    },
    /// A metadata key or tensor name breaks the naming rules.
    #[error("invalid {what} name {name:?}: {why}")]
    InvalidName {
        /// "metadata key" or "tensor".
        what: &'static str,
        /// The name.
        name: String,
        /// Rule broken.
        why: &'static str,
    },
    /// A metadata key appears twice.
    #[error("duplicate metadata key `{0}`")]
    DuplicateKey(String),
    /// A tensor name appears twice.
    #[error("duplicate tensor name `{0}`")]
    DuplicateTensor(String),
    /// A metadata value type tag is unknown.
    #[error("metadata key `{key}` has unknown value type {tag}")]
    UnknownValueType {
        /// Key.
        key: String,
        /// Tag found.
        tag: u8,
    },
    /// A bool is stored as something other than 0 or 1.
    #[error("metadata key `{key}` has bool byte {found}, expected 0 or 1")]
    BadBool {
        /// Key.
        key: String,
        /// Byte found.
        found: u8,
    },
    /// A tensor's type id is unknown.
    #[error("tensor `{tensor}` has unknown type id {id}")]
    UnknownQuantType {
        /// Tensor name.
        tensor: String,
        /// Id found.
        id: u32,
    },
    /// A tensor's shape is invalid.
    #[error("tensor `{tensor}` has an invalid shape {dims:?}: {why}")]
    BadShape {
        /// Tensor name.
        tensor: String,
        /// Dims as stored.
        dims: Vec<u64>,
        /// Rule broken.
        why: String,
    },
    /// A tensor's row length is not a multiple of its type's block size.
    #[error("tensor `{tensor}`: row length {row} is not a multiple of {ty}'s block size {block}")]
    NotBlockMultiple {
        /// Tensor name.
        tensor: String,
        /// Type.
        ty: QuantType,
        /// Row length (last dim).
        row: u64,
        /// Block size.
        block: u64,
    },
    /// A tensor's stored byte length disagrees with its shape and type.
    #[error("tensor `{tensor}` has {found} bytes, its shape and type need {expected}")]
    BadTensorSize {
        /// Tensor name.
        tensor: String,
        /// Bytes stored.
        found: u64,
        /// Bytes implied.
        expected: u64,
    },
    /// A tensor's offset is not where SPEC.md puts it (aligned, in order, no holes).
    #[error("tensor `{tensor}` is at data offset {found}, expected {expected} (tensors must be aligned, in order, without holes or overlaps)")]
    BadTensorOffset {
        /// Tensor name.
        tensor: String,
        /// Offset stored.
        found: u64,
        /// Offset required.
        expected: u64,
    },
    /// Padding bytes are not zero.
    #[error("non-zero padding byte at file offset {offset}")]
    NonZeroPadding {
        /// File offset of the first non-zero byte.
        offset: u64,
    },
    /// A required metadata key is absent.
    #[error("required metadata key `{0}` is missing")]
    MissingKey(String),
    /// A metadata value has the wrong type or an impossible value.
    #[error("metadata key `{key}`: {why}")]
    BadValue {
        /// Key.
        key: String,
        /// What is wrong.
        why: String,
    },
    /// The architecture named in the metadata is not supported.
    #[error("unknown architecture `{found}` (supported: {supported})")]
    UnknownArchitecture {
        /// Name found.
        found: String,
        /// Supported names.
        supported: String,
    },
    /// A tensor the architecture requires is absent.
    #[error("required tensor `{0}` is missing")]
    MissingTensor(String),
    /// A tensor is present that the architecture does not define.
    #[error("unexpected tensor `{0}` for this architecture and configuration")]
    UnexpectedTensor(String),
    /// A tensor's shape disagrees with the hyper-parameters.
    #[error("tensor `{tensor}` has shape {found:?}, the configuration implies {expected:?}")]
    ShapeMismatch {
        /// Tensor name.
        tensor: String,
        /// Shape found.
        found: Vec<u64>,
        /// Shape expected.
        expected: Vec<u64>,
    },
    /// A tensor that must stay f32 has another type.
    #[error("tensor `{tensor}` must be f32, found {found}")]
    MustBeF32 {
        /// Tensor name.
        tensor: String,
        /// Type found.
        found: QuantType,
    },
    /// Writer misuse: tensors written out of order, twice, or with the wrong length.
    #[error("writer: {0}")]
    Writer(String),
    /// An I/O error while writing or reading a file.
    #[error("{context}: {source}")]
    Io {
        /// What was being done, with the path.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A refused or failed file operation (an output over an input or a special
    /// file, an existing output without overwrite, ...).
    #[error(transparent)]
    File(#[from] mamba_files::FileError),
}

/// The format crate's result type.
pub type Result<T, E = FormatError> = std::result::Result<T, E>;
