//! Fuzz the GGUF reader: any input parses or is refused, and every range it accepts
//! lies inside the input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mamba_format::gguf::Gguf;

fuzz_target!(|data: &[u8]| {
    if let Ok(g) = Gguf::parse(data) {
        for t in &g.tensors {
            assert!(t.offset + t.n_bytes <= data.len() as u64);
            let _ = g.tensor_data(data, t);
        }
    }
});
