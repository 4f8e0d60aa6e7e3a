//! The fixed 128-byte header (SPEC.md §2).

use crate::checksum::checksum;
use crate::cursor::Cursor;
use crate::error::{FormatError, Result, Section};

/// The magic: `\x89MBIN\r\n\x1a`. The high byte catches 7-bit transfers, the CR LF
/// pair catches newline translation, `\x1a` stops `type` on DOS (PNG's trick).
pub const MAGIC: [u8; 8] = *b"\x89MBIN\r\n\x1a";
/// The format version this crate reads and writes.
pub const VERSION: u32 = 1;
/// The byte-order marker. Stored little-endian it is the bytes `0d 0c 0b 0a`; a
/// big-endian writer would produce `0a 0b 0c 0d`, which the reader rejects.
pub const BYTE_ORDER_MARK: u32 = 0x0A0B_0C0D;
/// Size of the fixed header in bytes.
pub const HEADER_SIZE: usize = 128;
/// Alignment of the tensor data section and of every tensor in it.
pub const ALIGNMENT: u64 = 64;

/// The decoded header. Offsets are absolute file offsets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    /// Number of metadata entries.
    pub n_metadata: u64,
    /// Offset of the metadata section (always [`HEADER_SIZE`]).
    pub metadata_offset: u64,
    /// Length of the metadata section in bytes.
    pub metadata_size: u64,
    /// Number of tensors.
    pub n_tensors: u64,
    /// Offset of the tensor index (right after the metadata).
    pub index_offset: u64,
    /// Length of the tensor index in bytes.
    pub index_size: u64,
    /// Offset of the tensor data (the index end rounded up to [`ALIGNMENT`]).
    pub data_offset: u64,
    /// Length of the tensor data; the file ends at `data_offset + data_size`.
    pub data_size: u64,
    /// XXH3-64 of the metadata section.
    pub metadata_checksum: u64,
    /// XXH3-64 of the tensor index.
    pub index_checksum: u64,
}

/// Rounds `x` up to a multiple of [`ALIGNMENT`], or `None` on overflow.
pub fn align_up(x: u64) -> Option<u64> {
    x.checked_add(ALIGNMENT - 1)
        .map(|v| v / ALIGNMENT * ALIGNMENT)
}

impl Header {
    /// Encodes the header, computing its checksum.
    pub fn to_bytes(&self) -> [u8; HEADER_SIZE] {
        let mut b = [0u8; HEADER_SIZE];
        b[0..8].copy_from_slice(&MAGIC);
        b[8..12].copy_from_slice(&VERSION.to_le_bytes());
        b[12..16].copy_from_slice(&BYTE_ORDER_MARK.to_le_bytes());
        b[16..20].copy_from_slice(&(HEADER_SIZE as u32).to_le_bytes());
        b[20..24].copy_from_slice(&(ALIGNMENT as u32).to_le_bytes());
        let fields = [
            self.n_metadata,
            self.metadata_offset,
            self.metadata_size,
            self.n_tensors,
            self.index_offset,
            self.index_size,
            self.data_offset,
            self.data_size,
            self.metadata_checksum,
            self.index_checksum,
            0, // flags
            0, // reserved
        ];
        for (i, v) in fields.iter().enumerate() {
            b[24 + 8 * i..32 + 8 * i].copy_from_slice(&v.to_le_bytes());
        }
        let sum = checksum(&b[..120]);
        b[120..128].copy_from_slice(&sum.to_le_bytes());
        b
    }

    /// Decodes and validates the header of a file of `file.len()` bytes: magic,
    /// byte order, version, checksum, and that the sections tile the file exactly
    /// (SPEC.md §2 and §7).
    pub fn parse(file: &[u8]) -> Result<Header> {
        let len = file.len() as u64;
        if file.len() < HEADER_SIZE {
            // Say "bad magic" rather than "too short" when even the magic is wrong:
            // a short non-.mbin file is more useful reported as not-a-model.
            let n = file.len().min(MAGIC.len());
            if file[..n] != MAGIC[..n] {
                let mut found = [0u8; 8];
                found[..n].copy_from_slice(&file[..n]);
                return Err(FormatError::BadMagic { found });
            }
            return Err(FormatError::TooShort {
                len,
                need: HEADER_SIZE as u64,
            });
        }
        let mut c = Cursor::new(&file[..HEADER_SIZE], Section::Header);
        let what = || "header".to_string();
        let magic: [u8; 8] = c.array(&what)?;
        if magic != MAGIC {
            return Err(FormatError::BadMagic { found: magic });
        }
        // The byte order before the version: a big-endian file also has a byte-swapped
        // version, and "wrong byte order" is the useful report for it.
        let version = c.u32(&what)?;
        let bom = c.u32(&what)?;
        if bom != BYTE_ORDER_MARK {
            return Err(FormatError::WrongByteOrder {
                found: bom,
                expected: BYTE_ORDER_MARK,
            });
        }
        if version != VERSION {
            return Err(FormatError::UnsupportedVersion {
                found: version,
                supported: VERSION,
            });
        }
        let stored = u64::from_le_bytes(file[120..128].try_into().expect("8 bytes"));
        let computed = checksum(&file[..120]);
        if stored != computed {
            return Err(FormatError::ChecksumMismatch {
                section: Section::Header,
                tensor: None,
                stored,
                computed,
            });
        }
        let header_size = c.u32(&what)?;
        expect_field("header_size", header_size as u64, HEADER_SIZE as u64)?;
        let alignment = c.u32(&what)?;
        expect_field("alignment", alignment as u64, ALIGNMENT)?;
        let h = Header {
            n_metadata: c.u64(&what)?,
            metadata_offset: c.u64(&what)?,
            metadata_size: c.u64(&what)?,
            n_tensors: c.u64(&what)?,
            index_offset: c.u64(&what)?,
            index_size: c.u64(&what)?,
            data_offset: c.u64(&what)?,
            data_size: c.u64(&what)?,
            metadata_checksum: c.u64(&what)?,
            index_checksum: c.u64(&what)?,
        };
        expect_field("flags", c.u64(&what)?, 0)?;
        expect_field("reserved", c.u64(&what)?, 0)?;

        // The sections tile the file: header | metadata | index | zero pad | data.
        expect_field("metadata_offset", h.metadata_offset, HEADER_SIZE as u64)?;
        let meta_end = add(h.metadata_offset, h.metadata_size, "metadata_size")?;
        expect_field("index_offset", h.index_offset, meta_end)?;
        let index_end = add(h.index_offset, h.index_size, "index_size")?;
        let data_offset = align_up(index_end).ok_or_else(|| overflow("index_size"))?;
        expect_field("data_offset", h.data_offset, data_offset)?;
        let end = add(h.data_offset, h.data_size, "data_size")?;
        for (what, end) in [
            ("metadata", meta_end),
            ("tensor index", index_end),
            ("tensor data", end),
        ] {
            if end > len {
                return Err(FormatError::Truncated {
                    section: match what {
                        "metadata" => Section::Metadata,
                        "tensor index" => Section::Index,
                        _ => Section::Data,
                    },
                    what: format!("the {what} section declared by the header"),
                    end,
                    available: len,
                });
            }
        }
        if end != len {
            return Err(FormatError::BadLayout(format!(
                "{} trailing bytes after the tensor data (file is {len} bytes, data ends at {end})",
                len - end
            )));
        }
        Ok(h)
    }
}

fn expect_field(field: &'static str, found: u64, expected: u64) -> Result<()> {
    if found == expected {
        Ok(())
    } else {
        Err(FormatError::BadHeaderField {
            field,
            found,
            expected: expected.to_string(),
        })
    }
}

fn add(a: u64, b: u64, field: &'static str) -> Result<u64> {
    a.checked_add(b).ok_or_else(|| overflow(field))
}

fn overflow(field: &'static str) -> FormatError {
    FormatError::BadHeaderField {
        field,
        found: u64::MAX,
        expected: "a size that does not overflow".into(),
    }
}
