//! Any bytes: `MbinFile::parse` returns Ok or Err, never panics, hangs or allocates
//! without bound; neither do `verify` and `ModelConfig::from_file` on what it accepts.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mamba_format::{MbinFile, ModelConfig};

fuzz_target!(|data: &[u8]| {
    let _ = MbinFile::parse(data).map(|f| {
        let _ = f.verify();
        let _ = ModelConfig::from_file(&f);
    });
});
