//! A catalogue of hand-made bad files, one test per rejection, each citing the
//! SPEC.md rule it breaks and matching the `FormatError` variant (never the message),
//! plus the passing edge cases.
//!
//! Each bad file is a valid file with one thing wrong and every checksum that
//! guards it recomputed, so the reader reaches the rule under test.

mod common;

use common::*;
use mamba_format::header::MAGIC;
use mamba_format::index::{MAX_NAME_LEN, MAX_TENSORS};
use mamba_format::metadata::{MAX_ARRAY_LEN, MAX_ENTRIES, MAX_KEY_LEN, MAX_STRING_LEN};
use mamba_format::{write_to_vec, FormatError, MbinFile, Metadata, QuantType, Section};

/// Asserts that `bytes` is rejected at open with an error matching `pattern`.
macro_rules! assert_rejects {
    ($bytes:expr, $pattern:pat $(if $guard:expr)?) => {{
        let bytes: &[u8] = &$bytes;
        let e = MbinFile::parse(bytes).expect_err("the file must be rejected");
        assert!(matches!(&e, $pattern $(if $guard)?), "wrong error: {e:?}");
    }};
}

fn tag_u32(v: u32) -> Vec<u8> {
    v.to_le_bytes().to_vec()
}

// ===========================================================================
// Passing cases
// ===========================================================================

/// The smallest valid file: a bare header, no metadata, no tensors (MUST-H14:
/// `data_offset + data_size` = 128 + 0 = the file length).
#[test]
fn ok_zero_tensors_zero_metadata() {
    let b = write_to_vec(&Metadata::new(), &[]).unwrap();
    assert_eq!(b.len(), 128);
    assert_eq!(b, assemble(0, &[], 0, &[], &[]));
    let f = MbinFile::parse(&b).unwrap();
    assert!(f.metadata.is_empty() && f.tensors.is_empty());
    assert!(f.verify().is_empty());
}

#[test]
fn ok_empty_metadata_with_tensors() {
    let b = with_records(
        &[RawRecord::f32(b"a", 3, 0), RawRecord::f32(b"b", 1, 64)],
        68,
    );
    let f = MbinFile::parse(&b).unwrap();
    assert!(f.metadata.is_empty());
    assert_eq!(f.tensors.len(), 2);
    assert!(f.verify().is_empty());
}

#[test]
fn ok_every_type_and_longest_names() {
    let key = "k".repeat(MAX_KEY_LEN);
    let mut md = Metadata::new();
    md.set(&key, mamba_format::Value::Bool(false)).unwrap();
    let mut specs: Vec<_> = QuantType::ALL
        .iter()
        .map(|&ty| mamba_format::TensorSpec::new(ty.name(), ty, &[2, ty.block_size() as u64]))
        .collect();
    specs.push(mamba_format::TensorSpec::new(
        "n".repeat(MAX_NAME_LEN),
        QuantType::F32,
        &[1, 1, 1, 1],
    ));
    let b = file_of(&md, &specs);
    let f = MbinFile::parse(&b).unwrap();
    assert_eq!(f.tensors.len(), QuantType::ALL.len() + 1);
    assert!(f.verify().is_empty());
}

// ===========================================================================
// §2 Header
// ===========================================================================

/// MUST-H1: shorter than the header.
#[test]
fn h1_too_short() {
    assert_rejects!([], FormatError::TooShort { len: 0, .. });
    assert_rejects!(MAGIC, FormatError::TooShort { len: 8, .. });
    assert_rejects!(small_file()[..127], FormatError::TooShort { len: 127, .. });
}

/// MUST-H1 and MUST-H2: a short file that is not even a prefix of the magic.
#[test]
fn h1_short_non_mbin_is_bad_magic() {
    assert_rejects!(*b"hello", FormatError::BadMagic { .. });
    assert_rejects!(*b"GGUF\x03\0\0\0 and more", FormatError::BadMagic { .. });
}

/// MUST-H2
#[test]
fn h2_bad_magic() {
    let mut b = small_file();
    b[1] = b'm';
    reseal_header(&mut b);
    assert_rejects!(b, FormatError::BadMagic { .. });
}

/// MUST-H3
#[test]
fn h3_wrong_version() {
    for v in [0, 2, u32::MAX] {
        let mut b = small_file();
        put_u32(&mut b, off::VERSION, v);
        reseal_header(&mut b);
        assert_rejects!(b, FormatError::UnsupportedVersion { found, supported: 1 } if *found == v);
    }
}

/// MUST-H4: a big-endian writer's marker (and its byte-swapped version) is reported
/// as the wrong byte order, not as an unknown version.
#[test]
fn h4_big_endian_marker() {
    let mut b = small_file();
    b[off::BYTE_ORDER..off::BYTE_ORDER + 4].copy_from_slice(&0x0A0B_0C0Du32.to_be_bytes());
    reseal_header(&mut b);
    assert_rejects!(
        b,
        FormatError::WrongByteOrder {
            found: 0x0D0C_0B0A,
            ..
        }
    );
    b[off::VERSION..off::VERSION + 4].copy_from_slice(&1u32.to_be_bytes());
    reseal_header(&mut b);
    assert_rejects!(b, FormatError::WrongByteOrder { .. });
}

/// MUST-H5: any change to bytes 0..128 past the fixed fields, checksum included.
#[test]
fn h5_header_checksum() {
    for at in [
        off::N_METADATA,
        off::DATA_SIZE + 3,
        off::RESERVED,
        off::HEADER_CHECKSUM + 7,
    ] {
        let mut b = small_file();
        b[at] ^= 0x01;
        assert_rejects!(
            b,
            FormatError::ChecksumMismatch {
                section: Section::Header,
                tensor: None,
                ..
            }
        );
    }
}

/// MUST-H6
#[test]
fn h6_header_size() {
    let mut b = small_file();
    put_u32(&mut b, off::HEADER_SIZE, 64);
    reseal_header(&mut b);
    assert_rejects!(
        b,
        FormatError::BadHeaderField {
            field: "header_size",
            found: 64,
            ..
        }
    );
}

/// MUST-H7
#[test]
fn h7_alignment() {
    for a in [0, 32, 128] {
        let mut b = small_file();
        put_u32(&mut b, off::ALIGNMENT, a);
        reseal_header(&mut b);
        assert_rejects!(
            b,
            FormatError::BadHeaderField {
                field: "alignment",
                ..
            }
        );
    }
}

/// MUST-H8
#[test]
fn h8_flags_non_zero() {
    let mut b = small_file();
    patch_header_u64(&mut b, off::FLAGS, 1);
    assert_rejects!(
        b,
        FormatError::BadHeaderField {
            field: "flags",
            found: 1,
            ..
        }
    );
}

/// MUST-H9
#[test]
fn h9_reserved_non_zero() {
    let mut b = small_file();
    patch_header_u64(&mut b, off::RESERVED, 1 << 63);
    assert_rejects!(
        b,
        FormatError::BadHeaderField {
            field: "reserved",
            ..
        }
    );
}

/// MUST-H10
#[test]
fn h10_metadata_offset() {
    let mut b = small_file();
    patch_header_u64(&mut b, off::METADATA_OFFSET, 192);
    assert_rejects!(
        b,
        FormatError::BadHeaderField {
            field: "metadata_offset",
            ..
        }
    );
}

/// MUST-H11: a gap or an overlap between metadata and index, and an overflowing
/// metadata size.
#[test]
fn h11_index_offset() {
    for delta in [1i64, -1] {
        let mut b = small_file();
        let v = get_u64(&b, off::INDEX_OFFSET).wrapping_add_signed(delta);
        patch_header_u64(&mut b, off::INDEX_OFFSET, v);
        assert_rejects!(
            b,
            FormatError::BadHeaderField {
                field: "index_offset",
                ..
            }
        );
    }
    let mut b = small_file();
    patch_header_u64(&mut b, off::METADATA_SIZE, u64::MAX);
    assert_rejects!(
        b,
        FormatError::BadHeaderField {
            field: "metadata_size",
            ..
        }
    );
}

/// MUST-H12: data not at the aligned end of the index, and an overflowing index size.
#[test]
fn h12_data_offset() {
    for delta in [1i64, 64, -64] {
        let mut b = small_file();
        let v = get_u64(&b, off::DATA_OFFSET).wrapping_add_signed(delta);
        patch_header_u64(&mut b, off::DATA_OFFSET, v);
        assert_rejects!(
            b,
            FormatError::BadHeaderField {
                field: "data_offset",
                ..
            }
        );
    }
    let mut b = small_file();
    patch_header_u64(&mut b, off::INDEX_SIZE, u64::MAX - 100);
    assert_rejects!(
        b,
        FormatError::BadHeaderField {
            field: "index_size",
            ..
        }
    );
}

/// MUST-H13: each section must lie inside the file; sizes must not overflow.
#[test]
fn h13_sections_past_end_of_file() {
    let b0 = small_file();
    let len = b0.len() as u64;

    let mut b = b0.clone();
    let data_size = get_u64(&b, off::DATA_SIZE);
    patch_header_u64(&mut b, off::DATA_SIZE, data_size + 1);
    assert_rejects!(
        b,
        FormatError::Truncated {
            section: Section::Data,
            ..
        }
    );

    let mut b = b0.clone();
    patch_header_u64(&mut b, off::DATA_SIZE, u64::MAX);
    assert_rejects!(
        b,
        FormatError::BadHeaderField {
            field: "data_size",
            ..
        }
    );

    // A metadata section longer than the file, the later offsets moved to match.
    let mut b = b0.clone();
    put_u64(&mut b, off::METADATA_SIZE, len);
    put_u64(&mut b, off::INDEX_OFFSET, 128 + len);
    put_u64(&mut b, off::INDEX_SIZE, 0);
    put_u64(&mut b, off::DATA_OFFSET, (128 + len).div_ceil(64) * 64);
    reseal_header(&mut b);
    assert_rejects!(
        b,
        FormatError::Truncated {
            section: Section::Metadata,
            ..
        }
    );

    let mut b = b0.clone();
    let index_offset = get_u64(&b, off::INDEX_OFFSET);
    put_u64(&mut b, off::INDEX_SIZE, len);
    put_u64(
        &mut b,
        off::DATA_OFFSET,
        (index_offset + len).div_ceil(64) * 64,
    );
    reseal_header(&mut b);
    assert_rejects!(
        b,
        FormatError::Truncated {
            section: Section::Index,
            ..
        }
    );
}

/// MUST-H14: nothing after the tensor data.
#[test]
fn h14_trailing_bytes() {
    for extra in [1, 63, 64, 4096] {
        let mut b = small_file();
        b.extend(vec![0u8; extra]);
        assert_rejects!(b, FormatError::BadLayout(_));
    }
    let mut b = write_to_vec(&Metadata::new(), &[]).unwrap();
    b.push(0);
    assert_rejects!(b, FormatError::BadLayout(_));
}

/// MUST-H1..H14 together: every proper prefix of a valid file is rejected, and none
/// makes the reader panic.
#[test]
fn h_truncated_at_every_offset() {
    let b = small_file();
    for cut in 0..b.len() {
        assert!(
            MbinFile::parse(&b[..cut]).is_err(),
            "prefix of {cut} bytes accepted"
        );
    }
    assert!(MbinFile::parse(&b).is_ok());
}

// ===========================================================================
// §3 Metadata
// ===========================================================================

/// MUST-M1
#[test]
fn m1_metadata_checksum() {
    let mut b = small_file();
    b[128 + 3] ^= 0x20; // inside the first key
    reseal_header(&mut b);
    assert_rejects!(
        b,
        FormatError::ChecksumMismatch {
            section: Section::Metadata,
            ..
        }
    );
}

/// MUST-M2
#[test]
fn m2_entry_count_over_cap() {
    for n in [MAX_ENTRIES + 1, u64::MAX] {
        let mut b = small_file();
        patch_header_u64(&mut b, off::N_METADATA, n);
        assert_rejects!(
            b,
            FormatError::LimitExceeded {
                what: "metadata entry count",
                ..
            }
        );
    }
}

/// MUST-M3: more entries than the section can hold, and entries cut short.
#[test]
fn m3_entries_past_end_of_section() {
    let mut b = small_file();
    patch_header_u64(&mut b, off::N_METADATA, 1000);
    assert_rejects!(
        b,
        FormatError::Truncated {
            section: Section::Metadata,
            ..
        }
    );

    let mut b = small_file();
    let n = get_u64(&b, off::N_METADATA);
    patch_header_u64(&mut b, off::N_METADATA, n + 1);
    assert_rejects!(
        b,
        FormatError::Truncated {
            section: Section::Metadata,
            ..
        }
    );

    // Key length past the end; a u64 value cut short.
    let mut e = raw_entry(b"a", 1, &[0; 8]);
    put_u16(&mut e, 0, 200);
    assert_rejects!(
        with_entry(&e),
        FormatError::Truncated {
            section: Section::Metadata,
            ..
        }
    );
    assert_rejects!(
        with_entry(&raw_entry(b"a", 3, &[0; 7])),
        FormatError::Truncated { .. }
    );
}

/// MUST-M4
#[test]
fn m4_key_not_utf8() {
    let e = raw_entry(b"a\xff", 1, &tag_u32(1));
    assert_rejects!(with_entry(&e), FormatError::InvalidUtf8 { .. });
}

/// MUST-M5
#[test]
fn m5_key_breaks_naming_rules() {
    let long = "k".repeat(MAX_KEY_LEN + 1);
    for key in [
        "",
        "Upper",
        "a..b",
        ".a",
        "a.",
        "a b",
        "a-b",
        "é",
        long.as_str(),
    ] {
        let e = raw_entry(key.as_bytes(), 1, &tag_u32(1));
        assert_rejects!(
            with_entry(&e),
            FormatError::InvalidName {
                what: "metadata key",
                ..
            }
        );
    }
}

/// MUST-M6
#[test]
fn m6_duplicate_key() {
    let mut meta = raw_entry(b"a.b", 1, &tag_u32(1));
    meta.extend(raw_entry(b"a.b", 7, &[1]));
    let b = assemble(2, &meta, 0, &[], &[]);
    assert_rejects!(b, FormatError::DuplicateKey(k) if k == "a.b");
}

/// MUST-M7: unknown value tags, and arrays of arrays.
#[test]
fn m7_unknown_value_tag() {
    for tag in [0u8, 10, 255] {
        let e = raw_entry(b"a", tag, &[0; 8]);
        assert_rejects!(with_entry(&e), FormatError::UnknownValueType { tag: t, .. } if *t == tag);
    }
    for elem in [0u8, 9, 10] {
        let mut v = vec![elem];
        v.extend(0u64.to_le_bytes());
        assert_rejects!(
            with_entry(&raw_entry(b"a", 9, &v)),
            FormatError::UnknownValueType { .. }
        );
    }
}

/// MUST-M8: bools are 0 or 1, as values and as array elements.
#[test]
fn m8_bool_not_0_or_1() {
    assert_rejects!(
        with_entry(&raw_entry(b"a", 7, &[2])),
        FormatError::BadBool { found: 2, .. }
    );
    let mut v = vec![7u8];
    v.extend(3u64.to_le_bytes());
    v.extend([1, 0, 0xff]);
    assert_rejects!(
        with_entry(&raw_entry(b"a", 9, &v)),
        FormatError::BadBool { found: 0xff, .. }
    );
}

/// MUST-M9: string length over the cap, checked before the bytes are looked at.
#[test]
fn m9_string_over_cap() {
    for len in [MAX_STRING_LEN + 1, u64::MAX] {
        let e = raw_entry(b"a", 8, &len.to_le_bytes());
        assert_rejects!(
            with_entry(&e),
            FormatError::LimitExceeded {
                what: "string length",
                ..
            }
        );
    }
}

/// MUST-M3 for strings: length within the cap but past the section.
#[test]
fn m3_string_past_end_of_section() {
    let mut v = 100u64.to_le_bytes().to_vec();
    v.extend(b"short");
    assert_rejects!(
        with_entry(&raw_entry(b"a", 8, &v)),
        FormatError::Truncated {
            section: Section::Metadata,
            ..
        }
    );
}

/// MUST-M10: strings are UTF-8, as values and as array elements.
#[test]
fn m10_string_not_utf8() {
    assert_rejects!(
        with_entry(&raw_entry(b"a", 8, &raw_str(b"ok\xc3("))),
        FormatError::InvalidUtf8 { .. }
    );
    let mut v = vec![8u8];
    v.extend(2u64.to_le_bytes());
    v.extend(raw_str(b"fine"));
    v.extend(raw_str(b"\xff"));
    assert_rejects!(
        with_entry(&raw_entry(b"a", 9, &v)),
        FormatError::InvalidUtf8 { .. }
    );
}

/// MUST-M11: array length over the cap, or over what the section holds (checked
/// before anything is allocated).
#[test]
fn m11_array_lengths() {
    for (elem, len) in [(1u8, MAX_ARRAY_LEN + 1), (8, u64::MAX)] {
        let mut v = vec![elem];
        v.extend(len.to_le_bytes());
        assert_rejects!(
            with_entry(&raw_entry(b"a", 9, &v)),
            FormatError::LimitExceeded {
                what: "array length",
                ..
            }
        );
    }
    for elem in [1u8, 3, 7, 8] {
        let mut v = vec![elem];
        v.extend(MAX_ARRAY_LEN.to_le_bytes());
        v.extend([0; 16]);
        assert_rejects!(
            with_entry(&raw_entry(b"a", 9, &v)),
            FormatError::Truncated {
                section: Section::Metadata,
                ..
            }
        );
    }
}

/// MUST-M12: the entries fill the section exactly.
#[test]
fn m12_unused_bytes_in_metadata() {
    let mut meta = raw_entry(b"a", 1, &tag_u32(1));
    meta.extend(raw_entry(b"b", 1, &tag_u32(2)));
    assert_rejects!(assemble(1, &meta, 0, &[], &[]), FormatError::BadLayout(_));
    let mut meta = raw_entry(b"a", 1, &tag_u32(1));
    meta.push(0);
    assert_rejects!(assemble(1, &meta, 0, &[], &[]), FormatError::BadLayout(_));
}

// ===========================================================================
// §4 Tensor index
// ===========================================================================

/// MUST-I1
#[test]
fn i1_index_checksum() {
    let mut b = small_file();
    let r = records(&b)[1];
    b[r.name] ^= 0x01;
    reseal_header(&mut b);
    assert_rejects!(
        b,
        FormatError::ChecksumMismatch {
            section: Section::Index,
            ..
        }
    );
}

/// MUST-I2
#[test]
fn i2_tensor_count_over_cap() {
    for n in [MAX_TENSORS + 1, u64::MAX] {
        let mut b = small_file();
        patch_header_u64(&mut b, off::N_TENSORS, n);
        assert_rejects!(
            b,
            FormatError::LimitExceeded {
                what: "tensor count",
                ..
            }
        );
    }
}

/// MUST-I3: more records than the index can hold, and a record cut short.
#[test]
fn i3_records_past_end_of_index() {
    for n in [5, 1000, MAX_TENSORS] {
        let mut b = small_file();
        patch_header_u64(&mut b, off::N_TENSORS, n);
        assert_rejects!(
            b,
            FormatError::Truncated {
                section: Section::Index,
                ..
            }
        );
    }
    let mut rec = RawRecord::f32(b"a", 1, 0).bytes();
    put_u16(&mut rec, 0, 200); // the name runs past the end of the index
    assert_rejects!(
        assemble(0, &[], 1, &rec, &[0; 4]),
        FormatError::Truncated {
            section: Section::Index,
            ..
        }
    );
}

/// MUST-I4
#[test]
fn i4_name_not_utf8() {
    let b = with_records(&[RawRecord::f32(b"\xc0\xaf", 1, 0)], 4);
    assert_rejects!(b, FormatError::InvalidUtf8 { .. });
}

/// MUST-I5
#[test]
fn i5_name_breaks_naming_rules() {
    let long = vec![b'n'; MAX_NAME_LEN + 1];
    for name in [&b"a\nb"[..], b"tab\t", b"\x7f", "\u{85}".as_bytes(), &long] {
        let b = with_records(&[RawRecord::f32(name, 1, 0)], 4);
        assert_rejects!(b, FormatError::InvalidName { what: "tensor", .. });
    }
    // An empty name; a second, longer name keeps the index above its minimum size.
    let b = with_records(
        &[RawRecord::f32(b"", 1, 0), RawRecord::f32(b"bbb", 1, 64)],
        68,
    );
    assert_rejects!(b, FormatError::InvalidName { what: "tensor", .. });
}

/// MUST-I6: ids that are not in the type table, including ggml ids this format
/// does not use.
#[test]
fn i6_unknown_type_id() {
    for id in [4u32, 5, 9, 15, 16, 19, 21, 22, 24, 29, 31, u32::MAX] {
        let mut r = RawRecord::f32(b"a", 1, 0);
        r.ty = id;
        assert_rejects!(with_records(&[r], 4), FormatError::UnknownQuantType { id: i, .. } if *i == id);
    }
}

/// MUST-I7
#[test]
fn i7_n_dims_out_of_range() {
    for n_dims in [0u32, 5, u32::MAX] {
        let mut r = RawRecord::f32(b"a", 1, 0);
        r.n_dims = n_dims;
        assert_rejects!(with_records(&[r], 4), FormatError::BadShape { .. });
    }
}

/// MUST-I8
#[test]
fn i8_unused_dims_non_zero() {
    let mut r = RawRecord::f32(b"a", 1, 0);
    r.dims = [1, 0, 0, 1];
    assert_rejects!(with_records(&[r], 4), FormatError::BadShape { .. });
}

/// MUST-I9
#[test]
fn i9_zero_dim() {
    for (n_dims, dims) in [(1, [0, 0, 0, 0]), (2, [2, 0, 0, 0]), (2, [0, 2, 0, 0])] {
        let mut r = RawRecord::f32(b"a", 0, 0);
        r.n_dims = n_dims;
        r.dims = dims;
        assert_rejects!(with_records(&[r], 0), FormatError::BadShape { .. });
    }
}

/// MUST-I10: element counts and byte sizes that overflow u64.
#[test]
fn i10_overflowing_shape() {
    for (ty, dims) in [
        (0u32, [1 << 32, 1 << 32, 2, 0]),
        (0, [1 << 31, 1 << 31, 2, 0]),
        (1, [u64::MAX, 2, 1, 0]),
    ] {
        let mut r = RawRecord::f32(b"a", 1, 0);
        r.ty = ty;
        r.n_dims = 3;
        r.dims = dims;
        assert_rejects!(with_records(&[r], 4), FormatError::BadShape { .. });
    }
}

/// MUST-I11: the row (last dimension) is a whole number of blocks, even when the
/// element count is.
#[test]
fn i11_row_not_block_multiple() {
    for (ty, n_dims, dims) in [
        (QuantType::Q8_0, 1, [16, 0, 0, 0]),
        (QuantType::Q8_0, 2, [2, 16, 0, 0]),
        (QuantType::Q4_K, 2, [2, 128, 0, 0]),
        (QuantType::Q6_K, 1, [32, 0, 0, 0]),
        (QuantType::Q2_K, 2, [2, 128, 0, 0]),
        (QuantType::Q3_K, 1, [288, 0, 0, 0]),
        (QuantType::IQ4_NL, 1, [16, 0, 0, 0]),
        (QuantType::IQ4_XS, 2, [1, 32, 0, 0]),
    ] {
        let mut r = RawRecord::f32(b"a", 1, 0);
        r.ty = ty.id();
        r.n_dims = n_dims;
        r.dims = dims;
        assert_rejects!(with_records(&[r], 4), FormatError::NotBlockMultiple { .. });
    }
}

/// MUST-I12
#[test]
fn i12_size_mismatch() {
    for size in [0, 11, 13, u64::MAX] {
        let mut r = RawRecord::f32(b"a", 3, 0);
        r.size = size;
        assert_rejects!(
            with_records(&[r], 12),
            FormatError::BadTensorSize { expected: 12, .. }
        );
    }
    // And in a written file.
    let mut b = small_file();
    let r = records(&b)[2];
    let size = get_u64(&b, r.size);
    patch_header_u64(&mut b, r.size, size + 1);
    assert_rejects!(b, FormatError::BadTensorSize { .. });
}

/// MUST-I13: a second tensor unaligned, overlapping the first, or after a hole.
#[test]
fn i13_unaligned_overlapping_holes() {
    for second in [65u64, 4, 0, 128] {
        let b = with_records(
            &[RawRecord::f32(b"a", 1, 0), RawRecord::f32(b"b", 1, second)],
            second as usize + 4,
        );
        assert_rejects!(b, FormatError::BadTensorOffset { tensor, expected: 64, .. } if tensor == "b");
    }
    // The first tensor starts the data section.
    let b = with_records(&[RawRecord::f32(b"a", 1, 64)], 68);
    assert_rejects!(b, FormatError::BadTensorOffset { expected: 0, .. });
}

/// MUST-I13: the index is in data order; swapping two offsets breaks it.
#[test]
fn i13_out_of_order() {
    let mut b = small_file();
    let rs = records(&b);
    let (o0, o1) = (get_u64(&b, rs[0].offset), get_u64(&b, rs[1].offset));
    put_u64(&mut b, rs[0].offset, o1);
    put_u64(&mut b, rs[1].offset, o0);
    reseal(&mut b);
    assert_rejects!(b, FormatError::BadTensorOffset { .. });
}

/// MUST-I13: a hole between tensors in a written file (second tensor moved one
/// alignment unit later, data section grown to match).
#[test]
fn i13_hole_between_tensors() {
    let mut b = small_file();
    let rs = records(&b);
    for r in &rs[1..] {
        let o = get_u64(&b, r.offset);
        put_u64(&mut b, r.offset, o + 64);
    }
    let data_size = get_u64(&b, off::DATA_SIZE);
    put_u64(&mut b, off::DATA_SIZE, data_size + 64);
    let start = get_u64(&b, off::DATA_OFFSET) + get_u64(&b, rs[1].offset) - 64;
    let tail: Vec<u8> = b.split_off(start as usize);
    b.extend([0u8; 64]);
    b.extend(tail);
    reseal(&mut b);
    assert_rejects!(b, FormatError::BadTensorOffset { .. });
}

/// MUST-I14
#[test]
fn i14_tensor_past_data_section() {
    let b = with_records(&[RawRecord::f32(b"a", 16, 0)], 32);
    assert_rejects!(
        b,
        FormatError::Truncated {
            section: Section::Data,
            ..
        }
    );
}

/// MUST-I15
#[test]
fn i15_duplicate_tensor_names() {
    let b = with_records(
        &[RawRecord::f32(b"w", 1, 0), RawRecord::f32(b"w", 1, 64)],
        68,
    );
    assert_rejects!(b, FormatError::DuplicateTensor(n) if n == "w");
    let mut b = small_file();
    let rs = records(&b);
    // "proj.weight" -> "norm.weight"
    b[rs[1].name..rs[1].name + 4].copy_from_slice(b"norm");
    reseal(&mut b);
    assert_rejects!(b, FormatError::DuplicateTensor(n) if n == "norm.weight");
}

/// MUST-I16
#[test]
fn i16_unused_bytes_in_index() {
    let mut index = RawRecord::f32(b"a", 1, 0).bytes();
    index.push(0);
    assert_rejects!(
        assemble(0, &[], 1, &index, &[0; 4]),
        FormatError::BadLayout(_)
    );
    let mut b = small_file();
    patch_header_u64(&mut b, off::N_TENSORS, 3);
    assert_rejects!(b, FormatError::BadLayout(_));
}

/// MUST-I17: the tensors fill the data section exactly.
#[test]
fn i17_data_section_not_filled() {
    assert_rejects!(
        with_records(&[RawRecord::f32(b"a", 1, 0)], 64),
        FormatError::BadLayout(_)
    );
    assert_rejects!(
        with_records(&[RawRecord::f32(b"a", 1, 0)], 5),
        FormatError::BadLayout(_)
    );
    assert_rejects!(with_records(&[], 64), FormatError::BadLayout(_));
}

// ===========================================================================
// §7 Tensor data
// ===========================================================================

/// MUST-D1: the padding between the index and the data is zero, checked at open.
#[test]
fn d1_non_zero_padding_after_index() {
    let mut b = with_records(&[RawRecord::f32(b"a", 1, 0)], 4);
    let index_end = (get_u64(&b, off::INDEX_OFFSET) + get_u64(&b, off::INDEX_SIZE)) as usize;
    assert!(
        index_end < get_u64(&b, off::DATA_OFFSET) as usize,
        "test file needs padding"
    );
    b[index_end] = 1;
    assert_rejects!(b, FormatError::NonZeroPadding { offset } if *offset == index_end as u64);
}

/// MUST-D2: the padding between tensors is zero, checked by `verify`.
#[test]
fn d2_non_zero_padding_between_tensors() {
    let mut b = small_file();
    let f = MbinFile::parse(&b).unwrap();
    let t = &f.tensors[0];
    let pad = (f.tensor_file_offset(t) + t.size) as usize;
    assert!(pad < f.tensor_file_offset(&f.tensors[1]) as usize);
    b[pad] = 0x80;
    let f = MbinFile::parse(&b).expect("padding between tensors is checked by verify");
    let problems = f.verify();
    assert!(
        matches!(problems[..], [FormatError::NonZeroPadding { offset }] if offset == pad as u64),
        "{problems:?}"
    );
}

/// MUST-D3: each tensor's checksum, checked by `verify`, which names the tensor.
#[test]
fn d3_tensor_checksum() {
    let mut b = small_file();
    let f = MbinFile::parse(&b).unwrap();
    let at = f.tensor_file_offset(&f.tensors[2]) as usize + 7;
    b[at] ^= 0x10;
    let f = MbinFile::parse(&b).unwrap();
    let problems = f.verify();
    assert!(
        matches!(&problems[..], [FormatError::ChecksumMismatch { section: Section::Data, tensor: Some(t), .. }] if t == "emb.weight"),
        "{problems:?}"
    );
    assert!(f.verify_tensor(&f.tensors[1]).is_ok());
}
