//! The streaming writer (SPEC.md §9).
//!
//! The caller declares every tensor (name, type, shape) up front, so the layout is
//! known before any data; then it writes tensors one at a time, in order. Memory is
//! bounded by one tensor. The output appears atomically: data goes to a temporary
//! file beside the target, which is fsynced and renamed only by [`Writer::finish`];
//! dropping an unfinished writer deletes it, and so does SIGINT, SIGTERM or SIGHUP
//! ([`mamba_files::AtomicFile`]). Only a regular file is ever replaced.

use crate::checksum::{checksum, Hasher};
use crate::error::{FormatError, Result};
use crate::header::{align_up, Header, ALIGNMENT, HEADER_SIZE};
use crate::index::{check_name, tensor_bytes, write_index, TensorInfo, MAX_TENSORS};
use crate::metadata::Metadata;
use crate::quant::QuantType;
use mamba_files::AtomicFile;
use std::collections::HashSet;
use std::io::{BufWriter, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// A tensor declared before writing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TensorSpec {
    /// Unique name.
    pub name: String,
    /// Element type.
    pub ty: QuantType,
    /// Dimensions, outermost first.
    pub shape: Vec<u64>,
}

impl TensorSpec {
    /// A spec from parts.
    pub fn new(name: impl Into<String>, ty: QuantType, shape: &[u64]) -> Self {
        TensorSpec {
            name: name.into(),
            ty,
            shape: shape.to_vec(),
        }
    }
}

/// The computed layout: header (without checksums) and index (without checksums).
#[derive(Clone, Debug)]
struct Layout {
    header: Header,
    tensors: Vec<TensorInfo>,
    meta: Vec<u8>,
}

impl Layout {
    fn new(metadata: &Metadata, specs: &[TensorSpec]) -> Result<Layout> {
        metadata.check_limits()?;
        if specs.len() as u64 > MAX_TENSORS {
            return Err(FormatError::LimitExceeded {
                what: "tensor count",
                found: specs.len() as u64,
                limit: MAX_TENSORS,
            });
        }
        let mut tensors: Vec<TensorInfo> = Vec::with_capacity(specs.len());
        let mut names = HashSet::with_capacity(specs.len());
        let mut offset = 0u64;
        for s in specs {
            check_name(&s.name)?;
            if !names.insert(s.name.as_str()) {
                return Err(FormatError::DuplicateTensor(s.name.clone()));
            }
            let size = tensor_bytes(&s.name, s.ty, &s.shape)?;
            offset =
                align_up(offset).ok_or_else(|| FormatError::Writer("offset overflow".into()))?;
            tensors.push(TensorInfo {
                name: s.name.clone(),
                ty: s.ty,
                shape: s.shape.clone(),
                offset,
                size,
                checksum: 0,
            });
            offset = offset
                .checked_add(size)
                .ok_or_else(|| FormatError::Writer("data section size overflows".into()))?;
        }
        let meta = metadata.to_bytes();
        let index_size = write_index(&tensors).len() as u64;
        let index_offset = HEADER_SIZE as u64 + meta.len() as u64;
        let header = Header {
            n_metadata: metadata.len() as u64,
            metadata_offset: HEADER_SIZE as u64,
            metadata_size: meta.len() as u64,
            n_tensors: tensors.len() as u64,
            index_offset,
            index_size,
            data_offset: align_up(index_offset + index_size).expect("small"),
            data_size: offset,
            metadata_checksum: checksum(&meta),
            index_checksum: 0,
        };
        Ok(Layout {
            header,
            tensors,
            meta,
        })
    }

    /// Header, metadata, index and the padding up to the data section.
    fn prefix(&mut self) -> Vec<u8> {
        let index = write_index(&self.tensors);
        self.header.index_checksum = checksum(&index);
        let mut out = self.header.to_bytes().to_vec();
        out.extend_from_slice(&self.meta);
        out.extend_from_slice(&index);
        out.resize(self.header.data_offset as usize, 0);
        out
    }
}

/// Encodes a whole file in memory (for tests and small files).
///
/// # Errors
/// An invalid name, shape or duplicate, or data whose length disagrees with its spec.
pub fn write_to_vec(metadata: &Metadata, tensors: &[(TensorSpec, &[u8])]) -> Result<Vec<u8>> {
    let specs: Vec<TensorSpec> = tensors.iter().map(|(s, _)| s.clone()).collect();
    let mut layout = Layout::new(metadata, &specs)?;
    for (info, (_, data)) in layout.tensors.iter_mut().zip(tensors) {
        if data.len() as u64 != info.size {
            return Err(FormatError::Writer(format!(
                "tensor `{}` has {} bytes, expected {}",
                info.name,
                data.len(),
                info.size
            )));
        }
        info.checksum = checksum(data);
    }
    let mut out = layout.prefix();
    for (info, (_, data)) in layout.tensors.iter().zip(tensors) {
        out.resize((layout.header.data_offset + info.offset) as usize, 0);
        out.extend_from_slice(data);
    }
    Ok(out)
}

/// Writes a `.mbin` file tensor by tensor; see the module docs.
pub struct Writer {
    layout: Layout,
    tmp_path: PathBuf,
    /// Dropped unfinished, the temporary file goes with it.
    file: Option<BufWriter<AtomicFile>>,
    next: usize,
    pos: u64,
}

fn io(context: String) -> impl FnOnce(std::io::Error) -> FormatError {
    move |source| FormatError::Io { context, source }
}

impl Writer {
    /// Starts writing `path`: validates the declared layout and creates the temporary
    /// file. With `overwrite == false`, an existing `path` is an error.
    pub fn create(
        path: &Path,
        metadata: &Metadata,
        tensors: &[TensorSpec],
        overwrite: bool,
    ) -> Result<Writer> {
        Self::create_checked(path, &[], metadata, tensors, overwrite)
    }

    /// [`Writer::create`] that also refuses to write over any of `inputs` (the files
    /// the caller reads from), and over anything but a regular file
    /// ([`mamba_files::check_output`]).
    pub fn create_checked(
        path: &Path,
        inputs: &[&Path],
        metadata: &Metadata,
        tensors: &[TensorSpec],
        overwrite: bool,
    ) -> Result<Writer> {
        let mut layout = Layout::new(metadata, tensors)?;
        let file = AtomicFile::create(path, inputs, overwrite)?;
        let tmp_path = file.tmp_path().to_path_buf();
        let mut w = Writer {
            tmp_path,
            file: Some(BufWriter::with_capacity(1 << 20, file)),
            next: 0,
            pos: 0,
            layout: layout.clone(),
        };
        // The prefix is written now and rewritten with the checksums at the end.
        let prefix = layout.prefix();
        w.put(&prefix)?;
        Ok(w)
    }

    fn put(&mut self, bytes: &[u8]) -> Result<()> {
        let ctx = format!("writing {}", self.tmp_path.display());
        self.file
            .as_mut()
            .expect("open until finish")
            .write_all(bytes)
            .map_err(io(ctx))?;
        self.pos += bytes.len() as u64;
        Ok(())
    }

    /// The name of the next tensor to write, if any remain.
    pub fn next_tensor(&self) -> Option<&str> {
        self.layout.tensors.get(self.next).map(|t| t.name.as_str())
    }

    /// Writes the next tensor's bytes; tensors must come in declaration order.
    pub fn write_tensor(&mut self, name: &str, data: &[u8]) -> Result<()> {
        let Some(info) = self.layout.tensors.get(self.next) else {
            return Err(FormatError::Writer(format!(
                "tensor `{name}` written after all declared tensors"
            )));
        };
        if info.name != name {
            return Err(FormatError::Writer(format!(
                "expected tensor `{}` next, got `{name}`",
                info.name
            )));
        }
        if data.len() as u64 != info.size {
            return Err(FormatError::Writer(format!(
                "tensor `{name}` has {} bytes, expected {}",
                data.len(),
                info.size
            )));
        }
        let start = self.layout.header.data_offset + info.offset;
        let pad = vec![0u8; (start - self.pos) as usize];
        debug_assert!(pad.len() < ALIGNMENT as usize);
        self.put(&pad)?;
        let mut h = Hasher::new();
        h.update(data);
        self.layout.tensors[self.next].checksum = h.finish();
        self.put(data)?;
        self.next += 1;
        Ok(())
    }

    /// Writes the final index and header, fsyncs, and renames the file into place.
    pub fn finish(mut self) -> Result<()> {
        if self.next != self.layout.tensors.len() {
            return Err(FormatError::Writer(format!(
                "{} declared tensors were not written",
                self.layout.tensors.len() - self.next
            )));
        }
        let prefix = self.layout.prefix();
        let ctx = format!("writing {}", self.tmp_path.display());
        let mut file = self
            .file
            .take()
            .expect("open until finish")
            .into_inner()
            .map_err(|e| FormatError::Io {
                context: ctx.clone(),
                source: e.into_error(),
            })?;
        file.seek(SeekFrom::Start(0)).map_err(io(ctx.clone()))?;
        file.write_all(&prefix).map_err(io(ctx))?;
        file.commit()?;
        Ok(())
    }
}
