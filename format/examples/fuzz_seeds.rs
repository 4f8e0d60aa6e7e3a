//! Writes a few small valid `.mbin` files as the seed corpus of the `parse` fuzz
//! target (`fuzz/`), and small GGUF files for the `gguf` one:
//! `cargo run -p mamba-format --example fuzz_seeds -- fuzz/seeds fuzz/seeds-gguf`.
//!
//! The files come from the same builders as the integration tests.

#[path = "../tests/common/mod.rs"]
mod common;

use mamba_format::{write_to_vec, Array, Metadata, QuantType, TensorSpec, Value};

fn main() -> std::io::Result<()> {
    let dir = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "fuzz/seeds".into());
    std::fs::create_dir_all(&dir)?;

    // Every metadata value kind, and one tensor of every type.
    let mut md = Metadata::new();
    md.set("v.u32", Value::U32(1)).unwrap();
    md.set("v.i32", Value::I32(-2)).unwrap();
    md.set("v.u64", Value::U64(3)).unwrap();
    md.set("v.i64", Value::I64(-4)).unwrap();
    md.set("v.f32", Value::F32(0.5)).unwrap();
    md.set("v.f64", Value::F64(0.25)).unwrap();
    md.set("v.bool", Value::Bool(true)).unwrap();
    md.set("v.string", Value::String("text".into())).unwrap();
    md.set("v.bools", Value::Array(Array::Bool(vec![true, false])))
        .unwrap();
    md.set(
        "v.strings",
        Value::Array(Array::String(vec!["a".into(), "".into()])),
    )
    .unwrap();
    md.set("v.f32s", Value::Array(Array::F32(vec![1.0, -1.0])))
        .unwrap();
    let all_types: Vec<TensorSpec> = QuantType::ALL
        .iter()
        .map(|&ty| TensorSpec::new(format!("t.{ty}"), ty, &[ty.block_size() as u64]))
        .collect();

    let cfg = common::tiny_config();
    let q8 = |name: &str| {
        if name.contains("dt_proj") {
            QuantType::F16
        } else {
            QuantType::Q8_0
        }
    };
    let seeds: [(&str, Vec<u8>); 5] = [
        ("empty.mbin", write_to_vec(&Metadata::new(), &[]).unwrap()),
        ("small.mbin", common::small_file()),
        ("all_types.mbin", common::file_of(&md, &all_types)),
        ("metadata_only.mbin", write_to_vec(&md, &[]).unwrap()),
        (
            "tiny_mamba.mbin",
            common::mamba_file_with(&cfg, &common::mamba_metadata(&cfg), q8),
        ),
    ];
    for (name, bytes) in seeds {
        let path = std::path::Path::new(&dir).join(name);
        std::fs::write(&path, &bytes)?;
        println!("{} ({} bytes)", path.display(), bytes.len());
    }

    // GGUF: every value kind llama.cpp writes, and one tensor of every type.
    let gguf_dir = std::env::args()
        .nth(2)
        .unwrap_or_else(|| "fuzz/seeds-gguf".into());
    std::fs::create_dir_all(&gguf_dir)?;
    let mut g = mamba_testkit::gguf::GgufBuilder::new()
        .str("general.architecture", "mamba")
        .u32("mamba.block_count", 1)
        .u64("general.alignment", 32)
        .f32("mamba.attention.layer_norm_rms_epsilon", 1e-5)
        .bool("mamba.ssm.dt_b_c_rms", true)
        .str_array("tokenizer.ggml.tokens", &["a", "b", "a b"])
        .i32_array("tokenizer.ggml.token_type", &[1, 1, 3]);
    for ty in QuantType::ALL {
        let n = ty.block_size();
        let data = vec![0u8; ty.type_size()];
        g = g.tensor(&format!("t.{ty}"), &[n as u64], ty.id(), data);
    }
    let path = std::path::Path::new(&gguf_dir).join("all_types.gguf");
    std::fs::write(&path, g.build())?;
    println!("{}", path.display());
    Ok(())
}
