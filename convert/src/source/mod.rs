//! Checkpoint storage: where a named tensor's bytes are and how to widen them to f32.
//!
//! [`open_weights`] finds the weights in a model directory. Naming (Hugging Face or
//! `mamba_ssm`) is the config's business ([`crate::config::Layout`]); storage is
//! independent of it, so either layout may come as safetensors or as a PyTorch zip.

use std::path::{Path, PathBuf};

use crate::error::ConvertError;

mod gguf;
mod gguf_tokenizer;
mod pytorch_file;
mod safetensors_file;
mod safetensors_header;
mod shard_index;

pub use gguf::{GgufInput, GgufRef};
pub use gguf_tokenizer::rebuild_tokenizer;
pub use pytorch_file::PytorchSource;
pub use safetensors_file::SafetensorsSource;
pub use shard_index::read_shard_index;

/// Storage-level facts about one checkpoint tensor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceTensor {
    /// The element type as the storage format names it (`F32`, `torch.bfloat16`).
    pub dtype: String,
    /// Whether [`WeightSource::read_f32`] can widen it exactly (f32, f16, bf16).
    pub widens: bool,
    /// Shape, outermost first.
    pub shape: Vec<usize>,
    /// The file holding it.
    pub file: PathBuf,
}

/// The storage formats a weight file can have.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StorageKind {
    /// `model.safetensors` or shards listed by `model.safetensors.index.json`.
    Safetensors,
    /// `pytorch_model.bin` (zip + pickle).
    Pytorch,
}

/// Read access to a checkpoint's tensors, one at a time.
pub trait WeightSource: Send + Sync {
    /// Which storage format this is.
    fn kind(&self) -> StorageKind;

    /// The file (or index) that names the tensors, for "missing tensor" errors.
    fn location(&self) -> &Path;

    /// Facts about `name`; `Ok(None)` when the checkpoint has no such tensor.
    fn tensor(&self, name: &str) -> Result<Option<SourceTensor>, ConvertError>;

    /// Every tensor name, for reporting the ones the converter does not use.
    fn names(&self) -> Vec<String>;

    /// Every file this source reads (the index and each shard, or the one file), so
    /// that the output can never be one of them.
    fn files(&self) -> Vec<PathBuf>;

    /// The tensor's values, row-major, widened exactly to f32.
    fn read_f32(&self, name: &str) -> Result<Vec<f32>, ConvertError>;
}

/// Opens the weights in `dir`: `model.safetensors`, else the shards of
/// `model.safetensors.index.json`, else `pytorch_model.bin`.
pub fn open_weights(dir: &Path) -> Result<Box<dyn WeightSource>, ConvertError> {
    let single = dir.join("model.safetensors");
    let index = dir.join("model.safetensors.index.json");
    let torch = dir.join("pytorch_model.bin");
    // Whatever is there under a weights name is chosen and then opened as a regular
    // file, so a FIFO, directory or device there is refused by its kind instead of
    // being skipped as if absent.
    let present = |p: &Path| std::fs::symlink_metadata(p).is_ok();
    if present(&single) {
        Ok(Box::new(SafetensorsSource::open_single(&single)?))
    } else if present(&index) {
        Ok(Box::new(SafetensorsSource::open_sharded(&index)?))
    } else if present(&torch) {
        Ok(Box::new(PytorchSource::open(&torch)?))
    } else {
        Err(ConvertError::MissingWeights {
            dir: dir.to_path_buf(),
            expected: "model.safetensors, model.safetensors.index.json or pytorch_model.bin",
        })
    }
}
