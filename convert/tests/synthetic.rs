//! Synthetic models: full-size shapes, deterministic in the seed.

mod common;

use std::time::Instant;

use common::*;
use mamba_convert::{convert, Input, Preset, SyntheticSize};
use mamba_format::checksum::checksum;
use mamba_format::{Architecture, MbinFile, ModelConfig, QuantType, Value};

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
        let ModelConfig::Mamba(cfg) = ModelConfig::from_file(&file).unwrap() else {
            panic!("synthetic 130m is not a Mamba-1 file")
        };
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
    // Nominal sizes of state-spaces/mamba-{130m,...,2.8b}, state-spaces/mamba2-*,
    // mistralai/Mamba-Codestral-7B-v0.1 (7.29 B) and tiiuae/falcon-mamba-7b (7.27 B).
    let nominal = [
        (SyntheticSize::M130, 130e6),
        (SyntheticSize::M370, 370e6),
        (SyntheticSize::M790, 790e6),
        (SyntheticSize::B1_4, 1.4e9),
        (SyntheticSize::B2_8, 2.8e9),
        (SyntheticSize::Mamba2M130, 130e6),
        (SyntheticSize::Mamba2M370, 370e6),
        (SyntheticSize::Mamba2M780, 780e6),
        // "1.3b" rounds down: the published checkpoint has 1.34 B weights.
        (SyntheticSize::Mamba2B1_3, 1.34e9),
        (SyntheticSize::Mamba2B2_7, 2.7e9),
        (SyntheticSize::CodestralMamba7B, 7.29e9),
        (SyntheticSize::FalconMamba7B, 7.27e9),
    ];
    assert_eq!(nominal.len(), SyntheticSize::ALL.len());
    for (size, nominal) in nominal {
        let cfg = size.config();
        let params: u64 = cfg
            .tensor_defs()
            .iter()
            .map(|d| d.shape.iter().product::<u64>())
            .sum();
        eprintln!("{size}: {} {params} parameters", cfg.architecture());
        assert!(
            (params as f64 / nominal - 1.0).abs() < 0.03,
            "{size}: {params}"
        );
        assert_eq!(cfg.d_model(), size.dims().0);
        assert_eq!(cfg.n_layer(), size.dims().1);
        assert_eq!(size.name().parse::<SyntheticSize>().unwrap(), size);
        match (size.architecture(), &cfg) {
            (Architecture::Mamba, ModelConfig::Mamba(c)) => {
                assert_eq!(
                    (c.d_state, c.d_conv, c.d_inner, c.vocab_size),
                    (16, 4, 2 * c.d_model, 50280)
                );
                assert_eq!(c.dt_rank, c.d_model.div_ceil(16));
                assert!(c.tie_embeddings && c.conv_bias && !c.proj_bias);
            }
            (Architecture::FalconMamba, ModelConfig::Mamba(c)) => {
                assert_eq!(
                    (c.d_state, c.d_conv, c.d_inner, c.dt_rank, c.vocab_size),
                    (16, 4, 8192, 256, 65024)
                );
                assert_eq!((c.rms_norm_eps, c.mixer_rms_eps), (1e-5, Some(1e-6)));
                assert!(!c.tie_embeddings && c.conv_bias && !c.proj_bias);
            }
            (Architecture::Mamba2, ModelConfig::Mamba2(c)) => {
                assert_eq!(
                    (c.head_dim, c.d_state, c.d_conv, c.chunk_size),
                    (64, 128, 4, 256)
                );
                assert_eq!(c.d_inner(), 2 * c.d_model);
                assert_eq!((c.rms_norm_eps, c.norm_eps), (1e-5, 1e-5));
                assert_eq!((c.dt_min, c.dt_max), (0.0, f64::INFINITY));
                assert!(c.conv_bias && !c.proj_bias && !c.norm_before_gate);
                if size == SyntheticSize::CodestralMamba7B {
                    assert_eq!((c.n_heads, c.n_groups, c.vocab_size), (128, 8, 32768));
                    assert!(!c.tie_embeddings);
                } else {
                    assert_eq!((c.n_groups, c.vocab_size), (1, 50288));
                    assert!(c.tie_embeddings);
                }
            }
            (arch, cfg) => panic!("{size}: {arch} with {cfg:?}"),
        }
    }
}
