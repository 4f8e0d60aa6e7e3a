//! One test per way a conversion must fail: each checks the error variant and that no
//! output (and no temporary file) is left behind.

mod common;

use std::path::PathBuf;

use common::*;
use mamba_convert::{convert, ConvertError, ConvertOptions, Input, Preset};
use mamba_format::QuantType;
use safetensors::Dtype;
use serde_json::Value;

const Q8: Preset = Preset::Uniform(QuantType::Q8_0);

#[test]
fn missing_config_json() {
    let Some((_tmp, dir, out)) = scratch("mamba-tiny-hf") else {
        return;
    };
    std::fs::remove_file(dir.join("config.json")).unwrap();
    let err = fails(&dir, &out);
    assert!(
        matches!(&err, ConvertError::MissingConfig { path } if path.ends_with("config.json")),
        "{err:?}"
    );
}

#[test]
fn input_is_not_a_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out.mbin");
    let err = fails(&tmp.path().join("no-such-model"), &out);
    assert!(
        matches!(err, ConvertError::InputNotADirectory { .. }),
        "{err:?}"
    );
}

#[test]
fn malformed_config_json() {
    let Some((_tmp, dir, out)) = scratch("mamba-tiny-hf") else {
        return;
    };
    std::fs::write(
        dir.join("config.json"),
        "{\"model_type\": \"mamba\", \"hidden_size\": 64,",
    )
    .unwrap();
    let err = fails(&dir, &out);
    assert!(matches!(err, ConvertError::MalformedJson { .. }), "{err:?}");
}

#[test]
fn config_missing_a_key() {
    let Some((_tmp, dir, out)) = scratch("mamba-tiny-hf") else {
        return;
    };
    edit_config(&dir, |c| {
        c.remove("hidden_size");
    });
    let err = fails(&dir, &out);
    assert!(
        matches!(&err, ConvertError::MissingConfigKey { key, .. } if key == "hidden_size"),
        "{err:?}"
    );

    // state-spaces layout: a missing n_layer.
    let Some((_tmp, dir, out)) = scratch("mamba-tiny-ssm") else {
        return;
    };
    edit_config(&dir, |c| {
        c.remove("n_layer");
    });
    let err = fails(&dir, &out);
    assert!(
        matches!(&err, ConvertError::MissingConfigKey { key, .. } if key == "n_layer"),
        "{err:?}"
    );
}

#[test]
fn config_value_of_the_wrong_type() {
    let Some((_tmp, dir, out)) = scratch("mamba-tiny-hf") else {
        return;
    };
    edit_config(&dir, |c| {
        c.insert("state_size".into(), Value::String("sixteen".into()));
    });
    let err = fails(&dir, &out);
    assert!(
        matches!(&err, ConvertError::BadConfigValue { key, .. } if key == "state_size"),
        "{err:?}"
    );
}

#[test]
fn unknown_architecture() {
    for model_type in ["jamba", "bamba", "llama"] {
        let Some((_tmp, dir, out)) = scratch("mamba-tiny-hf") else {
            return;
        };
        edit_config(&dir, |c| {
            c.insert("model_type".into(), Value::String(model_type.into()));
        });
        let err = fails(&dir, &out);
        assert!(
            matches!(&err, ConvertError::UnknownArchitecture { found, supported, .. }
                if found == model_type
                    && ["MambaForCausalLM", "FalconMambaForCausalLM", "Mamba2ForCausalLM"]
                        .iter()
                        .all(|c| supported.contains(c))),
            "{err:?}"
        );
    }
    // A mamba_ssm config asking for a layer that does not exist (yet).
    let Some((_tmp, dir, out)) = scratch("mamba-tiny-ssm") else {
        return;
    };
    edit_config(&dir, |c| {
        c.insert("ssm_cfg".into(), serde_json::json!({"layer": "Mamba3"}));
    });
    let err = fails(&dir, &out);
    assert!(
        matches!(&err, ConvertError::UnknownArchitecture { found, .. } if found.contains("Mamba3")),
        "{err:?}"
    );
}

#[test]
fn missing_tensor() {
    let Some((_tmp, dir, out)) = scratch("mamba-tiny-hf") else {
        return;
    };
    rewrite_safetensors(&dir, |name, t| {
        (name != "backbone.layers.1.mixer.D").then_some(t)
    });
    let err = fails(&dir, &out);
    assert!(
        matches!(&err, ConvertError::MissingTensor { tensor, file } if tensor == "backbone.layers.1.mixer.D" && file.ends_with("model.safetensors")),
        "{err:?}"
    );
}

#[test]
fn untied_config_without_lm_head() {
    let Some((_tmp, dir, out)) = scratch("mamba-tiny-hf") else {
        return;
    };
    edit_config(&dir, |c| {
        c.insert("tie_word_embeddings".into(), Value::Bool(false));
    });
    let err = fails(&dir, &out);
    assert!(
        matches!(&err, ConvertError::MissingTensor { tensor, .. } if tensor == "lm_head.weight"),
        "{err:?}"
    );
}

#[test]
fn shape_disagrees_with_config() {
    let Some((_tmp, dir, out)) = scratch("mamba-tiny-hf") else {
        return;
    };
    edit_config(&dir, |c| {
        c.insert("state_size".into(), Value::from(8));
    });
    let err = fails(&dir, &out);
    // x_proj is [dt_rank + 2 d_state, d_inner] = [4 + 32, 128] on disk, [4 + 16, 128] per config.
    assert!(
        matches!(&err, ConvertError::ShapeMismatch { tensor, found, expected, .. }
            if tensor == "backbone.layers.0.mixer.x_proj.weight" && found == &[36, 128] && expected == &[20, 128]),
        "{err:?}"
    );

    // A state-spaces embedding whose rows are not the padded vocab.
    let Some((_tmp, dir, out)) = scratch("mamba-tiny-ssm") else {
        return;
    };
    edit_config(&dir, |c| {
        c.insert("vocab_size".into(), Value::from(1001)); // pads to 1008
    });
    let err = fails(&dir, &out);
    assert!(
        matches!(&err, ConvertError::ShapeMismatch { tensor, expected, .. }
            if tensor == "backbone.embedding.weight" && expected == &[1008, 64]),
        "{err:?}"
    );
}

#[test]
fn unsupported_dtype() {
    let Some((_tmp, dir, out)) = scratch("mamba-tiny-hf") else {
        return;
    };
    rewrite_safetensors(&dir, |name, (dt, shape, data)| {
        if name != "backbone.layers.0.mixer.D" {
            return Some((dt, shape, data));
        }
        let ints: Vec<u8> = (0..shape[0] as i64).flat_map(|i| i.to_le_bytes()).collect();
        Some((Dtype::I64, shape, ints))
    });
    let err = fails(&dir, &out);
    assert!(
        matches!(&err, ConvertError::UnsupportedDtype { tensor, dtype, .. } if tensor == "backbone.layers.0.mixer.D" && dtype == "I64"),
        "{err:?}"
    );
}

#[test]
fn truncated_safetensors() {
    let Some((_tmp, dir, out)) = scratch("mamba-tiny-hf") else {
        return;
    };
    let path = dir.join("model.safetensors");
    let bytes = std::fs::read(&path).unwrap();
    for keep in [bytes.len() - 1, bytes.len() / 2, 100, 5] {
        std::fs::write(&path, &bytes[..keep]).unwrap();
        let err = fails(&dir, &out);
        assert!(
            matches!(&err, ConvertError::Safetensors { path: p, .. } if p == &path),
            "{keep}: {err:?}"
        );
    }
}

#[test]
fn truncated_or_corrupted_pytorch_bin() {
    let Some((_tmp, dir, out)) = scratch("mamba-tiny-ssm") else {
        return;
    };
    let path = dir.join("pytorch_model.bin");
    let bytes = std::fs::read(&path).unwrap();
    // Truncated: the zip's central directory is gone.
    std::fs::write(&path, &bytes[..bytes.len() * 3 / 5]).unwrap();
    let err = fails(&dir, &out);
    assert!(matches!(err, ConvertError::Torch { .. }), "{err:?}");
    // Corrupted: garbage over the end-of-central-directory record.
    let mut bad = bytes.clone();
    let n = bad.len();
    bad[n - 22..].iter_mut().for_each(|b| *b = 0xA5);
    std::fs::write(&path, &bad).unwrap();
    let err = fails(&dir, &out);
    assert!(matches!(err, ConvertError::Torch { .. }), "{err:?}");
    // Not a zip at all.
    std::fs::write(&path, b"this is not a torch checkpoint").unwrap();
    let err = fails(&dir, &out);
    assert!(matches!(err, ConvertError::Torch { .. }), "{err:?}");
}

#[test]
fn no_weights_file() {
    let Some((_tmp, dir, out)) = scratch("mamba-tiny-hf") else {
        return;
    };
    std::fs::remove_file(dir.join("model.safetensors")).unwrap();
    let err = fails(&dir, &out);
    assert!(
        matches!(err, ConvertError::MissingWeights { .. }),
        "{err:?}"
    );
}

#[test]
fn nan_in_a_weight() {
    let Some((_tmp, dir, out)) = scratch("mamba-tiny-hf") else {
        return;
    };
    rewrite_safetensors(&dir, |name, (dt, shape, mut data)| {
        if name == "backbone.layers.1.mixer.in_proj.weight" {
            data[77 * 4..78 * 4].copy_from_slice(&f32::NAN.to_le_bytes());
        }
        Some((dt, shape, data))
    });
    let err = fails(&dir, &out);
    assert!(
        matches!(&err, ConvertError::NonFinite { tensor, index: 77, value, .. }
            if tensor == "backbone.layers.1.mixer.in_proj.weight" && value.is_nan()),
        "{err:?}"
    );

    // An A_log so large that -exp(A_log) overflows is refused too, under the name of A.
    let Some((_tmp, dir, out)) = scratch("mamba-tiny-hf") else {
        return;
    };
    rewrite_safetensors(&dir, |name, (dt, shape, mut data)| {
        if name == "backbone.layers.0.mixer.A_log" {
            data[..4].copy_from_slice(&100f32.to_le_bytes());
        }
        Some((dt, shape, data))
    });
    let err = fails(&dir, &out);
    assert!(
        matches!(&err, ConvertError::NonFinite { tensor, index: 0, .. } if tensor.starts_with("layers.0.mixer.A")),
        "{err:?}"
    );
}

#[test]
fn value_beyond_f16_range_is_refused_at_f16() {
    let Some((_tmp, dir, out)) = scratch("mamba-tiny-hf") else {
        return;
    };
    rewrite_safetensors(&dir, |name, (dt, shape, mut data)| {
        if name == "backbone.layers.0.mixer.out_proj.weight" {
            data[8..12].copy_from_slice(&1e6f32.to_le_bytes());
        }
        Some((dt, shape, data))
    });
    let err = convert_dir(&dir, &out, Preset::Uniform(QuantType::F16)).unwrap_err();
    assert!(
        matches!(&err, ConvertError::QuantizedNonFinite { tensor, ty: QuantType::F16, index: 2, .. } if tensor == "layers.0.mixer.out_proj.weight"),
        "{err:?}"
    );
    assert_nothing_written(&out);
    // At f32 the same checkpoint is fine.
    convert_dir(&dir, &out, Preset::Uniform(QuantType::F32)).unwrap();
}

#[test]
fn output_exists_without_force() {
    let Some(src) = fixture("mamba-tiny-hf") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out.mbin");
    std::fs::write(&out, b"old contents").unwrap();
    let err = convert_dir(&src, &out, Q8).unwrap_err();
    assert!(
        matches!(&err, ConvertError::OutputExists { path } if path == &out),
        "{err:?}"
    );
    assert_eq!(std::fs::read(&out).unwrap(), b"old contents");
    let names: Vec<_> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names.len(), 1, "{names:?}");
}

#[test]
fn unwritable_output_folder() {
    let Some(src) = fixture("mamba-tiny-hf") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    // A folder that does not exist.
    let out = tmp.path().join("no-such-dir").join("out.mbin");
    let err = convert_dir(&src, &out, Q8).unwrap_err();
    assert!(matches!(err, ConvertError::Write { .. }), "{err:?}");
    assert!(!out.exists());
    // A "folder" that is a regular file (fails even for root).
    let file = tmp.path().join("a-file");
    std::fs::write(&file, b"x").unwrap();
    let out = file.join("out.mbin");
    let err = convert_dir(&src, &out, Q8).unwrap_err();
    assert!(matches!(err, ConvertError::Write { .. }), "{err:?}");
    // A read-only folder (only meaningful when not running as root).
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let ro = tmp.path().join("ro");
        std::fs::create_dir(&ro).unwrap();
        std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o555)).unwrap();
        if std::fs::write(ro.join("probe"), b"").is_ok() {
            eprintln!("note: running as root; read-only folder case skipped");
        } else {
            let out = ro.join("out.mbin");
            let err = convert_dir(&src, &out, Q8).unwrap_err();
            assert!(matches!(err, ConvertError::Write { .. }), "{err:?}");
            assert_nothing_written(&out);
        }
        std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    assert_nothing_written(&tmp.path().join("out.mbin"));
}

#[test]
fn bad_tokenizer() {
    let Some(src) = fixture("mamba-tiny-hf") else {
        return;
    };
    let Some(shakespeare) = fixture("mamba-shakespeare") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out.mbin");
    let run = |tok: PathBuf| {
        let o = ConvertOptions {
            input: Input::Dir(src.clone()),
            output: out.clone(),
            preset: Q8,
            force: false,
            tokenizer: Some(tok),
            progress: false,
        };
        let err = convert(&o).unwrap_err();
        assert_nothing_written(&out);
        err
    };
    // Valid JSON, but not a tokenizer.
    let not_tok = tmp.path().join("not-a-tokenizer.json");
    std::fs::write(&not_tok, r#"{"vocab": {}}"#).unwrap();
    assert!(matches!(run(not_tok), ConvertError::BadTokenizer { .. }));
    // Not JSON.
    let garbage = tmp.path().join("garbage.json");
    std::fs::write(&garbage, "{{{").unwrap();
    assert!(matches!(run(garbage), ConvertError::MalformedJson { .. }));
    // A real tokenizer whose ids (up to 50276) do not fit the tiny model's 1000 rows.
    assert!(matches!(
        run(shakespeare.join("tokenizer.json")),
        ConvertError::BadTokenizer { .. }
    ));
    // Missing file.
    assert!(matches!(
        run(tmp.path().join("nope.json")),
        ConvertError::Read { .. }
    ));
}

#[test]
fn bad_shard_index() {
    let Some((_tmp, dir, out)) = scratch("mamba-tiny-sharded-bf16") else {
        return;
    };
    let index = dir.join("model.safetensors.index.json");
    let text = std::fs::read_to_string(&index).unwrap();
    std::fs::write(
        &index,
        text.replacen(
            "model-00002-of-00003.safetensors",
            "../escape.safetensors",
            1,
        ),
    )
    .unwrap();
    let err = fails(&dir, &out);
    assert!(matches!(err, ConvertError::BadShardIndex { .. }), "{err:?}");
    // A shard that the index names but that is missing.
    std::fs::write(&index, &text).unwrap();
    std::fs::remove_file(dir.join("model-00003-of-00003.safetensors")).unwrap();
    let err = fails(&dir, &out);
    assert!(matches!(err, ConvertError::Read { .. }), "{err:?}");
}
