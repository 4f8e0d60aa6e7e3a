//! [`WeightSource`] over a PyTorch `pytorch_model.bin`, through [`crate::torch`].

use std::path::{Path, PathBuf};

use super::{SourceTensor, StorageKind, WeightSource};
use crate::error::ConvertError;
use crate::torch::TorchCheckpoint;

/// An opened `pytorch_model.bin`.
#[derive(Debug)]
pub struct PytorchSource {
    path: PathBuf,
    ckpt: TorchCheckpoint,
}

impl PytorchSource {
    /// Opens and validates the checkpoint (zip directory and pickle; no tensor data).
    pub fn open(path: &Path) -> Result<Self, ConvertError> {
        Ok(PytorchSource {
            path: path.to_path_buf(),
            ckpt: TorchCheckpoint::open(path)?,
        })
    }
}

impl WeightSource for PytorchSource {
    fn kind(&self) -> StorageKind {
        StorageKind::Pytorch
    }

    fn location(&self) -> &Path {
        &self.path
    }

    fn tensor(&self, name: &str) -> Result<Option<SourceTensor>, ConvertError> {
        Ok(self.ckpt.get(name).map(|t| SourceTensor {
            dtype: t.dtype.to_string(),
            widens: t.dtype.widens_to_f32(),
            shape: t.shape.clone(),
            file: self.path.clone(),
        }))
    }

    fn names(&self) -> Vec<String> {
        self.ckpt.tensors().iter().map(|t| t.name.clone()).collect()
    }

    fn files(&self) -> Vec<PathBuf> {
        vec![self.path.clone()]
    }

    fn read_f32(&self, name: &str) -> Result<Vec<f32>, ConvertError> {
        Ok(self.ckpt.read_f32(name)?)
    }
}
