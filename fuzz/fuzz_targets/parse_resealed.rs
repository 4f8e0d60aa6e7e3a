//! Like `parse`, but first recomputes the header, metadata and index checksums the
//! input declares, so mutations reach the structural rules behind the checksums
//! instead of almost always failing the first checksum check.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mamba_format::checksum::checksum;
use mamba_format::{MbinFile, ModelConfig};

fn get(b: &[u8], at: usize) -> usize {
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap()) as usize
}

fuzz_target!(|data: &[u8]| {
    let mut b = data.to_vec();
    if b.len() >= 128 {
        // (offset field, size field, checksum field) for metadata and index (SPEC.md §2).
        for (o, s, c) in [(32, 40, 88), (56, 64, 96)] {
            let (start, len) = (get(&b, o), get(&b, s));
            if let Some(sec) = start.checked_add(len).and_then(|end| b.get(start..end)) {
                let sum = checksum(sec);
                b[c..c + 8].copy_from_slice(&sum.to_le_bytes());
            }
        }
        let sum = checksum(&b[..120]);
        b[120..128].copy_from_slice(&sum.to_le_bytes());
    }
    let _ = MbinFile::parse(&b).map(|f| {
        let _ = f.verify();
        let _ = ModelConfig::from_file(&f);
    });
});
