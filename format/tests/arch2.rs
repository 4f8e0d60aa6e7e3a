//! SPEC.md §5.4–§5.5: Falcon-Mamba and Mamba-2, accepted and rejected, one test per
//! rule, matching `FormatError` variants.

mod common;

use common::{mamba_metadata, tiny_config, zero_file};
use mamba_format::{
    Architecture, FormatError, Mamba2Config, MambaConfig, MbinFile, Metadata, ModelConfig,
    QuantType, TensorRole, TensorSpec, Value,
};

fn config_of(bytes: &[u8]) -> Result<ModelConfig, FormatError> {
    ModelConfig::from_file(&MbinFile::parse(bytes).expect("the container is valid"))
}

macro_rules! assert_config_rejects {
    ($bytes:expr, $pattern:pat $(if $guard:expr)?) => {{
        let e = config_of(&$bytes).expect_err("the configuration must be rejected");
        assert!(matches!(&e, $pattern $(if $guard)?), "wrong error: {e:?}");
    }};
}

/// A tiny Mamba-2: 3 heads of 5 channels in 3 groups would not fit Q8_0 rows, so
/// rows are 32 wide where a matrix is involved (d_model 32, d_inner 32).
fn tiny2() -> Mamba2Config {
    Mamba2Config {
        d_model: 32,
        n_layer: 2,
        d_state: 4,
        d_conv: 4,
        n_heads: 4,
        head_dim: 8,
        n_groups: 2,
        chunk_size: 8,
        vocab_size: 10,
        rms_norm_eps: 1e-5,
        norm_eps: 1e-5,
        norm_before_gate: false,
        dt_min: 0.0,
        dt_max: f64::INFINITY,
        tie_embeddings: false,
        conv_bias: true,
        proj_bias: false,
    }
}

fn specs(cfg: &ModelConfig, matrix: QuantType) -> Vec<TensorSpec> {
    cfg.tensor_defs()
        .into_iter()
        .map(|d| {
            let ty = match d.role {
                TensorRole::Matrix => matrix,
                TensorRole::F32Only => QuantType::F32,
            };
            TensorSpec::new(d.name, ty, &d.shape)
        })
        .collect()
}

fn metadata(cfg: &ModelConfig) -> Metadata {
    let mut md = Metadata::new();
    cfg.to_metadata(&mut md).unwrap();
    md.set("tokenizer.eos_id", Value::U32(1)).unwrap();
    md
}

fn file(cfg: &ModelConfig) -> Vec<u8> {
    zero_file(&metadata(cfg), &specs(cfg, QuantType::Q8_0))
}

fn with(md: &Metadata, key: &str, value: Value) -> Metadata {
    let mut out = md.clone();
    out.set(key, value).unwrap();
    out
}

fn without(md: &Metadata, key: &str) -> Metadata {
    let mut out = Metadata::new();
    for (k, v) in md.iter().filter(|(k, _)| *k != key) {
        out.set(k, v.clone()).unwrap();
    }
    out
}

fn falcon() -> MambaConfig {
    MambaConfig {
        mixer_rms_eps: Some(1e-6),
        ..tiny_config()
    }
}

#[test]
fn mamba2_variants_pass() {
    for (tie, conv_bias, proj_bias, groups) in [
        (false, true, false, 2),
        (true, false, true, 1),
        (true, true, true, 4),
    ] {
        let cfg = ModelConfig::Mamba2(Mamba2Config {
            tie_embeddings: tie,
            conv_bias,
            proj_bias,
            n_groups: groups,
            ..tiny2()
        });
        assert_eq!(config_of(&file(&cfg)).unwrap(), cfg);
        assert_eq!(cfg.architecture(), Architecture::Mamba2);
    }
}

#[test]
fn mamba2_tensor_table() {
    let c = tiny2();
    let cfg = ModelConfig::Mamba2(c.clone());
    let defs = cfg.tensor_defs();
    let shape = |name: &str| defs.iter().find(|d| d.name == name).unwrap().shape.clone();
    // [z, xBC, dt]: 32 + (32 + 2·2·4) + 4.
    assert_eq!(shape("layers.1.mixer.in_proj.weight"), vec![84, 32]);
    assert_eq!(c.in_proj_rows(), 84);
    assert_eq!(shape("layers.0.mixer.conv1d.weight"), vec![48, 4]);
    assert_eq!(shape("layers.0.mixer.A"), vec![4]);
    assert_eq!(shape("layers.0.mixer.dt_bias"), vec![4]);
    assert_eq!(shape("layers.0.mixer.norm.weight"), vec![32]);
    assert_eq!(defs.first().unwrap().name, "embeddings.weight");
    assert_eq!(defs.last().unwrap().name, "lm_head.weight");
    for small in ["mixer.A", "mixer.D", "mixer.dt_bias", "mixer.conv1d.weight"] {
        let d = defs.iter().find(|d| d.name.ends_with(small)).unwrap();
        assert_eq!(d.role, TensorRole::F32Only, "{small}");
    }
}

/// MUST-A3, MUST-A4, MUST-A5 for `mamba2`
#[test]
fn mamba2_missing_keys() {
    let cfg = ModelConfig::Mamba2(tiny2());
    let md = metadata(&cfg);
    let keys: Vec<String> = md
        .iter()
        .map(|(k, _)| k.to_string())
        .filter(|k| k.starts_with("mamba2."))
        .collect();
    assert_eq!(keys.len(), 17);
    for key in keys {
        let b = zero_file(&without(&md, &key), &specs(&cfg, QuantType::F32));
        assert_config_rejects!(b, FormatError::MissingKey(k) if *k == key);
    }
}

/// MUST-A13
#[test]
fn mamba2_groups_must_divide_heads() {
    let bad = ModelConfig::Mamba2(Mamba2Config {
        n_groups: 3,
        ..tiny2()
    });
    assert_config_rejects!(file(&bad), FormatError::BadValue { key, why } if key == "mamba2.n_groups" && why.contains("divide"));
}

/// MUST-A14
#[test]
fn mamba2_time_step_limits() {
    let cfg = ModelConfig::Mamba2(tiny2());
    let md = metadata(&cfg);
    let sp = specs(&cfg, QuantType::F32);
    for (key, v) in [
        ("mamba2.dt_max", f64::NAN),
        ("mamba2.dt_max", 0.0),
        ("mamba2.dt_max", -1.0),
        ("mamba2.dt_min", -0.1),
        ("mamba2.dt_min", f64::NAN),
        ("mamba2.dt_min", f64::INFINITY),
    ] {
        let b = zero_file(&with(&md, key, Value::F64(v)), &sp);
        assert_config_rejects!(b, FormatError::BadValue { key: k, .. } if k == key);
    }
    // A finite limit pair is fine.
    let b = zero_file(
        &with(
            &with(&md, "mamba2.dt_min", Value::F64(1e-3)),
            "mamba2.dt_max",
            Value::F64(0.1),
        ),
        &sp,
    );
    config_of(&b).unwrap();
}

/// MUST-A13
#[test]
fn mamba2_derived_dims_bounded() {
    let cfg = ModelConfig::Mamba2(tiny2());
    let md = with(
        &with(&metadata(&cfg), "mamba2.n_heads", Value::U64(1 << 24)),
        "mamba2.head_dim",
        Value::U64(1 << 24),
    );
    let b = zero_file(&md, &specs(&cfg, QuantType::F32));
    assert_config_rejects!(b, FormatError::BadValue { key, .. } if key == "mamba2.head_dim");
}

/// MUST-A7, MUST-A8, MUST-A9 for `mamba2`
#[test]
fn mamba2_wrong_in_proj_rows_and_quantized_small_tensors() {
    let cfg = ModelConfig::Mamba2(tiny2());
    let md = metadata(&cfg);
    let mut sp = specs(&cfg, QuantType::F32);
    let i = sp
        .iter()
        .position(|s| s.name == "layers.0.mixer.in_proj.weight")
        .unwrap();
    sp[i] = TensorSpec::new(sp[i].name.clone(), QuantType::F32, &[83, 32]);
    assert_config_rejects!(zero_file(&md, &sp), FormatError::ShapeMismatch { tensor, .. } if tensor == "layers.0.mixer.in_proj.weight");

    let mut sp = specs(&cfg, QuantType::F32);
    let i = sp
        .iter()
        .position(|s| s.name == "layers.1.mixer.norm.weight")
        .unwrap();
    sp[i] = TensorSpec::new(sp[i].name.clone(), QuantType::F16, &[32]);
    assert_config_rejects!(zero_file(&md, &sp), FormatError::MustBeF32 { tensor, .. } if tensor == "layers.1.mixer.norm.weight");

    let mut sp = specs(&cfg, QuantType::F32);
    sp.retain(|s| s.name != "layers.1.mixer.dt_bias");
    assert_config_rejects!(zero_file(&md, &sp), FormatError::MissingTensor(n) if n == "layers.1.mixer.dt_bias");
}

/// MUST-A6
#[test]
fn mamba2_token_ids_checked_against_its_vocab() {
    let cfg = ModelConfig::Mamba2(tiny2());
    let md = with(&metadata(&cfg), "tokenizer.bos_id", Value::U64(10));
    let b = zero_file(&md, &specs(&cfg, QuantType::F32));
    assert_config_rejects!(b, FormatError::BadValue { key, why } if key == "tokenizer.bos_id" && why.contains("mamba2.vocab_size"));
}

#[test]
fn falcon_mamba_passes_and_is_its_own_architecture() {
    let cfg = ModelConfig::Mamba(falcon());
    assert_eq!(cfg.architecture(), Architecture::FalconMamba);
    let md = metadata(&cfg);
    assert_eq!(
        md.get("general.architecture").unwrap().as_str(),
        Some("falcon-mamba")
    );
    let b = zero_file(&md, &specs(&cfg, QuantType::F32));
    assert_eq!(config_of(&b).unwrap(), cfg);
    // Same tensors as Mamba-1: the norms have no weights.
    assert_eq!(
        cfg.tensor_defs(),
        ModelConfig::Mamba(tiny_config()).tensor_defs()
    );
}

/// MUST-A12
#[test]
fn falcon_mamba_needs_its_eps_and_mamba_refuses_it() {
    let cfg = ModelConfig::Mamba(falcon());
    let md = metadata(&cfg);
    let sp = specs(&cfg, QuantType::F32);
    let b = zero_file(&without(&md, "mamba.mixer_rms_eps"), &sp);
    assert_config_rejects!(b, FormatError::MissingKey(k) if k == "mamba.mixer_rms_eps");
    for v in [0.0, 1.0, f64::NAN] {
        let b = zero_file(&with(&md, "mamba.mixer_rms_eps", Value::F64(v)), &sp);
        assert_config_rejects!(b, FormatError::BadValue { key, .. } if key == "mamba.mixer_rms_eps");
    }
    // A `mamba` file carrying the key is ambiguous: refused, not silently ignored.
    let plain = with(
        &mamba_metadata(&tiny_config()),
        "mamba.mixer_rms_eps",
        Value::F64(1e-6),
    );
    let b = zero_file(&plain, &sp);
    assert_config_rejects!(b, FormatError::BadValue { key, why } if key == "mamba.mixer_rms_eps" && why.contains("falcon-mamba"));
}
