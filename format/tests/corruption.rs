//! Every single-byte and single-bit corruption of a valid file is detected: either
//! `MbinFile::parse` rejects the file, or `verify` reports at least one problem. Never
//! accepted as clean, never a panic.
//!
//! This holds because every byte is covered by a rule (SPEC.md §8): the header,
//! metadata and index by their checksums, the padding after the index by the
//! zero rule at open, tensor bytes by their checksums and the padding between
//! tensors by the zero rule of `verify`.

mod common;

use mamba_format::{MbinFile, ModelConfig};

/// Panics (naming the offset) if the corrupted file is accepted as clean.
fn assert_detected(bytes: &[u8], what: &str) {
    if let Ok(f) = MbinFile::parse(bytes) {
        assert!(!f.verify().is_empty(), "{what}: accepted as clean");
        // Whatever the metadata now says, the config check must not panic.
        let _ = ModelConfig::from_file(&f);
    }
}

/// Applies `corrupt` at every offset of `file` and checks each result.
fn sweep(file: &[u8], corrupt: impl Fn(&mut u8)) {
    let mut b = file.to_vec();
    for at in 0..b.len() {
        let orig = b[at];
        corrupt(&mut b[at]);
        assert_detected(
            &b,
            &format!("byte {at} changed from {orig:#04x} to {:#04x}", b[at]),
        );
        b[at] = orig;
    }
}

#[test]
fn every_byte_inverted_is_detected() {
    let file = common::small_file();
    assert!(MbinFile::parse(&file).unwrap().verify().is_empty());
    sweep(&file, |b| *b ^= 0xff);
}

#[test]
fn every_single_bit_flip_is_detected() {
    let file = common::small_file();
    for bit in 0..8 {
        sweep(&file, |b| *b ^= 1 << bit);
    }
}

#[test]
fn every_byte_of_a_mamba_file_inverted_is_detected() {
    let file = common::mamba_file();
    let f = MbinFile::parse(&file).unwrap();
    assert!(f.verify().is_empty());
    assert!(ModelConfig::from_file(&f).is_ok());
    sweep(&file, |b| *b ^= 0xff);
}
