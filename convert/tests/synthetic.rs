//! Synthetic models: full-size shapes, deterministic in the seed.

mod common;

use std::time::Instant;

use common::*;
use mamba_convert::{convert, Input, Preset, SyntheticSize};
use mamba_format::checksum::checksum;
use mamba_format::{MbinFile, ModelConfig, QuantType, Value};

/// Converts synthetic 130m at q4_0 and returns (whole-file checksum, per-tensor
/// checksums), validating the file on the way; the file is deleted afterwards.
fn convert_130m(dir: &std::path::Path, seed: u64) -> (u64, Vec<u64>) {
    let out = dir.join(format!("synthetic-130m-{seed}.mbin"));
    let t = Instant::now();
    let summary = convert(&opts(
        Input::Synthetic {
            size: SyntheticSize::M130,
            seed,
        },
        &out,
        Preset::Uniform(QuantType::Q4_0),
    ))
    .unwrap();
    eprintln!(
        "synthetic 130m q4_0 seed {seed}: {:.2} s, {} bytes, {:.1} M params",
        t.elapsed().as_secs_f64(),
        summary.file_bytes,
        summary.n_params as f64 / 1e6
    );
    assert!(
        (129_000_000..130_000_000).contains(&summary.n_params),
        "{}",
        summary.n_params
    );
    let bytes = std::fs::read(&out).unwrap();
    let sums = {
        let file = MbinFile::parse(&bytes).unwrap();
        assert!(file.verify().is_empty());
        let ModelConfig::Mamba(cfg) = ModelConfig::from_file(&file).unwrap();
        assert_eq!(
            (cfg.d_model, cfg.n_layer, cfg.vocab_size, cfg.dt_rank),
            (768, 24, 50280, 48)
        );
        assert_eq!(
            file.metadata.get("general.synthetic"),
            Some(&Value::Bool(true))
        );
        assert_eq!(
            file.metadata.require_str("general.name").unwrap(),
            "synthetic-130m"
        );
        assert_eq!(
            file.metadata.require_str("general.source_format").unwrap(),
            "synthetic"
        );
        // dt_proj rows are 48 long: f16 under q4_0.
        assert_eq!(
            file.tensor("layers.0.mixer.dt_proj.weight").unwrap().ty,
            QuantType::F16
        );
        file.tensors.iter().map(|t| t.checksum).collect()
    };
    let whole = checksum(&bytes);
    drop(bytes);
    std::fs::remove_file(&out).unwrap();
    (whole, sums)
}

#[test]
fn synthetic_130m_is_deterministic_in_the_seed() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, sums_a) = convert_130m(tmp.path(), 0);
    let (b, _) = convert_130m(tmp.path(), 0);
    assert_eq!(a, b, "same seed, different bytes");
    let (c, sums_c) = convert_130m(tmp.path(), 1);
    assert_ne!(a, c);
    // Every random tensor changes with the seed (embedding; per layer in_proj, conv1d
    // weight and bias, x_proj, dt_proj weight and bias, out_proj); the constant ones
    // (norms, A, D) do not.
    let changed = sums_a.iter().zip(&sums_c).filter(|(x, y)| x != y).count();
    assert_eq!(changed, 1 + 24 * 7);
}

#[test]
fn synthetic_sizes_have_the_published_shapes() {
    // Nominal sizes of state-spaces/mamba-{130m,370m,790m,1.4b,2.8b}.
    for (size, nominal) in [
        (SyntheticSize::M130, 130e6),
        (SyntheticSize::M370, 370e6),
        (SyntheticSize::M790, 790e6),
        (SyntheticSize::B1_4, 1.4e9),
        (SyntheticSize::B2_8, 2.8e9),
    ] {
        let cfg = size.config();
        let params: u64 = cfg
            .tensor_defs()
            .iter()
            .map(|d| d.shape.iter().product::<u64>())
            .sum();
        eprintln!("{size}: {params} parameters");
        assert!(
            (params as f64 / nominal - 1.0).abs() < 0.03,
            "{size}: {params}"
        );
        assert_eq!(
            (cfg.d_state, cfg.d_conv, cfg.d_inner, cfg.vocab_size),
            (16, 4, 2 * cfg.d_model, 50280)
        );
        assert_eq!(cfg.dt_rank, cfg.d_model.div_ceil(16));
        assert!(cfg.tie_embeddings && cfg.conv_bias && !cfg.proj_bias);
        assert_eq!(size.name().parse::<SyntheticSize>().unwrap(), size);
    }
}
