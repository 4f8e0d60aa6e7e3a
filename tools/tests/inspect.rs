//! `mamba-inspect` run as a process on files written to a temporary directory.

#[path = "../../format/tests/common/mod.rs"]
mod common;

use mamba_format::{write_to_vec, MambaConfig, MbinFile, Metadata, QuantType, Value};
use std::path::Path;
use std::process::{Command, Output};

fn inspect(path: &Path, flags: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mamba-inspect"))
        .arg(path)
        .args(flags)
        .output()
        .unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8(o.stderr.clone()).unwrap()
}

/// A word-level `tokenizer.json` whose ids are `0..=max_id`, with one 500-byte token
/// so that the string is long.
fn word_tokenizer(max_id: u32) -> String {
    let mut vocab = serde_json::Map::new();
    vocab.insert("<unk>".into(), 0.into());
    vocab.insert("x".repeat(500), 1.into());
    for id in 2..=max_id {
        vocab.insert(format!("w{id}"), id.into());
    }
    serde_json::json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": [],
        "normalizer": null,
        "pre_tokenizer": {"type": "Whitespace"},
        "post_processor": null,
        "decoder": null,
        "model": {"type": "WordLevel", "vocab": vocab, "unk_token": "<unk>"}
    })
    .to_string()
}

/// A tiny valid Mamba file (the format tests' builder): f32 small tensors, q8_0
/// matrices (f16 dt_proj), an embedded word-level tokenizer over the whole
/// vocabulary.
fn tiny_mamba() -> Vec<u8> {
    tiny_mamba_with_tokenizer(&word_tokenizer(7))
}

fn tiny_mamba_with_tokenizer(tokenizer: &str) -> Vec<u8> {
    let cfg = MambaConfig {
        n_layer: 1,
        tie_embeddings: true,
        ..common::tiny_config()
    };
    let mut md = common::mamba_metadata(&cfg);
    md.set(
        "tokenizer.huggingface.json",
        Value::String(tokenizer.into()),
    )
    .unwrap();
    common::mamba_file_with(&cfg, &md, |name| {
        if name.contains("dt_proj") {
            QuantType::F16
        } else {
            QuantType::Q8_0
        }
    })
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

#[test]
fn good_file_lists_tensors_and_exits_0() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "m.mbin", &tiny_mamba());
    for flags in [&[][..], &["--verify"]] {
        let o = inspect(&p, flags);
        assert!(o.status.success(), "{flags:?}: {}", stderr(&o));
        let out = stdout(&o);
        for name in [
            "embeddings.weight",
            "layers.0.mixer.in_proj.weight",
            "layers.0.mixer.A",
            "norm_f.weight",
        ] {
            assert!(out.contains(name), "{name} missing from\n{out}");
        }
        assert!(out.contains("q8_0") && out.contains("8.5000"), "{out}");
        // The tokenizer string is shown by size, not printed.
        assert!(!out.contains("xxxxxxxx"), "{out}");
        assert!(stderr(&o).is_empty());
    }
    assert!(stdout(&inspect(&p, &["--verify"])).contains("d_model=32"));
}

#[test]
fn json_is_one_object_with_the_same_content() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = tiny_mamba();
    let p = write(dir.path(), "m.mbin", &bytes);
    let o = inspect(&p, &["--json", "--verify"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let f = MbinFile::parse(&bytes).unwrap();
    assert_eq!(v["header"]["file_size"], bytes.len() as u64);
    assert_eq!(v["header"]["n_tensors"], f.tensors.len() as u64);
    let tensors = v["tensors"].as_array().unwrap();
    assert_eq!(tensors.len(), f.tensors.len());
    assert_eq!(tensors[0]["name"], "embeddings.weight");
    assert_eq!(tensors[0]["type"], "q8_0");
    assert_eq!(tensors[0]["shape"], serde_json::json!([8, 32]));
    let params: u64 = f.tensors.iter().map(|t| t.n_elements()).sum();
    assert_eq!(v["totals"]["parameters"], params);
    let tok = v["metadata"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["key"] == "tokenizer.huggingface.json")
        .unwrap();
    assert!(tok.get("value").is_none());
    assert!(tok["bytes"].as_u64().unwrap() > 500);
    assert_eq!(v["verify"]["ok"], true);
    assert_eq!(v["verify"]["config"]["d_model"], 32);
    // Without --verify there is no verification result.
    let v: serde_json::Value = serde_json::from_slice(&inspect(&p, &["--json"]).stdout).unwrap();
    assert!(v["verify"].is_null());
}

#[test]
fn flipped_tensor_byte_fails_verify_and_names_the_tensor() {
    let dir = tempfile::tempdir().unwrap();
    let mut bytes = tiny_mamba();
    let f = MbinFile::parse(&bytes).unwrap();
    let t = f.tensor("layers.0.mixer.x_proj.weight").unwrap();
    let at = f.tensor_file_offset(t) as usize + 3;
    bytes[at] ^= 0x04;
    let p = write(dir.path(), "m.mbin", &bytes);
    // Opening does not read tensor data: fine without --verify.
    assert!(inspect(&p, &[]).status.success());
    for flags in [&["--verify"][..], &["--verify", "--json"]] {
        let o = inspect(&p, flags);
        assert_eq!(o.status.code(), Some(1), "{flags:?}");
        let err = stderr(&o);
        assert!(
            err.starts_with("error: ") && err.trim_end().lines().count() == 1,
            "{err}"
        );
        assert!(err.contains("layers.0.mixer.x_proj.weight"), "{err}");
        assert!(stdout(&o).contains("layers.0.mixer.x_proj.weight"));
    }
    let v: serde_json::Value =
        serde_json::from_slice(&inspect(&p, &["--verify", "--json"]).stdout).unwrap();
    assert_eq!(
        v["verify"]["failed_tensors"],
        serde_json::json!(["layers.0.mixer.x_proj.weight"])
    );
}

#[test]
fn architecture_problem_fails_verify() {
    let dir = tempfile::tempdir().unwrap();
    let mut md = Metadata::new();
    md.set("general.architecture", Value::String("mamba".into()))
        .unwrap();
    let p = write(dir.path(), "m.mbin", &write_to_vec(&md, &[]).unwrap());
    assert!(inspect(&p, &[]).status.success());
    let o = inspect(&p, &["--verify"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("mamba.d_model"), "{}", stderr(&o));
}

#[test]
fn truncated_and_bad_files_fail_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = tiny_mamba();
    let cases = [
        ("truncated.mbin", bytes[..bytes.len() - 1].to_vec()),
        ("header_only.mbin", bytes[..100].to_vec()),
        ("empty.mbin", vec![]),
        ("text.mbin", b"not a model\n".to_vec()),
    ];
    for (name, b) in cases {
        let p = write(dir.path(), name, &b);
        for flags in [&[][..], &["--verify", "--json"]] {
            let o = inspect(&p, flags);
            assert_eq!(o.status.code(), Some(1), "{name}");
            let err = stderr(&o);
            assert!(
                err.starts_with("error: ") && err.trim_end().lines().count() == 1,
                "{name}: {err}"
            );
            assert!(!err.contains("panicked"), "{err}");
            assert!(o.stdout.is_empty(), "{name}");
        }
    }
    let o = inspect(&dir.path().join("missing.mbin"), &[]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).starts_with("error: "));
}

/// The tiny model with all matrices f32 and zero weights, except `poisoned`, whose
/// data is `bytes` repeated (a NaN, an infinity, a q8_0 block with a NaN scale).
fn tiny_with_poison(poisoned: &str, ty: QuantType, unit: &[u8]) -> Vec<u8> {
    let cfg = MambaConfig {
        n_layer: 2,
        ..common::tiny_config()
    };
    let md = common::mamba_metadata(&cfg);
    let specs = common::mamba_specs(
        &cfg,
        |name| if name == poisoned { ty } else { QuantType::F32 },
    );
    let data: Vec<Vec<u8>> = specs
        .iter()
        .map(|s| {
            let n = s.ty.bytes_for(s.shape.iter().product()).unwrap() as usize;
            if s.name == poisoned {
                unit.iter().copied().cycle().take(n).collect()
            } else {
                vec![0u8; n]
            }
        })
        .collect();
    let pairs: Vec<(mamba_format::TensorSpec, &[u8])> = specs
        .iter()
        .cloned()
        .zip(data.iter().map(|d| d.as_slice()))
        .collect();
    write_to_vec(&md, &pairs).unwrap()
}

/// Intact checksums do not vouch for the values: NaN and infinite weights, and a
/// block whose scale is NaN, fail --verify naming the tensor.
#[test]
fn non_finite_weights_fail_verify_and_name_the_tensor() {
    let dir = tempfile::tempdir().unwrap();
    let mut q8_nan_scale = vec![0u8; 34];
    q8_nan_scale[..2].copy_from_slice(&0x7e00u16.to_le_bytes());
    q8_nan_scale[2] = 1;
    let cases: [(&str, QuantType, Vec<u8>); 4] = [
        (
            "layers.1.mixer.out_proj.weight",
            QuantType::F32,
            f32::NAN.to_le_bytes().to_vec(),
        ),
        (
            "layers.0.mixer.A",
            QuantType::F32,
            f32::NEG_INFINITY.to_le_bytes().to_vec(),
        ),
        (
            "lm_head.weight",
            QuantType::F16,
            0x7c00u16.to_le_bytes().to_vec(),
        ),
        (
            "layers.0.mixer.in_proj.weight",
            QuantType::Q8_0,
            q8_nan_scale,
        ),
    ];
    for (name, ty, unit) in cases {
        let p = write(dir.path(), "m.mbin", &tiny_with_poison(name, ty, &unit));
        let o = inspect(&p, &["--verify"]);
        assert_eq!(o.status.code(), Some(1), "{name}: {}", stdout(&o));
        let err = stderr(&o);
        assert!(
            err.contains(&format!("tensor `{name}`: non-finite value")),
            "{err}"
        );
        assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    }
    // The same file with finite values passes.
    let p = write(
        dir.path(),
        "m.mbin",
        &tiny_with_poison("lm_head.weight", QuantType::F32, &1f32.to_le_bytes()),
    );
    let o = inspect(&p, &["--verify"]);
    assert!(o.status.success(), "{}", stderr(&o));
}

/// --verify loads the embedded tokenizer as the runtime does: text that is not a
/// tokenizer, and a tokenizer that produces ids the embedding lacks, fail.
#[test]
fn bad_embedded_tokenizer_fails_verify() {
    let dir = tempfile::tempdir().unwrap();
    let not_json = format!("{{\"model\": \"{}\"", "x".repeat(100));
    let not_a_tokenizer = "{\"model\": 3}".to_string();
    for (tok, want) in [
        (not_json, "tokenizer"),
        (not_a_tokenizer, "tokenizer"),
        (
            word_tokenizer(8),
            "token id 8 is not below the model's vocab_size 8",
        ),
    ] {
        let p = write(dir.path(), "m.mbin", &tiny_mamba_with_tokenizer(&tok));
        assert!(inspect(&p, &[]).status.success());
        let o = inspect(&p, &["--verify"]);
        assert_eq!(o.status.code(), Some(1), "{tok}");
        let err = stderr(&o);
        assert!(err.contains(want), "{err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    }
}

/// A tiny Mamba-2 file of zeros (finite), every matrix f32.
fn tiny_mamba2() -> Vec<u8> {
    use mamba_format::{Mamba2Config, ModelConfig, TensorSpec};
    let cfg = ModelConfig::Mamba2(Mamba2Config {
        d_model: 32,
        n_layer: 1,
        d_state: 4,
        d_conv: 4,
        n_heads: 4,
        head_dim: 8,
        n_groups: 2,
        chunk_size: 8,
        vocab_size: 8,
        rms_norm_eps: 1e-5,
        norm_eps: 1e-5,
        norm_before_gate: false,
        dt_min: 0.0,
        dt_max: f64::INFINITY,
        tie_embeddings: true,
        conv_bias: true,
        proj_bias: false,
    });
    let mut md = Metadata::new();
    cfg.to_metadata(&mut md).unwrap();
    let specs: Vec<TensorSpec> = cfg
        .tensor_defs()
        .into_iter()
        .map(|d| TensorSpec::new(d.name, QuantType::F32, &d.shape))
        .collect();
    common::zero_file(&md, &specs)
}

#[test]
fn a_mamba2_file_shows_its_architecture_and_keys() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "m2.mbin", &tiny_mamba2());
    let o = inspect(&p, &["--verify"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    for want in [
        "\"mamba2\"",
        "mamba2.n_groups",
        "layers.0.mixer.dt_bias",
        "architecture=\"mamba2\"",
    ] {
        assert!(out.contains(want), "{want} missing from\n{out}");
    }
    // +∞ is shown bare in the text report, as a string only in JSON.
    assert!(out.contains("f64     inf"), "{out}");
    let o = inspect(&p, &["--verify", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let c = &v["verify"]["config"];
    assert_eq!(c["architecture"], "mamba2", "{c}");
    assert_eq!(c["n_heads"], 4);
    assert_eq!(c["dt_max"], "inf");
}

/// A chat template is summarized (length and first non-blank line, escaped), never
/// printed whole, in text and JSON; a file without one says so.
#[test]
fn chat_template_is_shown_by_length_and_first_line() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = MambaConfig {
        n_layer: 1,
        tie_embeddings: true,
        ..common::tiny_config()
    };
    let template = "\n{%- for message in messages %}\u{1b}[2J\n{{ message['content'] }}\
                    SECOND_LINE_MARKER\n{%- endfor %}";
    let mut md = common::mamba_metadata(&cfg);
    md.set("tokenizer.chat_template", Value::String(template.into()))
        .unwrap();
    let with = write(
        dir.path(),
        "chat.mbin",
        &common::mamba_file_with(&cfg, &md, |_| QuantType::F32),
    );
    let o = inspect(&with, &["--verify"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    let want = format!(
        "chat template\n  {} bytes, first line \"{{%- for message in messages %}}\\u001b[2J\"",
        template.len()
    );
    assert!(out.contains(&want), "{want} missing from\n{out}");
    assert!(!out.contains("SECOND_LINE_MARKER"), "{out}");
    assert!(
        !out.contains('\u{1b}'),
        "a control character reached the text"
    );

    let o = inspect(&with, &["--json"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["chat_template"]["bytes"], template.len() as u64);
    assert_eq!(
        v["chat_template"]["first_line"],
        "{%- for message in messages %}\u{1b}[2J"
    );
    let entry = v["metadata"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["key"] == "tokenizer.chat_template")
        .unwrap();
    assert!(entry.get("value").is_none(), "{entry}");

    // A long first line is cut at MAX_SHOWN_STRING characters.
    let long = format!("{}\n", "é".repeat(200));
    md.set("tokenizer.chat_template", Value::String(long.clone()))
        .unwrap();
    let p = write(
        dir.path(),
        "long.mbin",
        &common::mamba_file_with(&cfg, &md, |_| QuantType::F32),
    );
    let v: serde_json::Value = serde_json::from_slice(&inspect(&p, &["--json"]).stdout).unwrap();
    let first = v["chat_template"]["first_line"].as_str().unwrap();
    assert_eq!(first, format!("{}…", "é".repeat(80)));

    let without = write(dir.path(), "plain.mbin", &tiny_mamba());
    let out = stdout(&inspect(&without, &[]));
    assert!(out.contains("chat template\n  none\n"), "{out}");
    let v: serde_json::Value =
        serde_json::from_slice(&inspect(&without, &["--json"]).stdout).unwrap();
    assert!(v["chat_template"].is_null());
}
