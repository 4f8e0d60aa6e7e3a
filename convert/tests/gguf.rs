//! GGUF import: llama.cpp's own files of mamba-shakespeare (f16, q8_0, q4_0, q4_k_m)
//! and of the Mamba-2 one (q8_0) convert with every block kept as stored, to the
//! same tensors as the Hugging Face conversion, with a tokenizer that encodes like
//! the model's own; and bad GGUF files are refused with the reason, leaving nothing.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{assert_nothing_written, convert_dir, fixture, opts, read_valid, run_convert};
use mamba_convert::{convert, dry_run, ConvertError, Input, Preset};
use mamba_format::gguf::{Gguf, GgufValue};
use mamba_format::{MbinFile, ModelConfig, QuantType, TensorRole};
use mamba_testkit::gguf::{gguf_string, tag, GgufBuilder, GgufTensorSpec};

const MAMBA: [&str; 4] = ["f16", "q8_0", "q4_0", "q4_k_m"];

fn gguf(family: &str, ty: &str) -> Option<PathBuf> {
    let (dir, stem) = match family {
        "mamba2" => ("gguf-mamba2-shakespeare", "mamba2-shakespeare"),
        _ => ("gguf-shakespeare", "mamba-shakespeare"),
    };
    Some(fixture(dir)?.join(format!("{stem}-{ty}.gguf")))
}

fn every_gguf() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = MAMBA.iter().filter_map(|t| gguf("mamba", t)).collect();
    v.extend(gguf("mamba2", "q8_0"));
    v
}

/// Imports `path` as stored (or as `preset` says) into `out`.
fn import(
    path: &Path,
    out: &Path,
    preset: Option<Preset>,
) -> Result<mamba_convert::Summary, ConvertError> {
    let input = Input::Gguf {
        path: path.to_path_buf(),
        requantize: preset.is_some(),
    };
    convert(&opts(
        input,
        out,
        preset.unwrap_or(Preset::Uniform(QuantType::F16)),
    ))
}

#[test]
fn the_f16_gguf_gives_the_tensors_of_the_f16_conversion() {
    let (Some(path), Some(dir)) = (gguf("mamba", "f16"), fixture("mamba-shakespeare")) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("hf.mbin"), tmp.path().join("gguf.mbin"));
    convert_dir(&dir, &a, Preset::Uniform(QuantType::F16)).unwrap();
    import(&path, &b, None).unwrap();
    let (a, b) = (read_valid(&a), read_valid(&b));
    let (fa, fb) = (MbinFile::parse(&a).unwrap(), MbinFile::parse(&b).unwrap());
    assert_eq!(
        ModelConfig::from_file(&fa).unwrap(),
        ModelConfig::from_file(&fb).unwrap(),
        "the same hyper-parameters"
    );
    assert_eq!(fa.tensors.len(), fb.tensors.len());
    let mut identical = 0;
    for ta in &fa.tensors {
        let tb = fb
            .tensor(&ta.name)
            .unwrap_or_else(|| panic!("{} missing", ta.name));
        assert_eq!(ta.shape, tb.shape, "{}", ta.name);
        assert_eq!(
            ta.ty, tb.ty,
            "{}: both store every tensor in the same type",
            ta.name
        );
        let (da, db) = (fa.tensor_data(ta), fb.tensor_data(tb));
        if ta.name.ends_with("mixer.A") {
            // -exp(A_log), computed by torch there and by Rust here: within 1 ulp.
            for (x, y) in da.chunks_exact(4).zip(db.chunks_exact(4)) {
                let (x, y) = (
                    i32::from_le_bytes(x.try_into().unwrap()),
                    i32::from_le_bytes(y.try_into().unwrap()),
                );
                assert!((x - y).abs() <= 1, "{}: {x:#x} vs {y:#x}", ta.name);
            }
        } else {
            assert!(da == db, "{} differs", ta.name);
            identical += 1;
        }
    }
    assert_eq!(identical, fa.tensors.len() - 4, "all but the 4 layers' A");
}

#[test]
fn every_gguf_keeps_its_blocks_as_stored() {
    let files = every_gguf();
    if files.is_empty() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    for path in files {
        let src = std::fs::read(&path).unwrap();
        let g = Gguf::parse(&src).unwrap();
        let out = tmp
            .path()
            .join(path.with_extension("mbin").file_name().unwrap());
        let summary = import(&path, &out, None).unwrap();
        assert!(summary.warnings.is_empty(), "{:?}", summary.warnings);
        let bytes = read_valid(&out);
        let f = MbinFile::parse(&bytes).unwrap();
        let model = ModelConfig::from_file(&f).unwrap();
        let want_q = match g.get_u64("general.file_type").unwrap() {
            Some(1) => "f16",
            Some(7) => "q8_0",
            Some(2) => "q4_0",
            Some(15) => "q4_k_m",
            other => panic!("unexpected file type {other:?}"),
        };
        assert_eq!(
            f.metadata.require_str("general.quantization").unwrap(),
            want_q
        );
        assert_eq!(
            f.metadata.require_str("general.source_format").unwrap(),
            "gguf"
        );
        assert_eq!(summary.quantization, want_q);
        let mut kept = 0;
        for def in model.tensor_defs() {
            let t = f.tensor(&def.name).unwrap();
            if def.role == TensorRole::F32Only {
                assert_eq!(t.ty, QuantType::F32, "{}", def.name);
                continue;
            }
            // The GGUF tensor of the same elements: found by its bytes.
            let data = f.tensor_data(t);
            let same = g
                .tensors
                .iter()
                .find(|s| s.ty == t.ty && g.tensor_data(&src, s) == data);
            assert!(
                same.is_some(),
                "{}: {:?} not copied as stored",
                def.name,
                t.ty
            );
            kept += 1;
        }
        assert!(kept > 2 * model.n_layer(), "{}", path.display());
        // The mixes keep llama.cpp's choices: a q6_K tied embedding in the q4 files.
        if want_q == "q4_k_m" || want_q == "q4_0" {
            assert_eq!(f.tensor("embeddings.weight").unwrap().ty, QuantType::Q6_K);
        }
    }
}

#[test]
fn a_type_on_request_requantizes_and_an_unchanged_type_is_copied() {
    let (Some(q4km), Some(q8)) = (gguf("mamba", "q4_k_m"), gguf("mamba", "q8_0")) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("q8.mbin");
    let s = import(&q4km, &out, Some(Preset::Uniform(QuantType::Q8_0))).unwrap();
    assert_eq!(s.quantization, "q8_0");
    let bytes = read_valid(&out);
    let f = MbinFile::parse(&bytes).unwrap();
    assert_eq!(
        f.tensor("layers.0.mixer.in_proj.weight").unwrap().ty,
        QuantType::Q8_0
    );
    assert!(s.tensors.iter().any(|t| t.max_abs_err > 0.0), "requantized");

    // q8_0 → q8_0: the blocks are copied, not dequantized and rounded again.
    let out2 = tmp.path().join("q8b.mbin");
    let s = import(&q8, &out2, Some(Preset::Uniform(QuantType::Q8_0))).unwrap();
    let copied = s.tensors.iter().filter(|t| t.chosen == QuantType::Q8_0);
    assert!(copied.clone().count() > 0);
    assert!(copied.clone().all(|t| t.max_abs_err == 0.0));
    let plan = dry_run(&opts(
        Input::Gguf {
            path: q8,
            requantize: false,
        },
        Path::new(""),
        Preset::Uniform(QuantType::F16),
    ))
    .unwrap();
    assert_eq!(plan.quantization, "q8_0");
}

#[test]
fn the_rebuilt_tokenizer_encodes_val_txt_like_the_models_own() {
    for (family, model) in [
        ("mamba", "mamba-shakespeare"),
        ("mamba2", "mamba2-shakespeare"),
    ] {
        let (Some(path), Some(dir)) = (gguf(family, "q8_0"), fixture(model)) else {
            return;
        };
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("m.mbin");
        import(&path, &out, None).unwrap();
        let bytes = read_valid(&out);
        let f = MbinFile::parse(&bytes).unwrap();
        let json = f
            .metadata
            .require_str("tokenizer.huggingface.json")
            .unwrap();
        let rebuilt = tokenizers::Tokenizer::from_bytes(json.as_bytes()).unwrap();
        let own = tokenizers::Tokenizer::from_file(dir.join("tokenizer.json")).unwrap();
        let text = std::fs::read_to_string(dir.join("val.txt")).unwrap();
        let want = own.encode(text.as_str(), false).unwrap().get_ids().to_vec();
        let got = rebuilt
            .encode(text.as_str(), false)
            .unwrap()
            .get_ids()
            .to_vec();
        assert!(want.len() > 30_000);
        assert!(got == want, "{model}: the ids differ");
        assert_eq!(
            rebuilt.decode(&got, false).unwrap(),
            text,
            "{model}: decode"
        );
        // Special ids come from tokenizer.ggml.*.
        let g_bytes = std::fs::read(&path).unwrap();
        let g = Gguf::parse(&g_bytes).unwrap();
        let eos = g.get_u64("tokenizer.ggml.eos_token_id").unwrap().unwrap();
        assert_eq!(
            f.metadata.get("tokenizer.eos_id"),
            Some(&mamba_format::Value::U32(eos as u32))
        );
    }
}

// -----------------------------------------------------------------------------------
// Bad files
// -----------------------------------------------------------------------------------

/// The fixture as a builder, so that a test can change one thing and write it back.
fn builder_of(path: &Path) -> GgufBuilder {
    let bytes = std::fs::read(path).unwrap();
    let g = Gguf::parse(&bytes).unwrap();
    let mut b = GgufBuilder::new();
    for (k, v) in &g.metadata {
        let (t, enc) = encode(v);
        b = b.kv_raw(k.as_bytes(), t, &enc);
    }
    for t in &g.tensors {
        b.tensors.push(GgufTensorSpec {
            name: t.name.clone(),
            dims: t.dims.clone(),
            ty: t.ty.id(),
            data: g.tensor_data(&bytes, t).to_vec(),
            offset: None,
        });
    }
    b
}

fn encode(v: &GgufValue) -> (u32, Vec<u8>) {
    match v {
        GgufValue::U8(x) => (0, vec![*x]),
        GgufValue::I8(x) => (1, x.to_le_bytes().to_vec()),
        GgufValue::U16(x) => (2, x.to_le_bytes().to_vec()),
        GgufValue::I16(x) => (3, x.to_le_bytes().to_vec()),
        GgufValue::U32(x) => (tag::U32, x.to_le_bytes().to_vec()),
        GgufValue::I32(x) => (tag::I32, x.to_le_bytes().to_vec()),
        GgufValue::F32(x) => (tag::F32, x.to_le_bytes().to_vec()),
        GgufValue::Bool(x) => (tag::BOOL, vec![*x as u8]),
        GgufValue::String(s) => (tag::STRING, gguf_string(s.as_bytes())),
        GgufValue::U64(x) => (tag::U64, x.to_le_bytes().to_vec()),
        GgufValue::I64(x) => (11, x.to_le_bytes().to_vec()),
        GgufValue::F64(x) => (12, x.to_le_bytes().to_vec()),
        GgufValue::Array(items) => {
            let elem = items.first().map_or(tag::U32, |e| encode(e).0);
            let mut b = elem.to_le_bytes().to_vec();
            b.extend_from_slice(&(items.len() as u64).to_le_bytes());
            for e in items {
                b.extend(encode(e).1);
            }
            (tag::ARRAY, b)
        }
    }
}

/// `b` with metadata `key` replaced by a string, u32 or removed.
fn set_kv(mut b: GgufBuilder, key: &str, value: Option<(u32, Vec<u8>)>) -> GgufBuilder {
    let prefix = gguf_string(key.as_bytes());
    b.kv.retain(|e| !e.starts_with(&prefix));
    if let Some((t, v)) = value {
        b = b.kv_raw(key.as_bytes(), t, &v);
    }
    b
}

/// Writes `b`, imports it, checks that nothing was written, returns the error.
fn refused(b: &GgufBuilder) -> ConvertError {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("bad.gguf");
    std::fs::write(&path, b.build()).unwrap();
    let out = tmp.path().join("out.mbin");
    let err = import(&path, &out, None).expect_err("a bad GGUF was imported");
    eprintln!("expected error: {err}");
    assert_nothing_written(&out);
    err
}

#[test]
fn bad_gguf_files_are_refused_with_the_reason() {
    let Some(path) = gguf("mamba", "q4_0") else {
        return;
    };
    let base = builder_of(&path);
    // The rebuilt fixture itself imports (the builder writes what it read).
    {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("same.gguf");
        std::fs::write(&p, base.build()).unwrap();
        import(&p, &tmp.path().join("o.mbin"), None).unwrap();
    }
    let msg = |e: ConvertError| e.to_string();

    // Another architecture is named.
    let e = refused(&set_kv(
        base.clone(),
        "general.architecture",
        Some((tag::STRING, gguf_string(b"llama"))),
    ));
    assert!(matches!(e, ConvertError::GgufModel { .. }) && msg(e).contains("\"llama\""));
    // A missing hyper-parameter is named.
    let e = refused(&set_kv(base.clone(), "mamba.block_count", None));
    assert!(msg(e).contains("mamba.block_count"));
    // So is one of the wrong type, and one out of range.
    let e = refused(&set_kv(
        base.clone(),
        "mamba.ssm.state_size",
        Some((tag::STRING, gguf_string(b"16"))),
    ));
    assert!(msg(e).contains("mamba.ssm.state_size"));
    let e = refused(&set_kv(
        base.clone(),
        "mamba.attention.layer_norm_rms_epsilon",
        Some((tag::F32, f32::NAN.to_le_bytes().to_vec())),
    ));
    assert!(msg(e).contains("eps"), "names the epsilon");
    // A hyper-parameter that disagrees with the tensors: the tensor is named.
    let e = refused(&set_kv(
        base.clone(),
        "mamba.ssm.inner_size",
        Some((tag::U32, 256u32.to_le_bytes().to_vec())),
    ));
    assert!(matches!(e, ConvertError::ShapeMismatch { .. }), "{e}");
    // A missing tensor and an extra one are named.
    let mut b = base.clone();
    b.tensors.retain(|t| t.name != "blk.2.ssm_d");
    assert!(msg(refused(&b)).contains("blk.2.ssm_d"));
    let mut b = base.clone();
    b.tensors.push(GgufTensorSpec {
        name: "blk.0.ssm_dt_norm.weight".into(),
        dims: vec![16],
        ty: 0,
        data: vec![0; 64],
        offset: None,
    });
    assert!(msg(refused(&b)).contains("blk.0.ssm_dt_norm.weight"));
    // A block type .mbin does not have: the type and the tensor are named.
    let mut b = base.clone();
    let t = b
        .tensors
        .iter_mut()
        .find(|t| t.name == "blk.1.ssm_in.weight")
        .unwrap();
    t.ty = 16; // iq2_xxs
    let e = msg(refused(&b));
    assert!(
        e.contains("iq2_xxs") && e.contains("blk.1.ssm_in.weight"),
        "{e}"
    );
    // A NaN weight is refused, not copied.
    let mut b = base.clone();
    let t = b
        .tensors
        .iter_mut()
        .find(|t| t.name == "blk.3.ssm_d")
        .unwrap();
    t.data[8..12].copy_from_slice(&f32::NAN.to_le_bytes());
    let e = refused(&b);
    assert!(
        matches!(e, ConvertError::NonFinite { index: 2, .. }) && msg(e).contains("blk.3.ssm_d")
    );
    // A truncated file.
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("cut.gguf");
    let bytes = base.build();
    std::fs::write(&p, &bytes[..bytes.len() / 2]).unwrap();
    let out = tmp.path().join("out.mbin");
    let e = import(&p, &out, None).unwrap_err();
    assert!(matches!(e, ConvertError::Gguf { .. }), "{e}");
    assert_nothing_written(&out);
}

#[test]
fn the_command_line_takes_a_gguf_file_and_refuses_a_non_gguf_one() {
    let Some(path) = gguf("mamba", "q4_k_m") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("m.mbin");
    let o = run_convert(
        &[path.to_str().unwrap(), "-o", out.to_str().unwrap(), "-q"],
        Duration::from_secs(120),
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    read_valid(&out);
    // A file that is not GGUF: one line, status 1, nothing written.
    let txt = tmp.path().join("notes.txt");
    std::fs::write(&txt, "hello").unwrap();
    let out2 = tmp.path().join("n.mbin");
    let o = run_convert(
        &[txt.to_str().unwrap(), "-o", out2.to_str().unwrap()],
        Duration::from_secs(60),
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.starts_with("error: invalid GGUF file") && err.contains("not a GGUF file"),
        "{err}"
    );
    assert_nothing_written(&out2);
    // --revision belongs to Hub ids.
    let o = run_convert(
        &[
            path.to_str().unwrap(),
            "--revision",
            "main",
            "-o",
            out2.to_str().unwrap(),
        ],
        Duration::from_secs(60),
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--revision"));
}

#[test]
fn ggufs_of_every_block_type_import_as_stored() {
    let Some(path) = gguf("mamba", "q4_0") else {
        return;
    };
    let base = builder_of(&path);
    let tmp = tempfile::tempdir().unwrap();
    // The matrices of llama.cpp's q4_0 file, stored again as each type a GGUF
    // may hold (the K and IQ types need rows of 256: this model's are 256 and 512).
    for ty in QuantType::ALL {
        let mut b = base.clone();
        let mut changed = Vec::new();
        for t in b.tensors.iter_mut() {
            let old = QuantType::from_id(t.ty).unwrap();
            if old == QuantType::F32 || !(t.dims[0] as usize).is_multiple_of(ty.block_size()) {
                continue;
            }
            let n: u64 = t.dims.iter().product();
            let mut values = vec![0f32; n as usize];
            old.dequantize_row(&t.data, &mut values);
            let mut data = vec![0u8; ty.bytes_for(n).unwrap() as usize];
            ty.quantize_row(&values, &mut data);
            t.ty = ty.id();
            t.data = data;
            changed.push(t.name.clone());
        }
        let p = tmp.path().join(format!("{ty}.gguf"));
        let bytes = b.build();
        std::fs::write(&p, &bytes).unwrap();
        let out = tmp.path().join(format!("{ty}.mbin"));
        import(&p, &out, None).unwrap_or_else(|e| panic!("{ty}: {e}"));
        let m = read_valid(&out);
        let f = MbinFile::parse(&m).unwrap();
        let g = Gguf::parse(&bytes).unwrap();
        for name in &changed {
            let src = g.tensor(name).unwrap();
            if src.dims.len() == 1 {
                continue; // an F32Only tensor (not in this file), stored as f32
            }
            let t = f
                .tensors
                .iter()
                .find(|t| f.tensor_data(t) == g.tensor_data(&bytes, src))
                .unwrap_or_else(|| panic!("{ty}: {name} not copied as stored"));
            assert_eq!(t.ty, ty, "{name}");
        }
        assert!(!changed.is_empty(), "{ty}");
    }
}

/// llama.cpp's `tokenizer.chat_template` is carried over verbatim; one of the wrong
/// type is a warning (the template is optional), and `--chat-template` replaces it.
#[test]
fn the_chat_template_is_carried_over() {
    let Some(path) = gguf("mamba", "q4_0") else {
        return;
    };
    let key = "tokenizer.chat_template";
    let template = "{% for message in messages %}{{ message['content'] }}\n{% endfor %}";
    let base = builder_of(&path);
    let tmp = tempfile::tempdir().unwrap();
    let stored = |out: &Path| -> Option<String> {
        let bytes = read_valid(out);
        let f = MbinFile::parse(&bytes).unwrap();
        f.metadata.get(key).map(|v| v.as_str().unwrap().to_string())
    };
    let chat_warnings = |w: &[String]| -> Vec<String> {
        w.iter()
            .filter(|w| w.contains("chat template"))
            .cloned()
            .collect()
    };

    let with = tmp.path().join("with.gguf");
    let b = set_kv(
        base.clone(),
        key,
        Some((tag::STRING, gguf_string(template.as_bytes()))),
    );
    std::fs::write(&with, b.build()).unwrap();
    let out = tmp.path().join("with.mbin");
    let summary = import(&with, &out, None).unwrap();
    assert!(summary.warnings.is_empty(), "{:?}", summary.warnings);
    assert_eq!(stored(&out).as_deref(), Some(template));

    // Given explicitly, the file's own is replaced.
    let given = tmp.path().join("given.jinja");
    std::fs::write(&given, "GIVEN").unwrap();
    let mut overrides = mamba_convert::Overrides::default();
    overrides.chat_template = Some(given);
    let input = Input::Gguf {
        path: with.clone(),
        requantize: false,
    };
    let out = tmp.path().join("given.mbin");
    mamba_convert::convert_with(
        &opts(input, &out, Preset::Uniform(QuantType::F16)),
        &overrides,
    )
    .unwrap();
    assert_eq!(stored(&out).as_deref(), Some("GIVEN"));

    // Wrongly typed: imported without a template, with a warning naming the key.
    let wrong = tmp.path().join("wrong.gguf");
    let b = set_kv(
        base.clone(),
        key,
        Some((tag::U32, 7u32.to_le_bytes().to_vec())),
    );
    std::fs::write(&wrong, b.build()).unwrap();
    let out = tmp.path().join("wrong.mbin");
    let summary = import(&wrong, &out, None).unwrap();
    let w = chat_warnings(&summary.warnings);
    assert!(
        w.len() == 1 && w[0].contains(key) && w[0].contains(wrong.to_str().unwrap()),
        "{w:?}"
    );
    assert_eq!(stored(&out), None);

    // Absent (the fixture as llama.cpp wrote it): none, and nothing to say.
    let out = tmp.path().join("plain.mbin");
    let summary = import(&path, &out, None).unwrap();
    assert!(chat_warnings(&summary.warnings).is_empty());
    assert_eq!(stored(&out), None);
}
