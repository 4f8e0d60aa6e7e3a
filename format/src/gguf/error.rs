//! [`GgufError`]: why a byte string is not a GGUF file this crate can read.

/// Why a GGUF file was refused. Each variant names what was being read, so a bad
/// file's error says where it went wrong.
#[derive(thiserror::Error, Debug, Clone, PartialEq)]
pub enum GgufError {
    /// The file does not start with the four bytes `GGUF`.
    #[error("not a GGUF file: it starts with {found:02x?}, not \"GGUF\"")]
    BadMagic {
        /// The first bytes found (up to four).
        found: Vec<u8>,
    },
    /// A GGUF version other than 2 and 3 (1 used 32-bit counts and is long gone).
    #[error("GGUF version {0} is not supported (2 and 3 are)")]
    UnsupportedVersion(u32),
    /// The file ends inside something that must be there.
    #[error("GGUF file truncated: {what} needs bytes up to offset {end}, the file has {len}")]
    Truncated {
        /// What was being read ("the key of metadata entry 3").
        what: String,
        /// The offset the read needed.
        end: u64,
        /// The file's length.
        len: u64,
    },
    /// A count (metadata entries, tensors, array elements, string bytes) larger than
    /// the rest of the file could hold, or than the documented limit.
    #[error("GGUF {what}: {count} is more than {limit}")]
    TooMany {
        /// What is counted.
        what: String,
        /// The count in the file.
        count: u64,
        /// The most it could be.
        limit: u64,
    },
    /// A string (key, value, tensor name) that is not UTF-8.
    #[error("GGUF {what} is not valid UTF-8")]
    NotUtf8 {
        /// Which string.
        what: String,
    },
    /// A metadata value type tag outside GGUF's 0..=12.
    #[error("GGUF metadata {key:?}: unknown value type {tag}")]
    UnknownValueType {
        /// The entry's key.
        key: String,
        /// The tag found.
        tag: u32,
    },
    /// An array whose elements are arrays (llama.cpp does not write them).
    #[error("GGUF metadata {key:?}: arrays of arrays are not supported")]
    NestedArray {
        /// The entry's key.
        key: String,
    },
    /// A bool stored as a byte other than 0 or 1.
    #[error("GGUF metadata {key:?}: a bool must be 0 or 1, found {byte}")]
    BadBool {
        /// The entry's key.
        key: String,
        /// The byte found.
        byte: u8,
    },
    /// The same metadata key or tensor name twice.
    #[error("GGUF {what} {name:?} appears twice")]
    Duplicate {
        /// "metadata key" or "tensor".
        what: &'static str,
        /// The repeated key or name.
        name: String,
    },
    /// `general.alignment` is not a non-zero power of two stored as an integer.
    #[error("GGUF general.alignment must be a power of two, found {0}")]
    BadAlignment(String),
    /// A tensor's dimensions are out of range (no dimensions, more than four, a zero,
    /// an element count that overflows, a row the block size does not divide).
    #[error("GGUF tensor {tensor:?}: {why}")]
    BadShape {
        /// The tensor's name.
        tensor: String,
        /// What is wrong.
        why: String,
    },
    /// A tensor type id this crate has no block layout for; names the ggml type when
    /// it is one.
    #[error("GGUF tensor {tensor:?} has type {type_name} (ggml type {id}), which .mbin does not support")]
    UnsupportedType {
        /// The tensor's name.
        tensor: String,
        /// The id in the file.
        id: u32,
        /// ggml's name for it, or "unknown".
        type_name: &'static str,
    },
    /// A tensor's data is misaligned, beyond the end of the file, or overlaps another.
    #[error("GGUF tensor {tensor:?}: {why}")]
    BadOffset {
        /// The tensor's name.
        tensor: String,
        /// What is wrong.
        why: String,
    },
    /// A metadata value has a type other than the one its key needs.
    #[error("GGUF metadata {key:?}: expected {expected}, found {found}")]
    WrongType {
        /// The key.
        key: String,
        /// What the reader needs ("an unsigned integer").
        expected: &'static str,
        /// What the file has ("f32").
        found: &'static str,
    },
}
