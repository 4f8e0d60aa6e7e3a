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

/// A tiny valid Mamba file (the format tests' builder): f32 small tensors, q8_0
/// matrices (f16 dt_proj), a long string standing in for the embedded tokenizer.
fn tiny_mamba() -> Vec<u8> {
    let cfg = MambaConfig {
        n_layer: 1,
        tie_embeddings: true,
        ..common::tiny_config()
    };
    let mut md = common::mamba_metadata(&cfg);
    let tokenizer = format!("{{\"model\": \"{}\"}}", "x".repeat(500));
    md.set("tokenizer.huggingface.json", Value::String(tokenizer))
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
