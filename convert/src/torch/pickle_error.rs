//! The errors of the non-executing unpickler ([`super::pickle`]): one variant per
//! way a `data.pkl` is rejected, each with the byte offset of the offending opcode.

/// Why a `data.pkl` was rejected. `offset` is the byte offset of the offending opcode.
#[derive(thiserror::Error, Debug, Clone, PartialEq)]
pub enum PickleError {
    /// The pickle ended inside an opcode or before `STOP`.
    #[error("pickle truncated at offset {offset}")]
    Truncated {
        /// Offset of the opcode that needed more bytes.
        offset: usize,
    },
    /// An opcode outside the supported subset.
    #[error("unsupported pickle opcode 0x{opcode:02x} at offset {offset}")]
    UnknownOpcode {
        /// Offset of the opcode.
        offset: usize,
        /// The opcode byte.
        opcode: u8,
    },
    /// `PROTO` named a protocol newer than 5.
    #[error("unsupported pickle protocol {protocol} at offset {offset}")]
    UnsupportedProtocol {
        /// Offset of the `PROTO` opcode.
        offset: usize,
        /// The protocol number.
        protocol: u8,
    },
    /// A global that is not on the allow-list (nothing is ever imported).
    #[error("forbidden pickle global {module}.{name} at offset {offset}")]
    ForbiddenGlobal {
        /// Offset of the `GLOBAL`/`STACK_GLOBAL` opcode.
        offset: usize,
        /// Module part, e.g. `os`.
        module: String,
        /// Name part, e.g. `system`.
        name: String,
    },
    /// A `GLOBAL` line with no newline within the length cap, or not UTF-8.
    #[error("malformed pickle global line at offset {offset}")]
    BadGlobalLine {
        /// Offset of the `GLOBAL` opcode.
        offset: usize,
    },
    /// An opcode popped more values than the stack (above the last mark) holds.
    #[error("pickle stack underflow at offset {offset} (opcode 0x{opcode:02x})")]
    StackUnderflow {
        /// Offset of the opcode.
        offset: usize,
        /// The opcode byte.
        opcode: u8,
    },
    /// An opcode that needs a `MARK` found none.
    #[error("pickle opcode 0x{opcode:02x} at offset {offset} has no mark")]
    MissingMark {
        /// Offset of the opcode.
        offset: usize,
        /// The opcode byte.
        opcode: u8,
    },
    /// A `BINGET`/`LONG_BINGET` of a memo slot never written.
    #[error("pickle memo slot {index} read before written at offset {offset}")]
    MissingMemo {
        /// Offset of the opcode.
        offset: usize,
        /// The memo index.
        index: u32,
    },
    /// One of the `MAX_*` caps was hit.
    #[error("pickle {what} limit of {limit} exceeded at offset {offset}")]
    LimitExceeded {
        /// Offset of the opcode.
        offset: usize,
        /// Which cap: "stack", "marks", "memo", "objects", "dimensions", "ndim", "storage key".
        what: &'static str,
        /// The cap.
        limit: usize,
    },
    /// A string that is not valid UTF-8.
    #[error("pickle string at offset {offset} is not utf-8")]
    InvalidUtf8 {
        /// Offset of the opcode.
        offset: usize,
    },
    /// A `LONG1` integer wider than 64 bits.
    #[error("pickle integer at offset {offset} does not fit in 64 bits")]
    IntTooLarge {
        /// Offset of the opcode.
        offset: usize,
    },
    /// An operand of the wrong kind (e.g. `SETITEM` on a list, `REDUCE` of a string).
    #[error("pickle opcode 0x{opcode:02x} at offset {offset} expected {expected}")]
    WrongType {
        /// Offset of the opcode.
        offset: usize,
        /// The opcode byte.
        opcode: u8,
        /// What the operand should have been.
        expected: &'static str,
    },
    /// A call of an allowed global with arguments it does not take.
    #[error("bad arguments to {callable} at offset {offset}: {reason}")]
    BadCall {
        /// Offset of the `REDUCE`/`NEWOBJ`/`BINPERSID` opcode.
        offset: usize,
        /// The callable, e.g. `torch._utils._rebuild_tensor_v2`.
        callable: &'static str,
        /// What is wrong.
        reason: &'static str,
    },
    /// The pickled object is not a dict.
    #[error("pickle top-level object is a {found}, not a state dict")]
    NotAStateDict {
        /// Kind of the object found.
        found: &'static str,
    },
    /// A state-dict key that is not a string.
    #[error("state dict key number {index} is not a string")]
    NonStringKey {
        /// Position of the entry in the dict.
        index: usize,
    },
    /// A state-dict value that is not a tensor.
    #[error("state dict entry {name} is a {found}, not a tensor")]
    NotATensor {
        /// The entry's key.
        name: String,
        /// Kind of the value found.
        found: &'static str,
    },
    /// The same key twice in the state dict.
    #[error("state dict entry {name} appears twice")]
    DuplicateName {
        /// The repeated key.
        name: String,
    },
}
