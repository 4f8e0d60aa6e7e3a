//! Conversions of the shared fixtures: every type and preset parses and validates,
//! f32 output equals the source exactly, HF and state-spaces give the same tensors,
//! reported errors are right, fallbacks happen where they must.

mod common;

use common::*;
use mamba_convert::preset::use_more_bits;
use mamba_convert::{convert, ConvertOptions, Input, Preset};
use mamba_format::{MbinFile, QuantType, Value};

#[test]
fn every_input_converts_at_every_type_and_preset() {
    let Some(_) = shared() else { return };
    let tmp = tempfile::tempdir().unwrap();
    for input in ALL_INPUTS {
        let dir = fixture(input).unwrap();
        for preset in Preset::all() {
            let out = tmp.path().join(format!("{input}.{preset}.mbin"));
            let summary = convert_dir(&dir, &out, preset)
                .unwrap_or_else(|e| panic!("{input} at {preset}: {e}"));
            let bytes = read_valid(&out);
            let file = MbinFile::parse(&bytes).unwrap();
            assert_eq!(summary.file_bytes, bytes.len() as u64);
            assert_eq!(summary.tensors.len(), file.tensors.len());
            for (r, t) in summary.tensors.iter().zip(&file.tensors) {
                assert_eq!(
                    (r.name.as_str(), r.chosen, r.bytes),
                    (t.name.as_str(), t.ty, t.size),
                    "{input} {preset}"
                );
                assert!(
                    r.max_abs_err.is_finite() && r.rms_err <= r.max_abs_err,
                    "{input} {preset} {}",
                    r.name
                );
            }
            assert_eq!(
                file.metadata.require_str("general.quantization").unwrap(),
                preset.name()
            );
            assert_eq!(
                file.metadata.get("general.synthetic"),
                Some(&Value::Bool(false))
            );
            assert!(file
                .metadata
                .require_str("general.converter")
                .unwrap()
                .starts_with("mamba-convert "));
            std::fs::remove_file(&out).unwrap();
        }
    }
}

#[test]
fn f32_conversion_holds_the_source_values_exactly() {
    let Some(_) = shared() else { return };
    let tmp = tempfile::tempdir().unwrap();
    for input in [
        "mamba-tiny-hf",
        "mamba-tiny-sharded-bf16",
        "mamba-shakespeare",
        "mamba2-tiny-hf",
        "falcon-mamba-tiny-hf",
        "mamba2-shakespeare",
    ] {
        let dir = fixture(input).unwrap();
        let out = tmp.path().join(format!("{input}.mbin"));
        let summary = convert_dir(&dir, &out, Preset::Uniform(QuantType::F32)).unwrap();
        assert!(summary
            .tensors
            .iter()
            .all(|t| t.chosen == QuantType::F32 && t.max_abs_err == 0.0));
        let source = load_hf_tensors(&dir);
        let bytes = read_valid(&out);
        let file = MbinFile::parse(&bytes).unwrap();
        for t in &file.tensors {
            let (src_name, is_a) = hf_name(&t.name);
            let (dtype, shape, data) = &source[&src_name];
            let view = safetensors::tensor::TensorView::new(*dtype, shape.clone(), data).unwrap();
            let mut expected = widen(&view);
            if is_a {
                // A = -exp(A_log), in f32 (SPEC MUST-A11).
                expected.iter_mut().for_each(|a| *a = -(a.exp()));
            }
            let got = f32_values(file.tensor_data(t));
            assert_eq!(got.len(), expected.len(), "{input} {}", t.name);
            let mismatch = got
                .iter()
                .zip(&expected)
                .position(|(g, e)| g.to_bits() != e.to_bits());
            assert_eq!(
                mismatch, None,
                "{input} {}: first differing element",
                t.name
            );
        }
    }
}

#[test]
fn bf16_shards_are_widened_exactly_and_round_trip_at_bf16() {
    let Some(_) = shared() else { return };
    let dir = fixture("mamba-tiny-sharded-bf16").unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("bf16.mbin");
    let summary = convert_dir(&dir, &out, Preset::Uniform(QuantType::BF16)).unwrap();
    let source = load_hf_tensors(&dir);
    let bytes = read_valid(&out);
    let file = MbinFile::parse(&bytes).unwrap();
    let mut n_matrices = 0;
    for t in file.tensors.iter().filter(|t| t.ty == QuantType::BF16) {
        // bf16 -> f32 -> bf16 is the identity: the stored bytes are the source bytes.
        let (src_name, _) = hf_name(&t.name);
        assert_eq!(file.tensor_data(t), &source[&src_name].2[..], "{}", t.name);
        n_matrices += 1;
    }
    assert_eq!(n_matrices, 1 + 3 * 4, "embedding + 4 matrices per layer");
    assert!(summary.tensors.iter().all(|t| t.max_abs_err == 0.0));
}

#[test]
fn hf_and_state_spaces_give_identical_tensors() {
    let Some(_) = shared() else { return };
    let tmp = tempfile::tempdir().unwrap();
    for preset in [
        Preset::Uniform(QuantType::F32),
        Preset::Q4KM,
        Preset::Uniform(QuantType::Q8_0),
    ] {
        let hf_out = tmp.path().join(format!("hf.{preset}.mbin"));
        let ssm_out = tmp.path().join(format!("ssm.{preset}.mbin"));
        let hf = convert_dir(&fixture("mamba-tiny-hf").unwrap(), &hf_out, preset).unwrap();
        let ssm = convert_dir(&fixture("mamba-tiny-ssm").unwrap(), &ssm_out, preset).unwrap();
        assert_eq!(hf.source_format, "huggingface-safetensors");
        assert_eq!(ssm.source_format, "mamba_ssm-pytorch");
        // The ssm state dict's lm_head shares the embedding's storage: no warning.
        assert!(
            !ssm.warnings.iter().any(|w| w.contains("lm_head")),
            "{:?}",
            ssm.warnings
        );
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
        // Only the metadata differs, and the model hyper-parameters do not.
        for key in [
            "mamba.d_model",
            "mamba.vocab_size",
            "mamba.dt_rank",
            "mamba.d_inner",
        ] {
            assert_eq!(fa.metadata.get(key), fb.metadata.get(key), "{key}");
        }
        assert_ne!(
            fa.metadata.get("general.source_format"),
            fb.metadata.get("general.source_format")
        );
    }
}

#[test]
fn reported_errors_match_the_file_and_rank_the_types() {
    let Some(_) = shared() else { return };
    let dir = fixture("mamba-shakespeare").unwrap();
    let source = load_hf_tensors(&dir);
    let tmp = tempfile::tempdir().unwrap();
    let mut in_proj_rms = Vec::new();
    for ty in [QuantType::Q8_0, QuantType::Q4_0] {
        let out = tmp.path().join(format!("{ty}.mbin"));
        let summary = convert_dir(&dir, &out, Preset::Uniform(ty)).unwrap();
        let bytes = read_valid(&out);
        let file = MbinFile::parse(&bytes).unwrap();
        // Recompute the error of one tensor from the file and compare with the report.
        let name = "layers.1.mixer.in_proj.weight";
        let t = file.tensor(name).unwrap();
        let mut deq = vec![0f32; t.n_elements() as usize];
        ty.dequantize_row(file.tensor_data(t), &mut deq);
        let (_, shape, data) = &source[&hf_name(name).0];
        let view =
            safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape.clone(), data)
                .unwrap();
        let src = widen(&view);
        let max = deq
            .iter()
            .zip(&src)
            .map(|(d, s)| (d - s).abs())
            .fold(0f32, f32::max);
        let rms = (deq
            .iter()
            .zip(&src)
            .map(|(d, s)| ((d - s) as f64).powi(2))
            .sum::<f64>()
            / src.len() as f64)
            .sqrt();
        let r = summary.tensors.iter().find(|r| r.name == name).unwrap();
        assert_eq!(r.max_abs_err, max);
        assert!(
            (r.rms_err as f64 - rms).abs() <= 1e-6 * rms,
            "{} vs {rms}",
            r.rms_err
        );
        assert!(r.rms_err > 0.0);
        in_proj_rms.push(r.rms_err);
        let table = summary.table(None);
        assert!(
            table.contains("in_proj") && table.contains(ty.name()),
            "{table}"
        );
    }
    assert!(
        in_proj_rms[0] < in_proj_rms[1] / 4.0,
        "q8_0 {} vs q4_0 {}",
        in_proj_rms[0],
        in_proj_rms[1]
    );
}

#[test]
fn dt_proj_falls_back_and_is_reported() {
    let Some(_) = shared() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("q4_k.mbin");
    let summary = convert_dir(
        &fixture("mamba-tiny-hf").unwrap(),
        &out,
        Preset::Uniform(QuantType::Q4_K),
    )
    .unwrap();
    let bytes = read_valid(&out);
    let file = MbinFile::parse(&bytes).unwrap();
    for layer in 0..2 {
        // dt_rank 4: neither 256 nor 32 divides it.
        let name = format!("layers.{layer}.mixer.dt_proj.weight");
        let r = summary.tensors.iter().find(|r| r.name == name).unwrap();
        assert_eq!(
            (r.requested, r.chosen, r.fallback),
            (QuantType::Q4_K, QuantType::F16, true)
        );
        assert_eq!(file.tensor(&name).unwrap().ty, QuantType::F16);
        // d_inner 128: 32 divides it, 256 does not -> q5_0.
        let name = format!("layers.{layer}.mixer.x_proj.weight");
        let r = summary.tensors.iter().find(|r| r.name == name).unwrap();
        assert_eq!((r.chosen, r.fallback), (QuantType::Q5_0, true));
    }
    assert!(
        summary
            .warnings
            .iter()
            .any(|w| w.contains("dt_proj") && w.contains("f16")),
        "{:?}",
        summary.warnings
    );
    assert!(summary.table(None).contains("q4_k→f16"));
    // Shakespeare (d_model 256) needs no fallback except dt_proj (dt_rank 16).
    let out = tmp.path().join("shakespeare.q4_k.mbin");
    let summary = convert_dir(
        &fixture("mamba-shakespeare").unwrap(),
        &out,
        Preset::Uniform(QuantType::Q4_K),
    )
    .unwrap();
    let fallbacks: Vec<&str> = summary.fallbacks().map(|r| r.name.as_str()).collect();
    assert_eq!(fallbacks.len(), 4);
    assert!(fallbacks.iter().all(|n| n.ends_with("dt_proj.weight")));
}

#[test]
fn q4_k_m_follows_use_more_bits() {
    let Some(_) = shared() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("q4_k_m.mbin");
    let summary = convert_dir(&fixture("mamba-shakespeare").unwrap(), &out, Preset::Q4KM).unwrap();
    let ty = |name: &str| {
        summary
            .tensors
            .iter()
            .find(|r| r.name == name)
            .unwrap()
            .chosen
    };
    assert_eq!(ty("embeddings.weight"), QuantType::Q6_K);
    for i in 0..4 {
        let want = if use_more_bits(i, 4) {
            QuantType::Q6_K
        } else {
            QuantType::Q4_K
        };
        assert_eq!(
            ty(&format!("layers.{i}.mixer.out_proj.weight")),
            want,
            "layer {i}"
        );
        assert_eq!(
            ty(&format!("layers.{i}.mixer.in_proj.weight")),
            QuantType::Q4_K
        );
        assert_eq!(ty(&format!("layers.{i}.norm.weight")), QuantType::F32);
        assert_eq!(ty(&format!("layers.{i}.mixer.A")), QuantType::F32);
    }
    assert_eq!(ty("norm_f.weight"), QuantType::F32);
}

#[test]
fn tokenizer_and_token_ids_are_embedded() {
    let Some(_) = shared() else { return };
    let tmp = tempfile::tempdir().unwrap();
    // Shakespeare ships a tokenizer.json; ids come from config.json.
    let dir = fixture("mamba-shakespeare").unwrap();
    let out = tmp.path().join("sh.mbin");
    let bytes = convert_embedding_tokenizer(&dir, &out);
    let file = MbinFile::parse(&bytes).unwrap();
    for key in ["tokenizer.bos_id", "tokenizer.eos_id", "tokenizer.pad_id"] {
        assert_eq!(file.metadata.get(key), Some(&Value::U32(0)), "{key}");
    }
    assert_eq!(
        file.metadata.require_str("general.name").unwrap(),
        "mamba-shakespeare"
    );
    assert_eq!(
        file.metadata.require_u64("mamba.vocab_size").unwrap(),
        50280
    );

    // A state-spaces checkpoint takes its ids from the tokenizer's <|endoftext|>.
    let tok_path = tmp.path().join("tokenizer.json");
    std::fs::write(
        &tok_path,
        r#"{"model": {"type": "BPE", "vocab": {"a": 1, "b": 2}}, "added_tokens": [{"id": 7, "content": "<|endoftext|>"}]}"#,
    )
    .unwrap();
    let out = tmp.path().join("ssm.mbin");
    let o = ConvertOptions {
        input: Input::Dir(fixture("mamba-tiny-ssm").unwrap()),
        output: out.clone(),
        preset: Preset::Uniform(QuantType::F16),
        force: false,
        tokenizer: Some(tok_path),
        progress: false,
    };
    convert(&o).unwrap();
    let bytes = read_valid(&out);
    let file = MbinFile::parse(&bytes).unwrap();
    for key in ["tokenizer.bos_id", "tokenizer.eos_id", "tokenizer.pad_id"] {
        assert_eq!(file.metadata.get(key), Some(&Value::U32(7)), "{key}");
    }

    // Without a tokenizer: converted anyway, with a warning and no tokenizer key.
    let out = tmp.path().join("ssm-no-tok.mbin");
    let summary = convert_dir(
        &fixture("mamba-tiny-ssm").unwrap(),
        &out,
        Preset::Uniform(QuantType::F16),
    )
    .unwrap();
    assert!(summary.warnings.iter().any(|w| w.contains("tokenizer")));
    let bytes = read_valid(&out);
    let file = MbinFile::parse(&bytes).unwrap();
    assert!(file.metadata.get("tokenizer.huggingface.json").is_none());
    assert!(file.metadata.get("tokenizer.bos_id").is_none());
}

#[test]
fn force_overwrites() {
    let Some(_) = shared() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("m.mbin");
    std::fs::write(&out, b"old").unwrap();
    let mut o = opts(
        Input::Dir(fixture("mamba-tiny-hf").unwrap()),
        &out,
        Preset::Uniform(QuantType::Q8_0),
    );
    o.force = true;
    convert(&o).unwrap();
    read_valid(&out);
}

/// Copies a fixture into a fresh temporary directory for editing.
fn scratch(name: &str) -> Option<(tempfile::TempDir, std::path::PathBuf)> {
    let src = fixture(name)?;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join(name);
    copy_dir(&src, &dir);
    Some((tmp, dir))
}

#[test]
fn f16_source_is_widened_exactly() {
    let Some((tmp, dir)) = scratch("mamba-tiny-hf") else {
        return;
    };
    rewrite_safetensors(&dir, |_, (_, shape, data)| {
        let halves: Vec<u8> = f32_values(&data)
            .iter()
            .flat_map(|&x| half::f16::from_f32(x).to_le_bytes())
            .collect();
        Some((safetensors::Dtype::F16, shape, halves))
    });
    let out = tmp.path().join("f16.mbin");
    convert_dir(&dir, &out, Preset::Uniform(QuantType::F32)).unwrap();
    let source = load_hf_tensors(&dir);
    let bytes = read_valid(&out);
    let file = MbinFile::parse(&bytes).unwrap();
    let t = file.tensor("layers.1.mixer.x_proj.weight").unwrap();
    let (dtype, shape, data) = &source["backbone.layers.1.mixer.x_proj.weight"];
    let expected =
        widen(&safetensors::tensor::TensorView::new(*dtype, shape.clone(), data).unwrap());
    assert_eq!(f32_values(file.tensor_data(t)), expected);
}

#[test]
fn untied_model_writes_lm_head() {
    let Some((tmp, dir)) = scratch("mamba-tiny-hf") else {
        return;
    };
    edit_config(&dir, |c| {
        c.insert("tie_word_embeddings".into(), serde_json::Value::Bool(false));
    });
    // Add an lm_head: the embedding scaled by 2.
    let head = {
        let src = load_hf_tensors(&dir);
        let (dt, shape, data) = src["backbone.embeddings.weight"].clone();
        let doubled: Vec<u8> = f32_values(&data)
            .iter()
            .flat_map(|x| (2.0 * x).to_le_bytes())
            .collect();
        (dt, shape, doubled)
    };
    add_tensor(&dir, "lm_head.weight", head.clone());
    let out = tmp.path().join("untied.mbin");
    let summary = convert_dir(&dir, &out, Preset::Q4KM).unwrap();
    let r = summary
        .tensors
        .iter()
        .find(|r| r.name == "lm_head.weight")
        .unwrap();
    // Rows of 64: q6_k falls back to q8_0.
    assert_eq!((r.requested, r.chosen), (QuantType::Q6_K, QuantType::Q8_0));
    let bytes = read_valid(&out);
    let file = MbinFile::parse(&bytes).unwrap();
    assert_eq!(
        file.metadata.get("mamba.tie_embeddings"),
        Some(&Value::Bool(false))
    );
    let out32 = tmp.path().join("untied32.mbin");
    convert_dir(&dir, &out32, Preset::Uniform(QuantType::F32)).unwrap();
    let bytes = read_valid(&out32);
    let file = MbinFile::parse(&bytes).unwrap();
    assert_eq!(
        file.tensor_data(file.tensor("lm_head.weight").unwrap()),
        &head.2[..]
    );
}

#[test]
fn tied_lm_head_that_differs_is_ignored_with_a_warning() {
    let Some((tmp, dir)) = scratch("mamba-tiny-hf") else {
        return;
    };
    let emb = load_hf_tensors(&dir)["backbone.embeddings.weight"].clone();
    // Same values: silently ignored.
    add_tensor(&dir, "lm_head.weight", emb.clone());
    let summary = convert_dir(
        &dir,
        &tmp.path().join("same.mbin"),
        Preset::Uniform(QuantType::F16),
    )
    .unwrap();
    assert!(
        !summary.warnings.iter().any(|w| w.contains("lm_head")),
        "{:?}",
        summary.warnings
    );
    // Different values: ignored, with a warning.
    let mut other = emb;
    other.2[0] ^= 1;
    add_tensor(&dir, "lm_head.weight", other);
    let out = tmp.path().join("diff.mbin");
    let summary = convert_dir(&dir, &out, Preset::Uniform(QuantType::F16)).unwrap();
    assert!(
        summary
            .warnings
            .iter()
            .any(|w| w.contains("lm_head.weight") && w.contains("differs")),
        "{:?}",
        summary.warnings
    );
    let bytes = read_valid(&out);
    assert!(MbinFile::parse(&bytes)
        .unwrap()
        .tensor("lm_head.weight")
        .is_none());
}

/// Adds (or replaces) one tensor in `<dir>/model.safetensors`.
fn add_tensor(dir: &std::path::Path, name: &str, t: Owned) {
    rewrite_safetensors_adding(
        dir,
        |n, old| (n != name).then_some(old),
        vec![(name.to_string(), t)],
    );
}
