//! Memory-mapping a model file: the crate's one `unsafe` block outside the kernels.

use crate::error::{Result, RuntimeError};
use memmap2::Mmap;
use std::path::Path;

/// Bytes of a model file: a read-only memory map, or an owned 64-byte-aligned copy
/// (for models built in memory).
pub enum Storage {
    /// A read-only map of the file.
    Mapped(Mmap),
    /// Owned bytes; `Vec<[u8; 64]>` keeps tensor data 64-byte aligned.
    Owned(Vec<[u8; 64]>, usize),
}

impl Storage {
    /// Maps `path` read-only. Anything but a regular file (a directory, a FIFO, a
    /// device) is refused by kind, and the open never blocks
    /// ([`mamba_files::open_regular`]).
    pub fn map(path: &Path) -> Result<Storage> {
        let file = mamba_files::open_regular(path)?;
        // SAFETY: the map is read-only and private to this process. If another
        // process truncates or rewrites the file while it is mapped, reads may fault
        // or see new bytes; like every mmap-based model loader we accept that
        // (model files are not modified in place; the writer replaces by rename,
        // and no tool of this workspace writes over one of its inputs).
        let map = unsafe { Mmap::map(&file) }.map_err(|source| RuntimeError::Io {
            path: path.display().to_string(),
            source,
        })?;
        Ok(Storage::Mapped(map))
    }

    /// Copies `bytes` into aligned owned storage.
    pub fn from_bytes(bytes: &[u8]) -> Storage {
        let mut v = vec![[0u8; 64]; bytes.len().div_ceil(64)];
        bytemuck::cast_slice_mut::<[u8; 64], u8>(&mut v)[..bytes.len()].copy_from_slice(bytes);
        Storage::Owned(v, bytes.len())
    }

    /// The file's bytes.
    pub fn bytes(&self) -> &[u8] {
        match self {
            Storage::Mapped(m) => m,
            Storage::Owned(v, n) => &bytemuck::cast_slice::<[u8; 64], u8>(v)[..*n],
        }
    }
}
