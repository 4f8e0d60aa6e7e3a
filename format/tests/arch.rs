//! `ModelConfig::from_file`: the architecture rules of SPEC.md §5, one test per
//! rejection, matching `FormatError` variants.

mod common;

use common::{mamba_metadata, mamba_specs, tiny_config, zero_file};
use mamba_format::arch::MAX_DIM;
use mamba_format::{
    FormatError, MambaConfig, MbinFile, Metadata, ModelConfig, QuantType, TensorSpec, Value,
};
use std::time::Instant;

fn config_of(bytes: &[u8]) -> Result<ModelConfig, FormatError> {
    ModelConfig::from_file(&MbinFile::parse(bytes).expect("the container is valid"))
}

/// Asserts that the file parses but its configuration is rejected with `pattern`.
macro_rules! assert_config_rejects {
    ($bytes:expr, $pattern:pat $(if $guard:expr)?) => {{
        let e = config_of(&$bytes).expect_err("the configuration must be rejected");
        assert!(matches!(&e, $pattern $(if $guard)?), "wrong error: {e:?}");
    }};
}

fn all_f32(cfg: &MambaConfig) -> Vec<TensorSpec> {
    mamba_specs(cfg, |_| QuantType::F32)
}

/// The metadata of `md` without `key`.
fn without(md: &Metadata, key: &str) -> Metadata {
    let mut out = Metadata::new();
    for (k, v) in md.iter().filter(|(k, _)| *k != key) {
        out.set(k, v.clone()).unwrap();
    }
    out
}

/// The metadata of `md` with `key` set to `value`.
fn with(md: &Metadata, key: &str, value: Value) -> Metadata {
    let mut out = md.clone();
    out.set(key, value).unwrap();
    out
}

const REQUIRED: [&str; 12] = [
    "general.architecture",
    "mamba.d_model",
    "mamba.n_layer",
    "mamba.d_state",
    "mamba.d_conv",
    "mamba.d_inner",
    "mamba.dt_rank",
    "mamba.vocab_size",
    "mamba.rms_norm_eps",
    "mamba.tie_embeddings",
    "mamba.conv_bias",
    "mamba.proj_bias",
];

// ===========================================================================
// Passing cases
// ===========================================================================

#[test]
fn tiny_mamba_passes() {
    let cfg = tiny_config();
    let b = zero_file(&mamba_metadata(&cfg), &all_f32(&cfg));
    assert_eq!(config_of(&b).unwrap(), ModelConfig::Mamba(cfg));
}

/// Every flag combination, quantized matrices, only the required keys.
#[test]
fn variants_pass() {
    for (tie, conv_bias, proj_bias) in [
        (true, false, true),
        (false, true, false),
        (true, true, true),
    ] {
        let cfg = MambaConfig {
            tie_embeddings: tie,
            conv_bias,
            proj_bias,
            ..tiny_config()
        };
        let mut md = Metadata::new();
        cfg.to_metadata(&mut md).unwrap();
        let specs = mamba_specs(&cfg, |name| match name {
            n if n.contains("dt_proj") => QuantType::BF16,
            n if n.contains("x_proj") => QuantType::Q5_1,
            _ => QuantType::Q8_0,
        });
        assert_eq!(
            config_of(&zero_file(&md, &specs)).unwrap(),
            ModelConfig::Mamba(cfg)
        );
    }
}

/// The standard set: names and shapes as SPEC.md §5.3 lists them.
#[test]
fn standard_tensor_names_and_shapes() {
    let cfg = MambaConfig {
        proj_bias: true,
        mixer_rms_eps: None,
        ..tiny_config()
    };
    let defs: Vec<(String, Vec<u64>)> = cfg
        .tensor_defs()
        .into_iter()
        .map(|d| (d.name, d.shape))
        .collect();
    let (d, di, n, r, v, k) = (32, 32, 2, 2, 8, 4);
    let mut want = vec![("embeddings.weight".to_string(), vec![v, d])];
    for i in 0..2 {
        for (s, shape) in [
            ("norm.weight", vec![d]),
            ("mixer.in_proj.weight", vec![2 * di, d]),
            ("mixer.in_proj.bias", vec![2 * di]),
            ("mixer.conv1d.weight", vec![di, k]),
            ("mixer.conv1d.bias", vec![di]),
            ("mixer.x_proj.weight", vec![r + 2 * n, di]),
            ("mixer.dt_proj.weight", vec![di, r]),
            ("mixer.dt_proj.bias", vec![di]),
            ("mixer.A", vec![di, n]),
            ("mixer.D", vec![di]),
            ("mixer.out_proj.weight", vec![d, di]),
            ("mixer.out_proj.bias", vec![d]),
        ] {
            want.push((format!("layers.{i}.{s}"), shape));
        }
    }
    want.push(("norm_f.weight".into(), vec![d]));
    want.push(("lm_head.weight".into(), vec![v, d]));
    assert_eq!(defs, want);
}

// ===========================================================================
// Keys (MUST-A1 .. MUST-A6)
// ===========================================================================

/// MUST-A1
#[test]
fn a1_unknown_architecture() {
    let cfg = tiny_config();
    for arch in ["mamba3", "Mamba", "falcon_mamba", "llama", ""] {
        let md = with(
            &mamba_metadata(&cfg),
            "general.architecture",
            Value::String(arch.into()),
        );
        assert_config_rejects!(zero_file(&md, &all_f32(&cfg)), FormatError::UnknownArchitecture { found, .. } if found == arch);
    }
    let md = with(&mamba_metadata(&cfg), "general.architecture", Value::U32(1));
    assert_config_rejects!(zero_file(&md, &all_f32(&cfg)), FormatError::BadValue { .. });
}

/// MUST-A1, MUST-A3, MUST-A4, MUST-A5: each required key missing.
#[test]
fn a3_missing_key() {
    let cfg = tiny_config();
    for key in REQUIRED {
        let md = without(&mamba_metadata(&cfg), key);
        assert_config_rejects!(zero_file(&md, &all_f32(&cfg)), FormatError::MissingKey(k) if k == key);
    }
}

/// MUST-A3, MUST-A4, MUST-A5: required keys of the wrong type.
#[test]
fn a3_wrong_value_types() {
    let cfg = tiny_config();
    for (key, value) in [
        ("mamba.d_model", Value::String("32".into())),
        ("mamba.d_model", Value::F64(32.0)),
        ("mamba.n_layer", Value::I32(-2)),
        ("mamba.rms_norm_eps", Value::U32(1)),
        ("mamba.tie_embeddings", Value::U32(0)),
        ("mamba.conv_bias", Value::String("true".into())),
    ] {
        let md = with(&mamba_metadata(&cfg), key, value);
        assert_config_rejects!(zero_file(&md, &all_f32(&cfg)), FormatError::BadValue { key: k, .. } if k == key);
    }
}

/// MUST-A3: dimensions are in 1..=MAX_DIM; any integer type is accepted.
#[test]
fn a3_dimension_range() {
    let cfg = tiny_config();
    for v in [0, MAX_DIM as u64 + 1, u64::MAX] {
        let md = with(&mamba_metadata(&cfg), "mamba.d_state", Value::U64(v));
        assert_config_rejects!(zero_file(&md, &all_f32(&cfg)), FormatError::BadValue { .. });
    }
    let md = with(&mamba_metadata(&cfg), "mamba.d_state", Value::I64(2));
    assert!(config_of(&zero_file(&md, &all_f32(&cfg))).is_ok());
}

/// MUST-A4: rms_norm_eps in (0, 1); f32 is accepted.
#[test]
fn a4_rms_norm_eps_range() {
    let cfg = tiny_config();
    for eps in [0.0, -1e-5, 1.0, f64::NAN, f64::INFINITY] {
        let md = with(&mamba_metadata(&cfg), "mamba.rms_norm_eps", Value::F64(eps));
        assert_config_rejects!(zero_file(&md, &all_f32(&cfg)), FormatError::BadValue { key, .. } if key == "mamba.rms_norm_eps");
    }
    let md = with(
        &mamba_metadata(&cfg),
        "mamba.rms_norm_eps",
        Value::F32(1e-6),
    );
    assert!(config_of(&zero_file(&md, &all_f32(&cfg))).is_ok());
}

/// MUST-A2: the optional shared keys, when present, have their types.
#[test]
fn a2_optional_key_types() {
    let cfg = tiny_config();
    for (key, value) in [
        ("general.name", Value::U32(1)),
        ("general.source", Value::Bool(true)),
        ("general.source_format", Value::U32(1)),
        ("general.converter", Value::U32(1)),
        ("general.quantization", Value::U32(8)),
        ("general.synthetic", Value::String("yes".into())),
        ("tokenizer.huggingface.json", Value::U64(0)),
    ] {
        let md = with(&mamba_metadata(&cfg), key, value);
        assert_config_rejects!(zero_file(&md, &all_f32(&cfg)), FormatError::BadValue { key: k, .. } if k == key);
    }
    let mut md = mamba_metadata(&cfg);
    for key in [
        "general.source",
        "general.source_format",
        "general.converter",
        "general.quantization",
    ] {
        md.set(key, Value::String("x".into())).unwrap();
    }
    md.set("tokenizer.huggingface.json", Value::String("{}".into()))
        .unwrap();
    md.set("tokenizer.pad_id", Value::U64(7)).unwrap();
    assert!(config_of(&zero_file(&md, &all_f32(&cfg))).is_ok());
}

/// MUST-A6: token ids index the embedding.
#[test]
fn a6_token_ids_below_vocab() {
    let cfg = tiny_config();
    for (key, value) in [
        ("tokenizer.bos_id", Value::U32(8)),
        ("tokenizer.eos_id", Value::U64(u64::MAX)),
        ("tokenizer.pad_id", Value::I32(-1)),
        ("tokenizer.bos_id", Value::String("0".into())),
    ] {
        let md = with(&mamba_metadata(&cfg), key, value);
        assert_config_rejects!(zero_file(&md, &all_f32(&cfg)), FormatError::BadValue { key: k, .. } if k == key);
    }
}

// ===========================================================================
// Tensors (MUST-A7 .. MUST-A10)
// ===========================================================================

/// MUST-A7
#[test]
fn a7_missing_tensor() {
    let cfg = tiny_config();
    for missing in [
        "embeddings.weight",
        "layers.1.mixer.A",
        "layers.0.mixer.conv1d.bias",
        "lm_head.weight",
    ] {
        let specs: Vec<TensorSpec> = all_f32(&cfg)
            .into_iter()
            .filter(|s| s.name != missing)
            .collect();
        assert_config_rejects!(zero_file(&mamba_metadata(&cfg), &specs), FormatError::MissingTensor(n) if n == missing);
    }
}

/// MUST-A7 with a huge claimed `n_layer`: rejected without materializing the
/// standard names of every claimed layer.
#[test]
fn a7_huge_n_layer_is_cheap() {
    let cfg = tiny_config();
    let md = with(
        &mamba_metadata(&cfg),
        "mamba.n_layer",
        Value::U64(MAX_DIM as u64),
    );
    let b = zero_file(&md, &all_f32(&cfg));
    let t = Instant::now();
    assert_config_rejects!(b, FormatError::MissingTensor(n) if n == "layers.2.norm.weight");
    assert!(t.elapsed().as_secs() < 2, "took {:?}", t.elapsed());
}

/// MUST-A8
#[test]
fn a8_wrong_shape() {
    let cfg = tiny_config();
    for (name, shape) in [
        ("layers.0.mixer.in_proj.weight", vec![32u64, 64]),
        ("layers.1.mixer.D", vec![1, 32]),
        ("norm_f.weight", vec![33]),
    ] {
        let mut specs = all_f32(&cfg);
        specs.iter_mut().find(|s| s.name == name).unwrap().shape = shape.clone();
        assert_config_rejects!(
            zero_file(&mamba_metadata(&cfg), &specs),
            FormatError::ShapeMismatch { tensor, found, .. } if tensor == name && *found == shape
        );
    }
}

/// MUST-A9: `A` (and the other small tensors) must stay f32.
#[test]
fn a9_quantized_a() {
    let cfg = tiny_config();
    for (name, ty) in [
        ("layers.0.mixer.A", QuantType::F16),
        ("layers.1.mixer.A", QuantType::BF16),
        ("layers.0.norm.weight", QuantType::Q8_0),
        ("layers.0.mixer.D", QuantType::Q4_0),
    ] {
        let mut specs = all_f32(&cfg);
        specs.iter_mut().find(|s| s.name == name).unwrap().ty = ty;
        assert_config_rejects!(
            zero_file(&mamba_metadata(&cfg), &specs),
            FormatError::MustBeF32 { tensor, found } if tensor == name && *found == ty
        );
    }
}

/// MUST-A10
#[test]
fn a10_unexpected_tensor() {
    let cfg = tiny_config();
    for extra in [
        "layers.2.norm.weight",
        "lm_head.bias",
        "layers.0.mixer.A_log",
    ] {
        let mut specs = all_f32(&cfg);
        specs.push(TensorSpec::new(extra, QuantType::F32, &[4]));
        assert_config_rejects!(zero_file(&mamba_metadata(&cfg), &specs), FormatError::UnexpectedTensor(n) if n == extra);
    }
    // A tied model must not carry an lm_head.
    let tied = MambaConfig {
        tie_embeddings: true,
        ..tiny_config()
    };
    let mut specs = all_f32(&tied);
    specs.push(TensorSpec::new("lm_head.weight", QuantType::F32, &[8, 32]));
    assert_config_rejects!(zero_file(&mamba_metadata(&tied), &specs), FormatError::UnexpectedTensor(n) if n == "lm_head.weight");
}
