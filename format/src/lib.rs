//! The `.mbin` Mamba model file format: quantization block layouts, metadata,
//! tensor index, a validating reader over `&[u8]` and a streaming writer.
//!
//! `SPEC.md` at the repository root is normative; this crate enforces it, no more
//! and no less. The crate has no `unsafe` code: memory-mapping the file is the
//! caller's business.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod arch;
pub mod checksum;
mod cursor;
pub mod error;
pub mod gguf;
pub mod header;
pub mod index;
pub mod metadata;
pub mod quant;
pub mod reader;
pub mod writer;

pub use arch::{Architecture, Mamba2Config, MambaConfig, ModelConfig, TensorDef, TensorRole};
pub use error::{FormatError, Result, Section};
pub use header::Header;
pub use index::TensorInfo;
pub use metadata::{Array, Metadata, Value};
pub use quant::{QuantKind, QuantType, QUANT_KINDS};
pub use reader::MbinFile;
pub use writer::{write_to_vec, TensorSpec, Writer};
