#![doc = include_str!("../README.md")]
//!
//! # Modules
//!
//! - [`preset`]: which type each tensor gets, and fallbacks.
//! - [`torch`]: a pure-Rust reader for PyTorch `pytorch_model.bin` checkpoints.
//!
//! The conversion itself reads `config.json` (`config`), opens the weights
//! (`source`), plans and checks every tensor (`plan`), builds the metadata
//! (`metadata`, with the tokenizer and chat template of `tokenizer` and
//! `chat_template`), then streams the tensors through the scalar reference quantizers
//! (`quantize`) into [`mamba_format::Writer`] (`pipeline`).
#![deny(missing_docs)]

mod chat_template;
mod config;
mod error;
mod hub;
mod metadata;
mod options;
mod pipeline;
mod plan;
pub mod preset;
mod quantize;
mod report;
mod source;
mod synthetic;
mod tokenizer;
pub mod torch;

pub use chat_template::MAX_CHAT_TEMPLATE_BYTES;
pub use config::SUPPORTED_ARCHITECTURES;
pub use error::{ConvertError, ParseNameError};
pub use hub::is_repo_id;
pub use metadata::{
    KEY_CONVERTER, KEY_NAME, KEY_QUANTIZATION, KEY_SOURCE, KEY_SOURCE_FORMAT, KEY_SYNTHETIC,
};
pub use options::{ConvertOptions, Input, Overrides, SyntheticSize};
pub use pipeline::{convert, convert_with, dry_run, dry_run_with};
pub use preset::Preset;
pub use report::{
    describe_model, human_bytes, peak_rss_bytes, DryRun, PlannedTensor, Summary, TensorReport,
};
pub use tokenizer::MAX_TOKENIZER_BYTES;
