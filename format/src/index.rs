//! The tensor index: one variable-length record per tensor (SPEC.md §4).

use crate::cursor::Cursor;
use crate::error::{FormatError, Result, Section};
use crate::header::align_up;
use crate::quant::QuantType;
use std::collections::HashSet;

/// Longest tensor name, in bytes.
pub const MAX_NAME_LEN: usize = 256;
/// Most tensors in one file.
pub const MAX_TENSORS: u64 = 1 << 20;
/// Most dimensions of one tensor.
pub const MAX_DIMS: usize = 4;
/// Bytes of an index record besides the name.
pub const RECORD_FIXED_SIZE: usize = 2 + 4 + 4 + 8 * MAX_DIMS + 8 + 8 + 8;

/// One tensor's index record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TensorInfo {
    /// Unique name (SPEC.md §5 lists the standard ones).
    pub name: String,
    /// Element type.
    pub ty: QuantType,
    /// Dimensions, outermost first; the last is contiguous (the row length).
    pub shape: Vec<u64>,
    /// Offset from the start of the data section; a multiple of 64.
    pub offset: u64,
    /// Length in bytes.
    pub size: u64,
    /// XXH3-64 of the tensor's bytes.
    pub checksum: u64,
}

impl TensorInfo {
    /// Number of elements.
    pub fn n_elements(&self) -> u64 {
        self.shape.iter().product()
    }

    /// Length of one row (the last dimension).
    pub fn row_len(&self) -> u64 {
        *self.shape.last().unwrap_or(&1)
    }

    /// Number of rows (product of all but the last dimension).
    pub fn n_rows(&self) -> u64 {
        self.shape.iter().rev().skip(1).product()
    }
}

/// Checks a tensor name: 1..=256 bytes, no control characters.
pub fn check_name(name: &str) -> Result<()> {
    let bad = |why| {
        Err(FormatError::InvalidName {
            what: "tensor",
            name: name.to_string(),
            why,
        })
    };
    if name.is_empty() || name.len() > MAX_NAME_LEN {
        return bad("must be 1 to 256 bytes");
    }
    if name.chars().any(char::is_control) {
        return bad("control characters are not allowed");
    }
    Ok(())
}

/// Checks a shape and type, returning the byte length they imply.
pub fn tensor_bytes(name: &str, ty: QuantType, shape: &[u64]) -> Result<u64> {
    let bad = |why: &str| FormatError::BadShape {
        tensor: name.to_string(),
        dims: shape.to_vec(),
        why: why.to_string(),
    };
    if shape.is_empty() || shape.len() > MAX_DIMS {
        return Err(bad("must have 1 to 4 dimensions"));
    }
    if shape.contains(&0) {
        return Err(bad("every dimension must be at least 1"));
    }
    let n = shape
        .iter()
        .try_fold(1u64, |a, &d| a.checked_mul(d))
        .ok_or_else(|| bad("element count overflows"))?;
    let row = *shape.last().expect("non-empty");
    let block = ty.block_size() as u64;
    if !row.is_multiple_of(block) {
        return Err(FormatError::NotBlockMultiple {
            tensor: name.to_string(),
            ty,
            row,
            block,
        });
    }
    ty.bytes_for(n).ok_or_else(|| bad("byte length overflows"))
}

/// Encodes the index.
pub fn write_index(tensors: &[TensorInfo]) -> Vec<u8> {
    let mut out = Vec::new();
    for t in tensors {
        out.extend_from_slice(&(t.name.len() as u16).to_le_bytes());
        out.extend_from_slice(t.name.as_bytes());
        out.extend_from_slice(&t.ty.id().to_le_bytes());
        out.extend_from_slice(&(t.shape.len() as u32).to_le_bytes());
        for i in 0..MAX_DIMS {
            out.extend_from_slice(&t.shape.get(i).copied().unwrap_or(0).to_le_bytes());
        }
        out.extend_from_slice(&t.offset.to_le_bytes());
        out.extend_from_slice(&t.size.to_le_bytes());
        out.extend_from_slice(&t.checksum.to_le_bytes());
    }
    out
}

/// Decodes and validates an index of exactly `bytes.len()` bytes holding `n` records
/// over a data section of `data_size` bytes: names, types, shapes, sizes, and offsets
/// that are aligned, in order and without holes, the last ending at `data_size`.
pub fn parse_index(bytes: &[u8], n: u64, data_size: u64) -> Result<Vec<TensorInfo>> {
    if n > MAX_TENSORS {
        return Err(FormatError::LimitExceeded {
            what: "tensor count",
            found: n,
            limit: MAX_TENSORS,
        });
    }
    let min = n.saturating_mul(RECORD_FIXED_SIZE as u64 + 1);
    if min > bytes.len() as u64 {
        return Err(FormatError::Truncated {
            section: Section::Index,
            what: format!("{n} index records"),
            end: min,
            available: bytes.len() as u64,
        });
    }
    let mut c = Cursor::new(bytes, Section::Index);
    let mut out: Vec<TensorInfo> = Vec::with_capacity(n as usize);
    let mut seen = HashSet::new();
    let mut expected_offset = 0u64;
    for i in 0..n {
        let name_len = c.u16(&|| format!("name length of tensor #{i}"))? as usize;
        let raw = c.bytes(name_len, &|| format!("name of tensor #{i}"))?;
        let name = std::str::from_utf8(raw)
            .map_err(|_| FormatError::InvalidUtf8 {
                what: format!("name of tensor #{i}"),
            })?
            .to_string();
        check_name(&name)?;
        let w = || format!("index record of `{name}`");
        let id = c.u32(&w)?;
        let ty = QuantType::from_id(id).ok_or_else(|| FormatError::UnknownQuantType {
            tensor: name.clone(),
            id,
        })?;
        let n_dims = c.u32(&w)? as usize;
        let mut dims = [0u64; MAX_DIMS];
        for d in &mut dims {
            *d = c.u64(&w)?;
        }
        let offset = c.u64(&w)?;
        let size = c.u64(&w)?;
        let checksum = c.u64(&w)?;
        if n_dims == 0 || n_dims > MAX_DIMS {
            return Err(FormatError::BadShape {
                tensor: name,
                dims: dims.to_vec(),
                why: format!("n_dims is {n_dims}, must be 1 to 4"),
            });
        }
        if dims[n_dims..].iter().any(|&d| d != 0) {
            return Err(FormatError::BadShape {
                tensor: name,
                dims: dims.to_vec(),
                why: "unused dimensions must be 0".into(),
            });
        }
        let shape = dims[..n_dims].to_vec();
        let expected_size = tensor_bytes(&name, ty, &shape)?;
        if size != expected_size {
            return Err(FormatError::BadTensorSize {
                tensor: name,
                found: size,
                expected: expected_size,
            });
        }
        if offset != expected_offset {
            return Err(FormatError::BadTensorOffset {
                tensor: name,
                found: offset,
                expected: expected_offset,
            });
        }
        let end = offset
            .checked_add(size)
            .filter(|&e| e <= data_size)
            .ok_or_else(|| FormatError::Truncated {
                section: Section::Data,
                what: format!("tensor `{name}`"),
                end: offset.saturating_add(size),
                available: data_size,
            })?;
        if !seen.insert(name.clone()) {
            return Err(FormatError::DuplicateTensor(name));
        }
        // The next tensor starts at the next aligned offset; the last ends the file.
        expected_offset = if i + 1 == n {
            end
        } else {
            align_up(end).ok_or_else(|| FormatError::BadLayout("offset overflow".into()))?
        };
        out.push(TensorInfo {
            name,
            ty,
            shape,
            offset,
            size,
            checksum,
        });
    }
    if c.remaining() != 0 {
        return Err(FormatError::BadLayout(format!(
            "{} unused bytes at the end of the tensor index",
            c.remaining()
        )));
    }
    if expected_offset != data_size {
        return Err(FormatError::BadLayout(format!(
            "the tensor data section is {data_size} bytes but the tensors end at {expected_offset}"
        )));
    }
    Ok(out)
}
