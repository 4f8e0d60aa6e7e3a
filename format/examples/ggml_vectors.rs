//! Writes the inputs and this crate's outputs for the byte-for-byte comparison with
//! ggml's reference quantizers (`scripts/ggml-quants/check.sh`, which builds a C
//! harness against `ggml-quants.c` and compares).
//!
//! ```text
//! cargo run --release -p mamba-format --example ggml_vectors -- DIR
//! ```
//!
//! `DIR/vectors.bin`: `u32` count, then per row `u32` length and the `f32`s; then
//! `u32` length and a pool of random bytes. `DIR/rust.bin`: per quantizer of
//! [`QUANTIZERS`] (in order): `u32` name length, the name, then per row the
//! quantized bytes and their dequantized `f32`s; then the dequantization of the
//! random pool read as whole blocks. All little-endian.

use mamba_format::quant::iq4_nl;
use mamba_format::QuantType;
use std::io::Write;

#[path = "../src/quant/test_vectors.rs"]
mod test_vectors;
use test_vectors::{rows, XorShift};

/// The quantizers compared: `(name, type, quantize_row)`. The names are the C
/// harness's; `iq4_nl_single_fit` is ggml's `quantize_row_iq4_nl_ref`.
#[allow(clippy::type_complexity)]
const QUANTIZERS: [(&str, QuantType, Option<fn(&[f32], &mut [u8])>); 13] = [
    ("q4_0", QuantType::Q4_0, None),
    ("q4_1", QuantType::Q4_1, None),
    ("q5_0", QuantType::Q5_0, None),
    ("q5_1", QuantType::Q5_1, None),
    ("q8_0", QuantType::Q8_0, None),
    ("q2_k", QuantType::Q2_K, None),
    ("q3_k", QuantType::Q3_K, None),
    ("q4_k", QuantType::Q4_K, None),
    ("q5_k", QuantType::Q5_K, None),
    ("q6_k", QuantType::Q6_K, None),
    ("iq4_nl", QuantType::IQ4_NL, None),
    (
        "iq4_nl_single_fit",
        QuantType::IQ4_NL,
        Some(iq4_nl::quantize_row_single_fit),
    ),
    ("iq4_xs", QuantType::IQ4_XS, None),
];

fn put_u32(out: &mut Vec<u8>, v: usize) {
    out.extend_from_slice(&u32::try_from(v).unwrap().to_le_bytes());
}

fn put_f32s(out: &mut Vec<u8>, x: &[f32]) {
    for v in x {
        out.extend_from_slice(&v.to_le_bytes());
    }
}

fn main() -> std::io::Result<()> {
    let dir = std::env::args().nth(1).expect("usage: ggml_vectors DIR");
    let rows = rows();
    let mut rng = XorShift(0x0123_4567_89AB_CDEF);
    let pool: Vec<u8> = (0..65536).map(|_| rng.next_u64() as u8).collect();

    let mut vectors = Vec::new();
    put_u32(&mut vectors, rows.len());
    for x in &rows {
        put_u32(&mut vectors, x.len());
        put_f32s(&mut vectors, x);
    }
    put_u32(&mut vectors, pool.len());
    vectors.extend_from_slice(&pool);

    let mut out = Vec::new();
    for (name, ty, quantize) in QUANTIZERS {
        put_u32(&mut out, name.len());
        out.extend_from_slice(name.as_bytes());
        for x in &rows {
            let mut q = vec![0u8; ty.bytes_for(x.len() as u64).unwrap() as usize];
            match quantize {
                Some(f) => f(x, &mut q),
                None => ty.quantize_row(x, &mut q),
            }
            let mut y = vec![0f32; x.len()];
            ty.dequantize_row(&q, &mut y);
            out.extend_from_slice(&q);
            put_f32s(&mut out, &y);
        }
        let nb = pool.len() / ty.type_size();
        let mut y = vec![0f32; nb * ty.block_size()];
        ty.dequantize_row(&pool[..nb * ty.type_size()], &mut y);
        put_f32s(&mut out, &y);
    }

    std::fs::create_dir_all(&dir)?;
    std::fs::File::create(format!("{dir}/vectors.bin"))?.write_all(&vectors)?;
    std::fs::File::create(format!("{dir}/rust.bin"))?.write_all(&out)?;
    eprintln!(
        "{} rows ({} values), {} quantizers, {} random bytes",
        rows.len(),
        rows.iter().map(Vec::len).sum::<usize>(),
        QUANTIZERS.len(),
        pool.len()
    );
    Ok(())
}
