//! Reader for PyTorch `pytorch_model.bin` checkpoints: the zip + pickle format that
//! `torch.save(state_dict)` writes (torch ≥ 1.6), in pure Rust and without running any Python.
//!
//! The archive holds `<prefix>/data.pkl` (the pickled state dict), `<prefix>/data/<key>` (one raw
//! little-endian storage per key), and optionally `<prefix>/byteorder` (`little`) and
//! `<prefix>/version`. The prefix is whatever archive name torch chose (`archive`, the file stem,
//! ...), so `data.pkl` is found by suffix.
//!
//! [`TorchCheckpoint::open`] memory-maps the file, parses the zip directory and the pickle (with
//! the non-executing unpickler in `torch/pickle.rs`), and checks every tensor against its storage.
//! Storage bytes are only touched by [`TorchCheckpoint::read_f32`], one tensor at a time, straight
//! from the map when the entry is stored uncompressed (as torch writes it). Every entry read is
//! checked against the CRC-32 in the zip directory (stored ones here, compressed ones by the zip
//! crate's decoder), so flipped bytes in a storage are refused, not converted.
//!
//! Format source: `torch/serialization.py` (`_save`, `_load`) and `torch/_utils.py`
//! (`_rebuild_tensor_v2`) at <https://github.com/pytorch/pytorch/blob/v2.5.0/torch/serialization.py>.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use std::io::{Cursor, Read};
use std::path::{Path, PathBuf};

use mamba_files::{open_regular, FileError};
use memmap2::Mmap;
use zip::result::ZipError;
use zip::{CompressionMethod, ZipArchive};

mod pickle;
mod pickle_error;
#[cfg(test)]
mod tests;

pub use pickle::PickleError;
use pickle::RawTensor;

/// Largest `data.pkl` accepted, in bytes (a state dict costs about 100 bytes per tensor).
const MAX_PICKLE_BYTES: u64 = 64 << 20;
/// Largest `byteorder` entry accepted, in bytes.
const MAX_BYTEORDER_BYTES: u64 = 16;

// ---------------------------------------------------------------------------------------------
// Element types
// ---------------------------------------------------------------------------------------------

/// Element type of a torch storage (and so of every tensor viewing it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TorchDtype {
    /// `torch.float64`.
    F64,
    /// `torch.float32`.
    F32,
    /// `torch.float16`.
    F16,
    /// `torch.bfloat16`.
    BF16,
    /// `torch.int64`.
    I64,
    /// `torch.int32`.
    I32,
    /// `torch.int16`.
    I16,
    /// `torch.int8`.
    I8,
    /// `torch.uint8`; also the element type of a `torch.UntypedStorage`.
    U8,
    /// `torch.bool`.
    Bool,
}

/// Everything the reader knows about one dtype.
struct DtypeDesc {
    dtype: TorchDtype,
    /// Bytes per element.
    size: usize,
    /// Legacy typed-storage class in the `torch` module (persistent ids name it).
    storage_class: &'static str,
    /// Names of the dtype object in the `torch` module (`torch.float32`, `torch.float`).
    torch_names: &'static [&'static str],
    /// Exact widening of one little-endian element to f32, where one exists.
    widen: Option<fn(&[u8]) -> f32>,
}

/// One row per [`TorchDtype`], in declaration order (checked at compile time below).
const DTYPE_TABLE: [DtypeDesc; 10] = [
    DtypeDesc {
        dtype: TorchDtype::F64,
        size: 8,
        storage_class: "DoubleStorage",
        torch_names: &["float64", "double"],
        widen: None,
    },
    DtypeDesc {
        dtype: TorchDtype::F32,
        size: 4,
        storage_class: "FloatStorage",
        torch_names: &["float32", "float"],
        widen: Some(widen_f32),
    },
    DtypeDesc {
        dtype: TorchDtype::F16,
        size: 2,
        storage_class: "HalfStorage",
        torch_names: &["float16", "half"],
        widen: Some(widen_f16),
    },
    DtypeDesc {
        dtype: TorchDtype::BF16,
        size: 2,
        storage_class: "BFloat16Storage",
        torch_names: &["bfloat16"],
        widen: Some(widen_bf16),
    },
    DtypeDesc {
        dtype: TorchDtype::I64,
        size: 8,
        storage_class: "LongStorage",
        torch_names: &["int64", "long"],
        widen: None,
    },
    DtypeDesc {
        dtype: TorchDtype::I32,
        size: 4,
        storage_class: "IntStorage",
        torch_names: &["int32", "int"],
        widen: None,
    },
    DtypeDesc {
        dtype: TorchDtype::I16,
        size: 2,
        storage_class: "ShortStorage",
        torch_names: &["int16", "short"],
        widen: None,
    },
    DtypeDesc {
        dtype: TorchDtype::I8,
        size: 1,
        storage_class: "CharStorage",
        torch_names: &["int8"],
        widen: None,
    },
    DtypeDesc {
        dtype: TorchDtype::U8,
        size: 1,
        storage_class: "ByteStorage",
        torch_names: &["uint8"],
        widen: None,
    },
    DtypeDesc {
        dtype: TorchDtype::Bool,
        size: 1,
        storage_class: "BoolStorage",
        torch_names: &["bool"],
        widen: None,
    },
];

static DTYPES: [DtypeDesc; 10] = DTYPE_TABLE;

const _: () = {
    let mut i = 0;
    while i < DTYPE_TABLE.len() {
        assert!(DTYPE_TABLE[i].dtype as usize == i);
        i += 1;
    }
};

fn widen_f32(b: &[u8]) -> f32 {
    f32::from_le_bytes([b[0], b[1], b[2], b[3]])
}

fn widen_f16(b: &[u8]) -> f32 {
    half::f16::from_le_bytes([b[0], b[1]]).to_f32()
}

fn widen_bf16(b: &[u8]) -> f32 {
    half::bf16::from_le_bytes([b[0], b[1]]).to_f32()
}

impl TorchDtype {
    fn desc(self) -> &'static DtypeDesc {
        &DTYPES[self as usize]
    }

    /// Bytes per element.
    pub fn size_in_bytes(self) -> usize {
        self.desc().size
    }

    /// Whether [`TorchCheckpoint::read_f32`] can widen this type exactly (f32, f16, bf16).
    pub fn widens_to_f32(self) -> bool {
        self.desc().widen.is_some()
    }

    /// The dtype of a legacy typed-storage class such as `FloatStorage`.
    fn from_storage_class(name: &str) -> Option<Self> {
        DTYPES
            .iter()
            .find(|d| d.storage_class == name)
            .map(|d| d.dtype)
    }

    /// The dtype named by a `torch` attribute such as `float32` or `half`.
    fn from_torch_name(name: &str) -> Option<Self> {
        DTYPES
            .iter()
            .find(|d| d.torch_names.contains(&name))
            .map(|d| d.dtype)
    }
}

impl fmt::Display for TorchDtype {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "torch.{}", self.desc().torch_names[0])
    }
}

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

/// Why a checkpoint could not be opened or a tensor read.
#[derive(thiserror::Error, Debug)]
pub enum TorchError {
    /// The file could not be opened or mapped.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The checkpoint.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The checkpoint is not a regular file (a directory, FIFO, device, socket).
    #[error("{source}")]
    NotRegular {
        /// The refusal; it names the path and the kind of file.
        source: FileError,
    },
    /// An entry's bytes do not match the CRC-32 that the zip directory records for it.
    #[error(
        "entry {entry} of {path} is corrupt: its CRC-32 is {actual:08x}, the zip directory \
         records {expected:08x}"
    )]
    CrcMismatch {
        /// The checkpoint.
        path: PathBuf,
        /// The entry name.
        entry: String,
        /// CRC-32 from the central directory.
        expected: u32,
        /// CRC-32 of the bytes in the file.
        actual: u32,
    },
    /// The zip structure is invalid (also: a truncated file, or a pre-1.6 non-zip checkpoint).
    #[error("invalid zip archive {path} (entry {entry:?}): {source}")]
    Zip {
        /// The checkpoint.
        path: PathBuf,
        /// The entry being read, if any.
        entry: Option<String>,
        /// The underlying error.
        source: ZipError,
    },
    /// No entry named `data.pkl` (or `<prefix>/data.pkl`).
    #[error("no data.pkl in {path}")]
    MissingPickle {
        /// The checkpoint.
        path: PathBuf,
    },
    /// More than one `data.pkl` entry.
    #[error("more than one data.pkl in {path}: {first} and {second}")]
    MultiplePickles {
        /// The checkpoint.
        path: PathBuf,
        /// One entry name.
        first: String,
        /// Another entry name.
        second: String,
    },
    /// An entry's data runs past the end of the file.
    #[error("entry {entry} of {path} ends at byte {end}, past the file's {file_len} bytes")]
    EntryOutOfBounds {
        /// The checkpoint.
        path: PathBuf,
        /// The entry name.
        entry: String,
        /// End of its data (saturated on overflow).
        end: u64,
        /// File length.
        file_len: u64,
    },
    /// A stored (uncompressed) entry whose compressed and uncompressed sizes differ.
    #[error("stored entry {entry} of {path} has compressed size {compressed} != size {size}")]
    StoredSizeMismatch {
        /// The checkpoint.
        path: PathBuf,
        /// The entry name.
        entry: String,
        /// Compressed size from the directory.
        compressed: u64,
        /// Uncompressed size from the directory.
        size: u64,
    },
    /// An entry compressed with something other than deflate.
    #[error("entry {entry} of {path} uses unsupported compression {method}")]
    UnsupportedCompression {
        /// The checkpoint.
        path: PathBuf,
        /// The entry name.
        entry: String,
        /// The method, as the zip crate prints it.
        method: String,
    },
    /// A metadata entry (`data.pkl`, `byteorder`) larger than its cap.
    #[error("entry {entry} of {path} is {size} bytes, over the {limit}-byte limit")]
    EntryTooLarge {
        /// The checkpoint.
        path: PathBuf,
        /// The entry name.
        entry: String,
        /// Declared size.
        size: u64,
        /// The cap.
        limit: u64,
    },
    /// An entry decompressed to a different length than the directory declares.
    #[error("entry {entry} of {path} decompressed to {actual} bytes, expected {expected}")]
    EntryLengthMismatch {
        /// The checkpoint.
        path: PathBuf,
        /// The entry name.
        entry: String,
        /// Declared size.
        expected: u64,
        /// Bytes actually produced.
        actual: u64,
    },
    /// `byteorder` is not `little` (big-endian checkpoints are not supported).
    #[error("unsupported byte order {found:?} in {path}")]
    UnsupportedByteOrder {
        /// The checkpoint.
        path: PathBuf,
        /// The entry's contents.
        found: String,
    },
    /// `data.pkl` is malformed, uses something outside the safe subset, or is not a state dict.
    #[error("bad pickle in {path}: {source}")]
    Pickle {
        /// The checkpoint.
        path: PathBuf,
        /// What the unpickler rejected.
        source: PickleError,
    },
    /// A tensor's storage key has no `<prefix>/data/<key>` entry.
    #[error("tensor {name} in {path} refers to missing storage {key}")]
    MissingStorage {
        /// The checkpoint.
        path: PathBuf,
        /// The tensor.
        name: String,
        /// The storage key.
        key: String,
    },
    /// A storage entry whose length differs from `numel * element size` in the pickle.
    #[error("storage {key} in {path} is {actual} bytes, the pickle declares {expected}")]
    StorageSizeMismatch {
        /// The checkpoint.
        path: PathBuf,
        /// The storage key.
        key: String,
        /// Bytes the pickle declares (`numel * element size`, saturated).
        expected: u64,
        /// Bytes in the zip entry.
        actual: u64,
    },
    /// A tensor whose last element lies outside its storage.
    #[error("tensor {name} in {path} reaches element {end} of a {storage_numel}-element storage")]
    TensorOutOfBounds {
        /// The checkpoint.
        path: PathBuf,
        /// The tensor.
        name: String,
        /// One past its last element, in storage elements (saturated).
        end: u64,
        /// Storage length in elements.
        storage_numel: u64,
    },
    /// A tensor with more elements than its storage (overlapping strides, e.g. an `expand`ed
    /// view); rejected so that reading it cannot allocate more than the file holds.
    #[error(
        "tensor {name} in {path} has {numel} elements, more than its storage's {storage_numel}"
    )]
    TensorExceedsStorage {
        /// The checkpoint.
        path: PathBuf,
        /// The tensor.
        name: String,
        /// Its element count (saturated).
        numel: u64,
        /// Storage length in elements.
        storage_numel: u64,
    },
    /// No tensor of that name.
    #[error("no tensor {name} in {path}")]
    UnknownTensor {
        /// The checkpoint.
        path: PathBuf,
        /// The name asked for.
        name: String,
    },
    /// The tensor's dtype does not widen exactly to f32.
    #[error("tensor {name} in {path} has dtype {dtype}, which does not widen exactly to f32")]
    UnsupportedDtype {
        /// The checkpoint.
        path: PathBuf,
        /// The tensor.
        name: String,
        /// Its dtype.
        dtype: TorchDtype,
    },
}

// ---------------------------------------------------------------------------------------------
// Public types
// ---------------------------------------------------------------------------------------------

/// One state-dict entry: a strided view of a storage.
#[derive(Debug, Clone, PartialEq)]
pub struct TorchTensorInfo {
    /// State-dict key, e.g. `backbone.layers.0.mixer.A_log`.
    pub name: String,
    /// Element type.
    pub dtype: TorchDtype,
    /// `size()`.
    pub shape: Vec<usize>,
    /// Storage key (`<prefix>/data/<key>`).
    storage_key: String,
    /// `storage_offset()`, in elements.
    offset: usize,
    /// `stride()`, in elements.
    strides: Vec<usize>,
}

impl TorchTensorInfo {
    /// Number of elements (product of `shape`; 1 for a scalar).
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }
}

/// Where one zip entry's bytes are.
#[derive(Debug, Clone)]
struct Entry {
    name: String,
    /// Position in the zip directory.
    index: usize,
    /// File offset of the (possibly compressed) data.
    data_start: usize,
    compressed_size: usize,
    size: u64,
    stored: bool,
    /// CRC-32 of the uncompressed bytes, from the central directory.
    crc32: u32,
}

/// An open `pytorch_model.bin`: the mapped file plus the parsed and validated tensor index.
pub struct TorchCheckpoint {
    path: PathBuf,
    mmap: Mmap,
    tensors: Vec<TorchTensorInfo>,
    by_name: HashMap<String, usize>,
    /// Storage key -> entry.
    storages: HashMap<String, Entry>,
}

impl fmt::Debug for TorchCheckpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TorchCheckpoint")
            .field("path", &self.path)
            .field("tensors", &self.tensors.len())
            .finish()
    }
}

// ---------------------------------------------------------------------------------------------
// Opening
// ---------------------------------------------------------------------------------------------

impl TorchCheckpoint {
    /// Maps `path`, parses its zip directory and pickle, and validates every tensor against its
    /// storage (exists, length matches the pickle, view in bounds). Reads no storage bytes.
    pub fn open(path: &Path) -> Result<Self, TorchError> {
        let io = |source| TorchError::Io {
            path: path.to_owned(),
            source,
        };
        // Regular files only: mapping a FIFO would block, a device would fail with
        // "No such device".
        let file = open_regular(path).map_err(|e| match e {
            FileError::Io { source, .. } => io(source),
            other => TorchError::NotRegular { source: other },
        })?;
        // SAFETY: the map is read-only and only read through bounds-checked slices. It is
        // undefined behaviour only if another process truncates or rewrites the file while it
        // is mapped, the usual caveat of mmap-based loaders, accepted for immutable inputs.
        let mmap = unsafe { Mmap::map(&file) }.map_err(io)?;
        let reader = Reader {
            path,
            bytes: &mmap[..],
        };

        let entries = reader.entries()?;
        let pickle = find_pickle(path, &entries)?;
        let prefix = &pickle.name[..pickle.name.len() - "data.pkl".len()];

        let byteorder = format!("{prefix}byteorder");
        if let Some(e) = entries.iter().find(|e| e.name == byteorder) {
            let bytes = reader.read_small(e, MAX_BYTEORDER_BYTES)?;
            if bytes != b"little" {
                return Err(TorchError::UnsupportedByteOrder {
                    path: path.to_owned(),
                    found: String::from_utf8_lossy(&bytes).into_owned(),
                });
            }
        }

        let pkl = reader.read_small(pickle, MAX_PICKLE_BYTES)?;
        let raws = pickle::parse_state_dict(&pkl).map_err(|source| TorchError::Pickle {
            path: path.to_owned(),
            source,
        })?;

        let data_prefix = format!("{prefix}data/");
        let storages: HashMap<String, Entry> = entries
            .into_iter()
            .filter_map(|e| {
                let key = e.name.strip_prefix(&data_prefix)?.to_owned();
                Some((key, e))
            })
            .collect();

        let tensors = raws
            .into_iter()
            .map(|raw| validate(path, &storages, raw))
            .collect::<Result<Vec<_>, _>>()?;
        // `parse_state_dict` rejects duplicate names, so this map is one-to-one.
        let by_name = tensors
            .iter()
            .enumerate()
            .map(|(i, t)| (t.name.clone(), i))
            .collect();
        Ok(TorchCheckpoint {
            path: path.to_owned(),
            mmap,
            tensors,
            by_name,
            storages,
        })
    }

    /// All tensors, in state-dict (pickle) order.
    pub fn tensors(&self) -> &[TorchTensorInfo] {
        &self.tensors
    }

    /// The tensor called `name`, if any.
    pub fn get(&self, name: &str) -> Option<&TorchTensorInfo> {
        self.by_name.get(name).map(|&i| &self.tensors[i])
    }

    /// The tensor's values in row-major order, widened exactly to f32 (f32 copies; f16 and bf16
    /// widen exactly). Honours the storage offset and arbitrary strides, so tensors sharing one
    /// storage (a tied `lm_head`/embedding) and non-contiguous views read correctly. Only this
    /// tensor's storage is touched.
    pub fn read_f32(&self, name: &str) -> Result<Vec<f32>, TorchError> {
        let info = self.get(name).ok_or_else(|| TorchError::UnknownTensor {
            path: self.path.clone(),
            name: name.to_owned(),
        })?;
        let widen = info
            .dtype
            .desc()
            .widen
            .ok_or_else(|| TorchError::UnsupportedDtype {
                path: self.path.clone(),
                name: name.to_owned(),
                dtype: info.dtype,
            })?;
        let entry =
            self.storages
                .get(&info.storage_key)
                .ok_or_else(|| TorchError::MissingStorage {
                    path: self.path.clone(),
                    name: name.to_owned(),
                    key: info.storage_key.clone(),
                })?;
        let reader = Reader {
            path: &self.path,
            bytes: &self.mmap[..],
        };
        let bytes = reader.read_entry(entry)?;
        Ok(gather(&bytes, info, widen))
    }
}

/// Exactly one entry called `data.pkl` or `<prefix>/data.pkl`.
fn find_pickle<'e>(path: &Path, entries: &'e [Entry]) -> Result<&'e Entry, TorchError> {
    let mut found = entries
        .iter()
        .filter(|e| e.name == "data.pkl" || e.name.ends_with("/data.pkl"));
    let first = found.next().ok_or_else(|| TorchError::MissingPickle {
        path: path.to_owned(),
    })?;
    if let Some(second) = found.next() {
        return Err(TorchError::MultiplePickles {
            path: path.to_owned(),
            first: first.name.clone(),
            second: second.name.clone(),
        });
    }
    Ok(first)
}

/// Checks one pickle record against the zip and converts it to the public form.
fn validate(
    path: &Path,
    storages: &HashMap<String, Entry>,
    raw: RawTensor,
) -> Result<TorchTensorInfo, TorchError> {
    let entry = storages
        .get(&raw.storage_key)
        .ok_or_else(|| TorchError::MissingStorage {
            path: path.to_owned(),
            name: raw.name.clone(),
            key: raw.storage_key.clone(),
        })?;
    let elem = raw.dtype.size_in_bytes() as u64;
    let expected = raw.storage_numel.saturating_mul(elem);
    if raw.storage_numel.checked_mul(elem) != Some(entry.size) {
        return Err(TorchError::StorageSizeMismatch {
            path: path.to_owned(),
            key: raw.storage_key,
            expected,
            actual: entry.size,
        });
    }

    // Elements viewed, and one past the furthest element (torch strides are non-negative).
    let mut numel: Option<u64> = Some(1);
    let mut last: Option<u64> = Some(raw.offset);
    for (&n, &s) in raw.shape.iter().zip(&raw.stride) {
        numel = numel.and_then(|m| m.checked_mul(n));
        let reach = n.saturating_sub(1).checked_mul(s);
        last = last.and_then(|l| reach.and_then(|r| l.checked_add(r)));
    }
    let storage_numel = raw.storage_numel;
    let numel = numel.unwrap_or(u64::MAX);
    if numel > storage_numel {
        return Err(TorchError::TensorExceedsStorage {
            path: path.to_owned(),
            name: raw.name,
            numel,
            storage_numel,
        });
    }
    // An empty tensor reads nothing but its offset must still lie within the storage.
    let end = if numel == 0 {
        Some(raw.offset)
    } else {
        last.and_then(|l| l.checked_add(1))
    };
    let end = end.unwrap_or(u64::MAX);
    if end > storage_numel {
        return Err(TorchError::TensorOutOfBounds {
            path: path.to_owned(),
            name: raw.name,
            end,
            storage_numel,
        });
    }

    // Bounded by the storage, so these only fail on 32-bit targets with > 4 GiB storages.
    let to_usize = |dims: &[u64]| -> Option<Vec<usize>> {
        dims.iter().map(|&v| usize::try_from(v).ok()).collect()
    };
    let converted = (
        to_usize(&raw.shape),
        to_usize(&raw.stride),
        usize::try_from(raw.offset).ok(),
        usize::try_from(entry.size).ok(),
    );
    let (Some(shape), Some(strides), Some(offset), Some(_)) = converted else {
        return Err(TorchError::TensorOutOfBounds {
            path: path.to_owned(),
            name: raw.name,
            end,
            storage_numel,
        });
    };
    Ok(TorchTensorInfo {
        name: raw.name,
        dtype: raw.dtype,
        shape,
        storage_key: raw.storage_key,
        offset,
        strides,
    })
}

// ---------------------------------------------------------------------------------------------
// Zip access
// ---------------------------------------------------------------------------------------------

/// The mapped file, with the path for errors.
struct Reader<'a> {
    path: &'a Path,
    bytes: &'a [u8],
}

impl Reader<'_> {
    fn zip_err(&self, entry: Option<&str>, source: ZipError) -> TorchError {
        TorchError::Zip {
            path: self.path.to_owned(),
            entry: entry.map(str::to_owned),
            source,
        }
    }

    fn archive(&self) -> Result<ZipArchive<Cursor<&[u8]>>, TorchError> {
        ZipArchive::new(Cursor::new(self.bytes)).map_err(|e| self.zip_err(None, e))
    }

    /// Every entry's location, checked to lie inside the file.
    fn entries(&self) -> Result<Vec<Entry>, TorchError> {
        let mut archive = self.archive()?;
        let file_len = self.bytes.len() as u64;
        (0..archive.len())
            .map(|index| {
                let file = archive
                    .by_index_raw(index)
                    .map_err(|e| self.zip_err(None, e))?;
                let name = file.name().to_owned();
                let (start, compressed, size) =
                    (file.data_start(), file.compressed_size(), file.size());
                let stored = match file.compression() {
                    CompressionMethod::Stored => true,
                    CompressionMethod::Deflated => false,
                    other => {
                        return Err(TorchError::UnsupportedCompression {
                            path: self.path.to_owned(),
                            entry: name,
                            method: other.to_string(),
                        })
                    }
                };
                let end = start.saturating_add(compressed);
                if end > file_len {
                    return Err(TorchError::EntryOutOfBounds {
                        path: self.path.to_owned(),
                        entry: name,
                        end,
                        file_len,
                    });
                }
                if stored && compressed != size {
                    return Err(TorchError::StoredSizeMismatch {
                        path: self.path.to_owned(),
                        entry: name,
                        compressed,
                        size,
                    });
                }
                // Both fit in usize: they are bounded by the mapped length.
                Ok(Entry {
                    name,
                    index,
                    data_start: start as usize,
                    compressed_size: compressed as usize,
                    size,
                    stored,
                    crc32: file.crc32(),
                })
            })
            .collect()
    }

    /// A small metadata entry, read through the zip crate so its CRC is checked.
    fn read_small(&self, entry: &Entry, limit: u64) -> Result<Vec<u8>, TorchError> {
        if entry.size > limit {
            return Err(TorchError::EntryTooLarge {
                path: self.path.to_owned(),
                entry: entry.name.clone(),
                size: entry.size,
                limit,
            });
        }
        self.decompress(entry)
    }

    /// A storage's bytes: borrowed from the map when stored (after checking their CRC-32,
    /// which the zip crate is bypassed for), else decompressed.
    fn read_entry(&self, entry: &Entry) -> Result<Cow<'_, [u8]>, TorchError> {
        if entry.stored {
            let range = entry.data_start..entry.data_start + entry.compressed_size;
            let bytes = &self.bytes[range];
            let actual = crc32fast::hash(bytes);
            if actual != entry.crc32 {
                return Err(TorchError::CrcMismatch {
                    path: self.path.to_owned(),
                    entry: entry.name.clone(),
                    expected: entry.crc32,
                    actual,
                });
            }
            Ok(Cow::Borrowed(bytes))
        } else {
            self.decompress(entry).map(Cow::Owned)
        }
    }

    /// Reads one entry through the zip crate's decoder (CRC-checked), refusing to produce more
    /// than the declared size.
    fn decompress(&self, entry: &Entry) -> Result<Vec<u8>, TorchError> {
        let mut archive = self.archive()?;
        let file = archive
            .by_index(entry.index)
            .map_err(|e| self.zip_err(Some(&entry.name), e))?;
        let mut out = Vec::new();
        file.take(entry.size.saturating_add(1))
            .read_to_end(&mut out)
            .map_err(|e| self.zip_err(Some(&entry.name), ZipError::Io(e)))?;
        if out.len() as u64 != entry.size {
            return Err(TorchError::EntryLengthMismatch {
                path: self.path.to_owned(),
                entry: entry.name.clone(),
                expected: entry.size,
                actual: out.len() as u64,
            });
        }
        Ok(out)
    }
}

// ---------------------------------------------------------------------------------------------
// Strided gather
// ---------------------------------------------------------------------------------------------

/// Reads a validated view of `storage` in row-major order.
fn gather(storage: &[u8], info: &TorchTensorInfo, widen: fn(&[u8]) -> f32) -> Vec<f32> {
    let size = info.dtype.size_in_bytes();
    let numel = info.numel();
    let element = |pos: usize| widen(&storage[pos * size..(pos + 1) * size]);
    if numel == 0 {
        return Vec::new();
    }
    if is_contiguous(&info.shape, &info.strides) {
        let bytes = &storage[info.offset * size..(info.offset + numel) * size];
        return bytes.chunks_exact(size).map(widen).collect();
    }
    // Odometer over the index; `pos` only ever moves within the validated extent.
    let ndim = info.shape.len();
    let mut index = vec![0usize; ndim];
    let mut pos = info.offset;
    let mut out = Vec::with_capacity(numel);
    for _ in 0..numel {
        out.push(element(pos));
        for d in (0..ndim).rev() {
            if index[d] + 1 < info.shape[d] {
                index[d] += 1;
                pos += info.strides[d];
                break;
            }
            pos -= info.strides[d] * index[d];
            index[d] = 0;
        }
    }
    out
}

/// Row-major contiguous, ignoring the strides of size-1 dimensions.
fn is_contiguous(shape: &[usize], strides: &[usize]) -> bool {
    let mut expected = 1;
    for (&n, &s) in shape.iter().zip(strides).rev() {
        if n != 1 && s != expected {
            return false;
        }
        expected *= n;
    }
    true
}
