//! The checksum every section and tensor carries: XXH3-64 with seed 0.
//!
//! XXH3 runs at memory speed, so `--verify` on a multi-GB file is bounded by the
//! disk, and it detects every single-bit flip (unlike a plain sum).

/// XXH3-64 (seed 0) of `bytes`.
pub fn checksum(bytes: &[u8]) -> u64 {
    xxhash_rust::xxh3::xxh3_64(bytes)
}

/// An incremental XXH3-64 (seed 0), for data written in pieces.
#[derive(Clone, Default)]
pub struct Hasher(xxhash_rust::xxh3::Xxh3Default);

impl Hasher {
    /// A fresh hasher.
    pub fn new() -> Self {
        Self::default()
    }
    /// Feeds bytes.
    pub fn update(&mut self, bytes: &[u8]) {
        self.0.update(bytes)
    }
    /// The checksum of everything fed so far.
    pub fn finish(&self) -> u64 {
        self.0.digest()
    }
}
