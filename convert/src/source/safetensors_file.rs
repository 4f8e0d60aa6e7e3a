//! [`WeightSource`] over `model.safetensors` or the shards of
//! `model.safetensors.index.json`, memory-mapped.
//!
//! Each file's header is parsed and validated by the `safetensors` crate when opened
//! (offsets in bounds, contiguous, last offset = end of file, so a truncated file is
//! refused before anything is converted). Reading a tensor widens it straight from the
//! map and then tells the kernel the pages are no longer needed, so resident memory
//! stays near one tensor whatever the checkpoint size.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use mamba_files::open_regular;
use memmap2::Mmap;
use rayon::prelude::*;
use safetensors::tensor::{Metadata, TensorInfo};
use safetensors::{Dtype, SafeTensorError, SafeTensors};

use super::safetensors_header::diagnose_header;
use super::shard_index::read_shard_index;
use super::{SourceTensor, StorageKind, WeightSource};
use crate::error::ConvertError;

/// One mapped safetensors file.
struct Shard {
    path: PathBuf,
    mmap: Mmap,
    /// Bytes before the data section (8 + header length).
    data_start: usize,
    meta: Metadata,
}

impl Shard {
    fn open(path: &Path) -> Result<Shard, ConvertError> {
        let read_err = |source| ConvertError::Read {
            path: path.to_path_buf(),
            source,
        };
        // Regular files only: mapping a FIFO would block, a device would fail with
        // "No such device".
        let file =
            open_regular(path).map_err(|e| ConvertError::input_file("weights file", path, e))?;
        // SAFETY: the map is read-only and lives as long as this struct. If another process
        // truncates or rewrites the checkpoint while it is mapped, reads may fault or see
        // torn data: the documented hazard of every mmap-based model reader. All offsets
        // used below were validated against the map's length when it was opened.
        let mmap = unsafe { Mmap::map(&file) }.map_err(read_err)?;
        let (n, meta) =
            SafeTensors::read_metadata(&mmap).map_err(|source| ConvertError::Safetensors {
                path: path.to_path_buf(),
                why: describe(&source, &mmap),
                source,
            })?;
        Ok(Shard {
            path: path.to_path_buf(),
            data_start: 8 + n,
            mmap,
            meta,
        })
    }

    fn info(&self, name: &str) -> Option<&TensorInfo> {
        self.meta.info(name)
    }
}

/// What a safetensors header error means, in words. A header the crate could not
/// deserialize is examined again to name the tensor and field at fault.
fn describe(e: &SafeTensorError, file: &[u8]) -> String {
    match e {
        SafeTensorError::MetadataIncompleteBuffer => {
            "the data section does not end where the header says (truncated file?)".into()
        }
        SafeTensorError::HeaderTooSmall | SafeTensorError::InvalidHeaderLength => {
            "the header runs past the end of the file (truncated file?)".into()
        }
        SafeTensorError::HeaderTooLarge => "the header is over 100 MB".into(),
        SafeTensorError::InvalidHeader
        | SafeTensorError::InvalidHeaderStart
        | SafeTensorError::InvalidHeaderDeserialization => diagnose_header(file),
        SafeTensorError::InvalidOffset(name) => format!("tensor {name} has invalid data offsets"),
        SafeTensorError::TensorInvalidInfo => "a tensor's shape, dtype and offsets disagree".into(),
        SafeTensorError::ValidationOverflow => "a tensor's size overflows".into(),
        other => other.to_string(),
    }
}

/// An opened single-file or sharded safetensors checkpoint.
pub struct SafetensorsSource {
    /// The single file, or the index.
    location: PathBuf,
    shards: Vec<Shard>,
    /// Tensor name -> index into `shards`.
    by_name: HashMap<String, usize>,
}

impl std::fmt::Debug for SafetensorsSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SafetensorsSource")
            .field("location", &self.location)
            .field("shards", &self.shards.len())
            .field("tensors", &self.by_name.len())
            .finish()
    }
}

impl SafetensorsSource {
    /// Opens one `model.safetensors`.
    pub fn open_single(path: &Path) -> Result<Self, ConvertError> {
        let shard = Shard::open(path)?;
        let by_name = shard.meta.tensors().into_keys().map(|k| (k, 0)).collect();
        Ok(SafetensorsSource {
            location: path.to_path_buf(),
            shards: vec![shard],
            by_name,
        })
    }

    /// Opens every shard named by a `model.safetensors.index.json` `weight_map`.
    pub fn open_sharded(index: &Path) -> Result<Self, ConvertError> {
        let pairs = read_shard_index(index)?;
        let dir = index.parent().unwrap_or(Path::new("."));
        // Each shard once, in sorted order so that opening is deterministic.
        let mut files: Vec<&str> = pairs.iter().map(|(_, f)| f.as_str()).collect();
        files.sort_unstable();
        files.dedup();
        let shards = files
            .iter()
            .map(|f| Shard::open(&dir.join(f)))
            .collect::<Result<Vec<_>, _>>()?;
        let by_name = pairs
            .iter()
            .map(|(name, file)| {
                let shard = files.binary_search(&file.as_str()).unwrap_or_default();
                (name.clone(), shard)
            })
            .collect();
        Ok(SafetensorsSource {
            location: index.to_path_buf(),
            shards,
            by_name,
        })
    }
}

impl WeightSource for SafetensorsSource {
    fn kind(&self) -> StorageKind {
        StorageKind::Safetensors
    }

    fn location(&self) -> &Path {
        &self.location
    }

    fn tensor(&self, name: &str) -> Result<Option<SourceTensor>, ConvertError> {
        let Some(&i) = self.by_name.get(name) else {
            return Ok(None);
        };
        let shard = &self.shards[i];
        let info = shard
            .info(name)
            .ok_or_else(|| ConvertError::MissingTensor {
                tensor: name.to_string(),
                file: shard.path.clone(),
            })?;
        Ok(Some(SourceTensor {
            dtype: format!("{:?}", info.dtype),
            widens: widener(info.dtype).is_some(),
            shape: info.shape.clone(),
            file: shard.path.clone(),
        }))
    }

    fn names(&self) -> Vec<String> {
        let mut v: Vec<String> = self.by_name.keys().cloned().collect();
        v.sort();
        v
    }

    fn files(&self) -> Vec<PathBuf> {
        let shards = self.shards.iter().map(|s| s.path.clone());
        std::iter::once(self.location.clone())
            .chain(shards)
            .collect()
    }

    fn read_f32(&self, name: &str) -> Result<Vec<f32>, ConvertError> {
        let missing = || ConvertError::MissingTensor {
            tensor: name.to_string(),
            file: self.location.clone(),
        };
        let &i = self.by_name.get(name).ok_or_else(missing)?;
        let shard = &self.shards[i];
        let info = shard.info(name).ok_or_else(missing)?;
        // `read_metadata` checked that the offsets lie inside the file and agree with
        // shape × dtype size.
        let (start, end) = (
            shard.data_start + info.data_offsets.0,
            shard.data_start + info.data_offsets.1,
        );
        let unsupported = || ConvertError::UnsupportedDtype {
            tensor: name.to_string(),
            file: shard.path.clone(),
            dtype: format!("{:?}", info.dtype),
        };
        let (size, one) = widener(info.dtype).ok_or_else(unsupported)?;
        let mut out = vec![0f32; (end - start) / size];
        // Widen a segment at a time and drop each segment's pages once read, so the
        // mapped source and the f32 copy are never both resident in full.
        for (k, dst) in out.chunks_mut(SEGMENT_BYTES / size).enumerate() {
            let seg_start = start + k * SEGMENT_BYTES;
            let src = &shard.mmap[seg_start..seg_start + dst.len() * size];
            dst.par_chunks_mut(TASK_ELEMS)
                .zip(src.par_chunks(TASK_ELEMS * size))
                .for_each(|(d, s)| {
                    for (x, b) in d.iter_mut().zip(s.chunks_exact(size)) {
                        *x = one(b);
                    }
                });
            release(&shard.mmap, seg_start, src.len());
        }
        Ok(out)
    }
}

/// Source bytes widened between two page releases.
const SEGMENT_BYTES: usize = 16 << 20;
/// Elements per rayon task when widening.
const TASK_ELEMS: usize = 1 << 16;

/// Exact widening of one little-endian element to f32.
type WidenFn = fn(&[u8]) -> f32;

/// Bytes per element and the exact widening of one little-endian element, for the
/// dtypes that have one (f32, f16, bf16).
fn widener(dtype: Dtype) -> Option<(usize, WidenFn)> {
    match dtype {
        Dtype::F32 => Some((4, |b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))),
        Dtype::F16 => Some((2, |b| half::f16::from_le_bytes([b[0], b[1]]).to_f32())),
        Dtype::BF16 => Some((2, |b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32())),
        _ => None,
    }
}

/// Drops the mapped pages of a range that has been read, so the resident set does not
/// grow with the checkpoint. Failure only costs memory, so it is ignored.
#[cfg(unix)]
fn release(mmap: &Mmap, offset: usize, len: usize) {
    use memmap2::UncheckedAdvice;
    // SAFETY: the map is a read-only file mapping, so MADV_DONTNEED cannot discard data:
    // a later access faults the page back in from the file. No reference into the range
    // outlives this call (the segment was copied into the f32 output).
    let _ = unsafe { mmap.unchecked_advise_range(UncheckedAdvice::DontNeed, offset, len) };
}

#[cfg(not(unix))]
fn release(_: &Mmap, _: usize, _: usize) {}
