//! The validating reader over `&[u8]` (SPEC.md §8).
//!
//! [`MbinFile::parse`] reads the header, metadata and index only, so opening a
//! memory-mapped multi-GB file touches a few kilobytes; tensor checksums are
//! verified on request ([`MbinFile::verify`]).

use crate::checksum::checksum;
use crate::error::{FormatError, Result, Section};
use crate::header::Header;
use crate::index::{parse_index, TensorInfo};
use crate::metadata::Metadata;
use std::collections::HashMap;

/// A parsed, validated `.mbin` file borrowing its bytes.
#[derive(Debug)]
pub struct MbinFile<'a> {
    bytes: &'a [u8],
    /// The decoded header.
    pub header: Header,
    /// The metadata entries.
    pub metadata: Metadata,
    /// The tensor index, in file order.
    pub tensors: Vec<TensorInfo>,
    by_name: HashMap<String, usize>,
}

impl<'a> MbinFile<'a> {
    /// Parses and validates everything except tensor data checksums.
    ///
    /// # Errors
    /// The first rule of SPEC.md the file breaks, as a [`FormatError`] variant.
    pub fn parse(bytes: &'a [u8]) -> Result<MbinFile<'a>> {
        let header = Header::parse(bytes)?;
        // Header::parse checked that every section lies inside the file.
        let meta = &bytes[header.metadata_offset as usize
            ..(header.metadata_offset + header.metadata_size) as usize];
        check(Section::Metadata, header.metadata_checksum, meta)?;
        let metadata = Metadata::parse(meta, header.n_metadata)?;
        let index_end = (header.index_offset + header.index_size) as usize;
        let index = &bytes[header.index_offset as usize..index_end];
        check(Section::Index, header.index_checksum, index)?;
        let tensors = parse_index(index, header.n_tensors, header.data_size)?;
        check_zero(bytes, index_end, header.data_offset as usize)?;
        let by_name = tensors
            .iter()
            .enumerate()
            .map(|(i, t)| (t.name.clone(), i))
            .collect();
        Ok(MbinFile {
            bytes,
            header,
            metadata,
            tensors,
            by_name,
        })
    }

    /// The whole file.
    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// The index record of `name`.
    pub fn tensor(&self, name: &str) -> Option<&TensorInfo> {
        self.by_name.get(name).map(|&i| &self.tensors[i])
    }

    /// The stored bytes of a tensor of this file (not checksum-verified).
    pub fn tensor_data(&self, t: &TensorInfo) -> &'a [u8] {
        let start = (self.header.data_offset + t.offset) as usize;
        &self.bytes[start..start + t.size as usize]
    }

    /// Absolute file offset of a tensor's first byte (a multiple of 64).
    pub fn tensor_file_offset(&self, t: &TensorInfo) -> u64 {
        self.header.data_offset + t.offset
    }

    /// Verifies one tensor's checksum.
    pub fn verify_tensor(&self, t: &TensorInfo) -> Result<()> {
        let computed = checksum(self.tensor_data(t));
        if computed != t.checksum {
            return Err(FormatError::ChecksumMismatch {
                section: Section::Data,
                tensor: Some(t.name.clone()),
                stored: t.checksum,
                computed,
            });
        }
        Ok(())
    }

    /// Verifies every tensor checksum and that the padding between tensors is zero;
    /// returns every problem found (empty when the file is intact).
    pub fn verify(&self) -> Vec<FormatError> {
        let mut problems = Vec::new();
        for (i, t) in self.tensors.iter().enumerate() {
            if let Err(e) = self.verify_tensor(t) {
                problems.push(e);
            }
            let end = (self.header.data_offset + t.offset + t.size) as usize;
            let next = match self.tensors.get(i + 1) {
                Some(n) => (self.header.data_offset + n.offset) as usize,
                None => self.bytes.len(),
            };
            if let Err(e) = check_zero(self.bytes, end, next) {
                problems.push(e);
            }
        }
        problems
    }
}

fn check(section: Section, stored: u64, bytes: &[u8]) -> Result<()> {
    let computed = checksum(bytes);
    if computed == stored {
        Ok(())
    } else {
        Err(FormatError::ChecksumMismatch {
            section,
            tensor: None,
            stored,
            computed,
        })
    }
}

fn check_zero(bytes: &[u8], from: usize, to: usize) -> Result<()> {
    match bytes[from..to].iter().position(|&b| b != 0) {
        None => Ok(()),
        Some(p) => Err(FormatError::NonZeroPadding {
            offset: (from + p) as u64,
        }),
    }
}
