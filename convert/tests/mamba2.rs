//! Mamba-2 and Falcon-Mamba conversions: the fixtures convert with the config their
//! `config.json` describes, hold the source values exactly at f32, convert at every
//! type, the HF and state-spaces Mamba-2 checkpoints give the same tensors, dry runs
//! and synthetic shapes report the architecture.
//!
//! Expected configs are computed from each fixture's own `config.json`, not written
//! down, so the tests hold for any fixture of these layouts.

mod common;

use common::*;
use mamba_convert::{convert, dry_run, Input, Preset, SyntheticSize};
use mamba_format::{
    Architecture, Mamba2Config, MambaConfig, MbinFile, ModelConfig, QuantType, TensorRole, Value,
};
use serde_json::Value as Json;

/// The Mamba-2 and Falcon-Mamba checkpoint directories.
const FIXTURES: [&str; 4] = [
    "mamba2-tiny-hf",
    "mamba2-tiny-ssm",
    "falcon-mamba-tiny-hf",
    "mamba2-shakespeare",
];

/// Metadata keys that say where a file came from, not what model it holds.
const PROVENANCE: [&str; 4] = [
    "general.name",
    "general.source",
    "general.source_format",
    "general.converter",
];

// -----------------------------------------------------------------------------------
// Expected configs, from config.json
// -----------------------------------------------------------------------------------

fn read_json(dir: &std::path::Path) -> Json {
    serde_json::from_str(&std::fs::read_to_string(dir.join("config.json")).unwrap()).unwrap()
}

fn dim(v: &Json, key: &str) -> usize {
    v[key]
        .as_u64()
        .unwrap_or_else(|| panic!("config key {key}: {}", v[key])) as usize
}

fn dim_or(v: &Json, key: &str, default: usize) -> usize {
    v.get(key)
        .and_then(Json::as_u64)
        .map_or(default, |n| n as usize)
}

fn bool_or(v: &Json, key: &str, default: bool) -> bool {
    v.get(key).and_then(Json::as_bool).unwrap_or(default)
}

fn f64_or(v: &Json, key: &str, default: f64) -> f64 {
    v.get(key).and_then(Json::as_f64).unwrap_or(default)
}

/// A number, or transformers' `{"__float__": "Infinity"}`.
fn special_float(v: &Json) -> f64 {
    match v.get("__float__").and_then(Json::as_str) {
        Some("Infinity") => f64::INFINITY,
        Some(other) => panic!("unexpected special float {other}"),
        None => v.as_f64().unwrap(),
    }
}

/// What the converter must write for a checkpoint, computed from its config.json.
fn expected_config(dir: &std::path::Path) -> ModelConfig {
    let c = read_json(dir);
    match c.get("model_type").and_then(Json::as_str) {
        Some("mamba2") => {
            let d_model = dim(&c, "hidden_size");
            let n_heads = dim(&c, "num_heads");
            let head_dim = dim(&c, "head_dim");
            assert_eq!(dim_or(&c, "expand", 2) * d_model, n_heads * head_dim);
            let eps = f64_or(&c, "layer_norm_epsilon", 1e-5);
            let (dt_min, dt_max) = match c.get("time_step_limit").and_then(Json::as_array) {
                Some(l) => (special_float(&l[0]), special_float(&l[1])),
                None => (0.0, f64::INFINITY),
            };
            ModelConfig::Mamba2(Mamba2Config {
                d_model,
                n_layer: dim(&c, "num_hidden_layers"),
                d_state: dim(&c, "state_size"),
                d_conv: dim(&c, "conv_kernel"),
                n_heads,
                head_dim,
                n_groups: dim(&c, "n_groups"),
                chunk_size: dim(&c, "chunk_size"),
                vocab_size: dim(&c, "vocab_size"),
                rms_norm_eps: eps,
                norm_eps: eps,
                norm_before_gate: false,
                dt_min,
                dt_max,
                tie_embeddings: bool_or(&c, "tie_word_embeddings", false),
                conv_bias: bool_or(&c, "use_conv_bias", true),
                proj_bias: bool_or(&c, "use_bias", false),
            })
        }
        Some("falcon_mamba") => {
            let d_model = dim(&c, "hidden_size");
            ModelConfig::Mamba(MambaConfig {
                d_model,
                n_layer: dim(&c, "num_hidden_layers"),
                d_state: dim(&c, "state_size"),
                d_conv: dim(&c, "conv_kernel"),
                d_inner: dim_or(&c, "intermediate_size", dim_or(&c, "expand", 2) * d_model),
                dt_rank: dim_or(&c, "time_step_rank", d_model.div_ceil(16)),
                vocab_size: dim(&c, "vocab_size"),
                rms_norm_eps: f64_or(&c, "layer_norm_epsilon", 1e-5),
                tie_embeddings: bool_or(&c, "tie_word_embeddings", true),
                conv_bias: bool_or(&c, "use_conv_bias", true),
                proj_bias: bool_or(&c, "use_bias", false),
                mixer_rms_eps: Some(f64_or(&c, "mixer_rms_eps", 1e-6)),
            })
        }
        None => {
            // state-spaces: mamba_ssm's Mamba2 defaults for what ssm_cfg leaves out.
            let s = &c["ssm_cfg"];
            assert_eq!(s["layer"], "Mamba2");
            let d_model = dim(&c, "d_model");
            let d_inner = dim_or(s, "expand", 2) * d_model;
            let head_dim = dim_or(s, "headdim", 64);
            let multiple = dim_or(&c, "pad_vocab_size_multiple", 8);
            ModelConfig::Mamba2(Mamba2Config {
                d_model,
                n_layer: dim(&c, "n_layer"),
                d_state: dim_or(s, "d_state", 128),
                d_conv: dim_or(s, "d_conv", 4),
                n_heads: d_inner / head_dim,
                head_dim,
                n_groups: dim_or(s, "ngroups", 1),
                chunk_size: dim_or(s, "chunk_size", 256),
                vocab_size: dim(&c, "vocab_size").next_multiple_of(multiple),
                rms_norm_eps: f64_or(&c, "norm_epsilon", 1e-5),
                norm_eps: 1e-5,
                norm_before_gate: bool_or(s, "norm_before_gate", false),
                dt_min: 0.0,
                dt_max: f64::INFINITY,
                tie_embeddings: bool_or(&c, "tie_embeddings", true),
                conv_bias: bool_or(s, "conv_bias", true),
                proj_bias: bool_or(s, "bias", false),
            })
        }
        Some(other) => panic!("{}: model_type {other}", dir.display()),
    }
}

// -----------------------------------------------------------------------------------
// Conversions of the fixtures
// -----------------------------------------------------------------------------------

#[test]
fn fixtures_convert_at_f32_with_the_config_of_their_config_json() {
    let Some(_) = shared() else { return };
    let tmp = tempfile::tempdir().unwrap();
    for input in FIXTURES {
        let dir = fixture(input).unwrap();
        let out = tmp.path().join(format!("{input}.mbin"));
        let summary = convert_dir(&dir, &out, Preset::Uniform(QuantType::F32))
            .unwrap_or_else(|e| panic!("{input}: {e}"));
        let expected = expected_config(&dir);
        assert_eq!(summary.model, expected, "{input}");
        let bytes = read_valid(&out);
        let file = MbinFile::parse(&bytes).unwrap();
        let written = ModelConfig::from_file(&file).unwrap();
        assert_eq!(written, expected, "{input}");
        assert_eq!(
            file.metadata.require_str("general.architecture").unwrap(),
            expected.architecture().name()
        );
        assert!(summary
            .tensors
            .iter()
            .all(|t| t.chosen == QuantType::F32 && t.max_abs_err == 0.0));
        // The table names the architecture.
        assert!(
            summary
                .table(None)
                .starts_with(&format!("{}:", expected.architecture())),
            "{}",
            summary.table(None)
        );
    }
}
#[test]
fn every_type_converts_and_falls_back_like_mamba_1() {
    let Some(_) = shared() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let shakespeare = [
        Preset::Uniform(QuantType::Q8_0),
        Preset::Uniform(QuantType::Q4_K),
        Preset::Q4KM,
    ];
    for input in FIXTURES {
        let dir = fixture(input).unwrap();
        // The 14.6 M-parameter model at the types that matter most; the tiny ones at
        // all of them.
        let presets = if input == "mamba2-shakespeare" {
            shakespeare.to_vec()
        } else {
            Preset::all()
        };
        let arch = expected_config(&dir).architecture();
        for preset in presets {
            let out = tmp.path().join(format!("{input}.{preset}.mbin"));
            let summary = convert_dir(&dir, &out, preset)
                .unwrap_or_else(|e| panic!("{input} at {preset}: {e}"));
            assert_eq!(summary.architecture(), arch);
            let bytes = read_valid(&out);
            let file = MbinFile::parse(&bytes).unwrap();
            assert_eq!(summary.file_bytes, bytes.len() as u64);
            assert_eq!(summary.tensors.len(), file.tensors.len());
            let defs = summary.model.tensor_defs();
            for ((r, t), def) in summary.tensors.iter().zip(&file.tensors).zip(&defs) {
                assert_eq!(
                    (r.name.as_str(), r.chosen, r.bytes),
                    (t.name.as_str(), t.ty, t.size),
                    "{input} {preset}"
                );
                assert_eq!(r.name, def.name);
                let row = *def.shape.last().unwrap() as usize;
                assert!(
                    row.is_multiple_of(r.chosen.block_size()),
                    "{input} {preset} {}",
                    r.name
                );
                match def.role {
                    TensorRole::F32Only => assert_eq!(r.chosen, QuantType::F32, "{}", r.name),
                    TensorRole::Matrix => assert_eq!(
                        r.fallback,
                        r.chosen != r.requested,
                        "{input} {preset} {}",
                        r.name
                    ),
                }
                assert!(r.max_abs_err.is_finite() && r.rms_err <= r.max_abs_err);
            }
            assert_eq!(
                file.metadata.require_str("general.quantization").unwrap(),
                preset.name()
            );
            std::fs::remove_file(&out).unwrap();
        }
    }
}

#[test]
fn mamba2_rows_that_a_block_does_not_divide_fall_back() {
    let Some(dir) = fixture("mamba2-tiny-hf") else {
        return;
    };
    let ModelConfig::Mamba2(c) = expected_config(&dir) else {
        unreachable!()
    };
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("q4_k.mbin");
    let summary = convert_dir(&dir, &out, Preset::Uniform(QuantType::Q4_K)).unwrap();
    // Rows of in_proj are d_model long, rows of out_proj d_inner long: the same
    // fallback chain as Mamba-1's matrices (q4_k → q5_0 → f16).
    for (name, row) in [
        ("layers.0.mixer.in_proj.weight", c.d_model),
        ("layers.0.mixer.out_proj.weight", c.d_inner()),
    ] {
        let r = summary.tensors.iter().find(|r| r.name == name).unwrap();
        let want = if row.is_multiple_of(256) {
            QuantType::Q4_K
        } else if row.is_multiple_of(32) {
            QuantType::Q5_0
        } else {
            QuantType::F16
        };
        assert_eq!((r.requested, r.chosen), (QuantType::Q4_K, want), "{name}");
    }
    if !c.d_model.is_multiple_of(256) {
        assert!(
            summary.warnings.iter().any(|w| w.contains("in_proj")),
            "{:?}",
            summary.warnings
        );
    }
}

#[test]
fn q4_k_m_protects_mamba2_out_proj_and_embeddings() {
    let Some(dir) = fixture("mamba2-shakespeare") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("q4_k_m.mbin");
    let summary = convert_dir(&dir, &out, Preset::Q4KM).unwrap();
    let n_layer = summary.model.n_layer();
    let req = |name: &str| {
        summary
            .tensors
            .iter()
            .find(|r| r.name == name)
            .unwrap()
            .requested
    };
    assert_eq!(req("embeddings.weight"), QuantType::Q6_K);
    for i in 0..n_layer {
        let want = if mamba_convert::preset::use_more_bits(i, n_layer) {
            QuantType::Q6_K
        } else {
            QuantType::Q4_K
        };
        assert_eq!(req(&format!("layers.{i}.mixer.out_proj.weight")), want);
        assert_eq!(
            req(&format!("layers.{i}.mixer.in_proj.weight")),
            QuantType::Q4_K
        );
        for small in ["mixer.A", "mixer.D", "mixer.dt_bias", "mixer.norm.weight"] {
            assert_eq!(req(&format!("layers.{i}.{small}")), QuantType::F32);
        }
    }
}

#[test]
fn mamba2_shakespeare_embeds_its_tokenizer_and_ids() {
    let Some(dir) = fixture("mamba2-shakespeare") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("q8_0.mbin");
    let bytes = convert_embedding_tokenizer(&dir, &out);
    let file = MbinFile::parse(&bytes).unwrap();
    let c = read_json(&dir);
    for (key, cfg_key) in [
        ("tokenizer.bos_id", "bos_token_id"),
        ("tokenizer.eos_id", "eos_token_id"),
        ("tokenizer.pad_id", "pad_token_id"),
    ] {
        let id = dim(&c, cfg_key) as u32;
        assert_eq!(file.metadata.get(key), Some(&Value::U32(id)), "{key}");
    }
}

#[test]
fn hf_and_state_spaces_mamba2_give_byte_identical_tensors() {
    let Some(_) = shared() else { return };
    let tmp = tempfile::tempdir().unwrap();
    for preset in [
        Preset::Uniform(QuantType::F32),
        Preset::Uniform(QuantType::Q8_0),
        Preset::Q4KM,
    ] {
        let hf_out = tmp.path().join(format!("hf.{preset}.mbin"));
        let ssm_out = tmp.path().join(format!("ssm.{preset}.mbin"));
        let hf = convert_dir(&fixture("mamba2-tiny-hf").unwrap(), &hf_out, preset).unwrap();
        let ssm = convert_dir(&fixture("mamba2-tiny-ssm").unwrap(), &ssm_out, preset).unwrap();
        assert_eq!(hf.source_format, "huggingface-safetensors");
        assert_eq!(ssm.source_format, "mamba_ssm-pytorch");
        assert_eq!(hf.model, ssm.model);
        let (a, b) = (read_valid(&hf_out), read_valid(&ssm_out));
        let (fa, fb) = (MbinFile::parse(&a).unwrap(), MbinFile::parse(&b).unwrap());
        assert_eq!(fa.tensors.len(), fb.tensors.len());
        for (ta, tb) in fa.tensors.iter().zip(&fb.tensors) {
            assert_eq!((&ta.name, ta.ty, &ta.shape), (&tb.name, tb.ty, &tb.shape));
            assert_eq!(
                fa.tensor_data(ta),
                fb.tensor_data(tb),
                "{preset} {}",
                ta.name
            );
        }
        // The metadata differs only in provenance, and in the special token ids, which
        // the transformers config names and the mamba_ssm config does not (neither
        // fixture has a tokenizer to take them from).
        let ignored = |k: &str| PROVENANCE.contains(&k) || k.starts_with("tokenizer.");
        let keys = |f: &MbinFile<'_>| -> Vec<String> {
            f.metadata
                .iter()
                .map(|(k, _)| k.to_string())
                .filter(|k| !ignored(k))
                .collect()
        };
        assert_eq!(keys(&fa), keys(&fb));
        for key in keys(&fa) {
            assert_eq!(fa.metadata.get(&key), fb.metadata.get(&key), "{key}");
        }
        assert!(keys(&fa).iter().any(|k| k.starts_with("mamba2.")));
        assert_ne!(
            fa.metadata.get("general.source_format"),
            fb.metadata.get("general.source_format")
        );
    }
}

// -----------------------------------------------------------------------------------
// Dry runs and synthetic shapes
// -----------------------------------------------------------------------------------

#[test]
fn dry_run_plans_what_convert_writes_and_writes_nothing() {
    let Some(_) = shared() else { return };
    let tmp = tempfile::tempdir().unwrap();
    for input in ["mamba2-tiny-hf", "mamba2-tiny-ssm", "falcon-mamba-tiny-hf"] {
        let dir = fixture(input).unwrap();
        let out = tmp.path().join(format!("{input}.mbin"));
        let o = opts(Input::Dir(dir.clone()), &out, Preset::Q4KM);
        let plan = dry_run(&o).unwrap();
        assert_nothing_written(&out);
        assert_eq!(plan.model, expected_config(&dir));
        assert!(plan
            .table()
            .starts_with(&format!("{}:", plan.architecture())));
        let summary = convert(&o).unwrap();
        let planned: Vec<_> = plan
            .tensors
            .iter()
            .map(|t| (&t.name, t.chosen, t.fallback, t.bytes))
            .collect();
        let written: Vec<_> = summary
            .tensors
            .iter()
            .map(|t| (&t.name, t.chosen, t.fallback, t.bytes))
            .collect();
        assert_eq!(planned, written, "{input}");
        assert_eq!(plan.n_params, summary.n_params);
        assert_eq!(plan.tensor_bytes(), summary.tensor_bytes());
    }
}

#[test]
fn synthetic_mamba2_130m_converts_and_matches_its_dry_run() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("mamba2-130m.mbin");
    let o = opts(
        Input::Synthetic {
            size: SyntheticSize::Mamba2M130,
            seed: 5,
        },
        &out,
        Preset::Uniform(QuantType::Q4_0),
    );
    let plan = dry_run(&o).unwrap();
    assert_nothing_written(&out);
    let t = std::time::Instant::now();
    let summary = convert(&o).unwrap();
    eprintln!(
        "synthetic mamba2-130m q4_0: {:.2} s, {} bytes",
        t.elapsed().as_secs_f64(),
        summary.file_bytes
    );
    assert_eq!(plan.tensor_bytes(), summary.tensor_bytes());
    assert_eq!(plan.model, summary.model);
    let bytes = read_valid(&out);
    let file = MbinFile::parse(&bytes).unwrap();
    let ModelConfig::Mamba2(c) = ModelConfig::from_file(&file).unwrap() else {
        panic!("not a mamba2 file")
    };
    assert_eq!(
        ModelConfig::Mamba2(c.clone()),
        SyntheticSize::Mamba2M130.config()
    );
    assert_eq!(
        file.metadata.require_str("general.name").unwrap(),
        "synthetic-mamba2-130m"
    );
    // Sane for running: A in [-16, -1] per head, D = 1, softplus(dt_bias) in
    // [1e-3, 1e-1].
    let a = f32_values(file.tensor_data(file.tensor("layers.3.mixer.A").unwrap()));
    assert_eq!(a.len(), c.n_heads);
    assert!(a.iter().all(|x| (-16.0..=-1.0).contains(x)), "{a:?}");
    let d = f32_values(file.tensor_data(file.tensor("layers.3.mixer.D").unwrap()));
    assert!(d.iter().all(|&x| x == 1.0));
    let dt = f32_values(file.tensor_data(file.tensor("layers.3.mixer.dt_bias").unwrap()));
    for x in dt {
        let sp = (x as f64).exp().ln_1p();
        assert!((0.000_99..=0.100_1).contains(&sp), "softplus(dt_bias) {sp}");
    }
}

#[test]
fn synthetic_7b_shapes_dry_run_with_their_architecture() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("never.mbin");
    for (size, arch) in [
        (SyntheticSize::FalconMamba7B, Architecture::FalconMamba),
        (SyntheticSize::CodestralMamba7B, Architecture::Mamba2),
        (SyntheticSize::Mamba2B2_7, Architecture::Mamba2),
    ] {
        let o = opts(
            Input::Synthetic { size, seed: 0 },
            &out,
            Preset::Uniform(QuantType::Q8_0),
        );
        let plan = dry_run(&o).unwrap();
        assert_eq!(plan.architecture(), arch, "{size}");
        assert_eq!(plan.model, size.config());
        assert_eq!(plan.source_format, "synthetic");
        let table = plan.table();
        assert!(table.starts_with(&format!("{arch}:")), "{table}");
        eprint!("{size}:\n{table}");
        // Every matrix row of these shapes is a multiple of 32, except Falcon's
        // dt_proj rows (dt_rank 256) which are too.
        assert!(plan.tensors.iter().all(|t| !t.fallback), "{size}");
        assert_nothing_written(&out);
    }
}

#[test]
fn cli_dry_run_and_synthetic_falcon_print_the_architecture() {
    let o = run_convert(
        &[
            "--synthetic",
            "falcon-mamba-7b",
            "--dry-run",
            "-t",
            "q4_k_m",
        ],
        std::time::Duration::from_secs(60),
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(
        err.lines()
            .any(|l| l.starts_with("falcon-mamba: d_model 4096, 64 layers")),
        "{err}"
    );
    assert!(err.contains("dry run"), "{err}");
    assert!(err.contains("x_proj") && err.contains("dt_proj"), "{err}");

    let Some(dir) = fixture("mamba2-tiny-hf") else {
        return;
    };
    let o = run_convert(
        &[dir.to_str().unwrap(), "--dry-run", "--quiet"],
        std::time::Duration::from_secs(60),
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

#[test]
fn time_step_limit_as_python_writes_it() {
    // transformers before it encoded non-finite floats wrote Python's bare
    // `Infinity`, which is not JSON: `"time_step_limit": [0.0, Infinity]`.
    let Some((_tmp, dir, out)) = scratch("mamba2-tiny-hf") else {
        return;
    };
    let mut c = read_json(&dir);
    c.as_object_mut().unwrap().remove("time_step_limit");
    let text = serde_json::to_string_pretty(&c).unwrap();
    let text = text.replacen('{', "{\n  \"time_step_limit\": [0.0, Infinity],", 1);
    std::fs::write(dir.join("config.json"), text).unwrap();
    let summary = convert_dir(&dir, &out, Preset::Uniform(QuantType::F16)).unwrap();
    let ModelConfig::Mamba2(m) = &summary.model else {
        panic!("{:?}", summary.model)
    };
    assert_eq!((m.dt_min, m.dt_max), (0.0, f64::INFINITY));
    read_valid(&out);
}
