//! Hostile use of the library (issue 11): a restored session resumes exactly, a
//! foreign or damaged state is refused, a batch refuses before advancing anything,
//! NaN in the weights stops with the layer named, and special files are refused
//! as models and state files. Small random f32 models built in memory; every
//! file lives in a temp dir.

use mamba_files::FileError;
use mamba_format::{write_to_vec, MambaConfig, Metadata, QuantType, TensorSpec};
use mamba_runtime::{
    Batch, GenerateOptions, Model, RuntimeError, Sampler, SamplerParams, Session, Snapshot,
};
use std::path::Path;
use std::time::Duration;

const VOCAB: usize = 61;

fn config(d_state: usize, tie: bool) -> MambaConfig {
    MambaConfig {
        d_model: 16,
        n_layer: 3,
        d_state,
        d_conv: 4,
        d_inner: 32,
        dt_rank: 2,
        vocab_size: VOCAB,
        rms_norm_eps: 1e-5,
        tie_embeddings: tie,
        conv_bias: true,
        proj_bias: false,
        mixer_rms_eps: None,
    }
}

/// The `.mbin` bytes of a random f32 model with `cfg`; `edit(name, values)` may
/// change any tensor (to poison it) before it is written.
fn model_bytes(cfg: &MambaConfig, seed: u64, edit: impl Fn(&str, &mut [f32])) -> Vec<u8> {
    let mut md = Metadata::default();
    cfg.to_metadata(&mut md).unwrap();
    let mut rng = seed;
    let mut uniform = |lo: f32, hi: f32| {
        // splitmix64
        rng = rng.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        lo + (hi - lo) * ((z >> 40) as f32 / (1u64 << 24) as f32)
    };
    let mut tensors = Vec::new();
    for def in cfg.tensor_defs() {
        let n = def.shape.iter().product::<u64>() as usize;
        let cols = *def.shape.last().unwrap() as f32;
        let name = def.name.as_str();
        let (lo, hi) = if name.ends_with("mixer.A") {
            (-2.0, -0.1)
        } else if name.ends_with("dt_proj.bias") {
            (-4.0, -2.0)
        } else if name.ends_with("norm.weight") || name.ends_with("mixer.D") {
            (0.5, 1.5)
        } else if name.starts_with("embeddings") || name.starts_with("lm_head") {
            (-1.0, 1.0)
        } else {
            (-1.0 / cols.sqrt(), 1.0 / cols.sqrt())
        };
        let mut vals: Vec<f32> = (0..n).map(|_| uniform(lo, hi)).collect();
        edit(name, &mut vals);
        let bytes: Vec<u8> = vals.iter().flat_map(|v| v.to_le_bytes()).collect();
        tensors.push((TensorSpec::new(name, QuantType::F32, &def.shape), bytes));
    }
    let refs: Vec<(TensorSpec, &[u8])> = tensors
        .iter()
        .map(|(s, b)| (s.clone(), b.as_slice()))
        .collect();
    write_to_vec(&md, &refs).unwrap()
}

fn model(seed: u64) -> Model {
    Model::from_bytes(&model_bytes(&config(4, true), seed, |_, _| {})).unwrap()
}

fn poisoned(tie: bool, edit: impl Fn(&str, &mut [f32])) -> Model {
    Model::from_bytes(&model_bytes(&config(4, tie), 1, edit)).unwrap()
}

const PROMPT: [u32; 7] = [3, 14, 15, 9, 26, 5, 35];

fn opts(n: usize) -> GenerateOptions {
    GenerateOptions {
        max_tokens: n,
        ignore_eos: true,
    }
}

/// Samples with temperature and a repetition penalty: the tokens depend on the
/// logits *and* the history, and on nothing else (fixed seed).
fn sampler() -> Sampler {
    Sampler::new(SamplerParams {
        temperature: 0.8,
        top_k: 20,
        top_p: 0.95,
        min_p: 0.0,
        repeat_penalty: 1.3,
        repeat_last_n: 16,
        frequency_penalty: 0.0,
        presence_penalty: 0.0,
        seed: 11,
    })
    .unwrap()
}

fn generate(s: &mut Session<'_>, prompt: &[u32], n: usize) -> Vec<u32> {
    s.generate(prompt, &mut sampler(), &opts(n), |_, _| true)
        .unwrap()
        .tokens
}

/// A snapshot's bytes with its checksum recomputed after `edit`: damage that a
/// checksum cannot catch.
fn forge(bytes: &[u8], edit: impl FnOnce(&mut [u8])) -> Vec<u8> {
    let mut body = bytes[..bytes.len() - 8].to_vec();
    edit(&mut body);
    let sum = mamba_format::checksum::checksum(&body);
    body.extend_from_slice(&sum.to_le_bytes());
    body
}

#[test]
fn a_restored_session_generates_what_it_would_have_generated() {
    let m = model(1);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state");
    let mut s = Session::new(&m);
    s.prefill(&PROMPT).unwrap();
    s.save_state(&path).unwrap();
    let want = generate(&mut s, &[], 12);
    // The same session, moved on, then restored.
    generate(&mut s, &[], 5);
    s.load_state(&path).unwrap();
    assert_eq!(s.history(), &PROMPT[..]);
    assert_eq!(generate(&mut s, &[], 12), want);
    // A fresh session holding other logits, restored.
    let mut t = Session::new(&m);
    t.prefill(&[1, 2]).unwrap();
    t.load_state(&path).unwrap();
    assert_eq!(generate(&mut t, &[], 12), want);
    // A snapshot taken after a generation resumes it too.
    let mut u = Session::new(&m);
    let first = generate(&mut u, &PROMPT, 4);
    let snap = u.snapshot().unwrap();
    let rest = generate(&mut u, &[], 8);
    let mut v = Session::new(&m);
    v.restore(snap).unwrap();
    assert_eq!(generate(&mut v, &[], 8), rest);
    assert_eq!(v.history(), &[&PROMPT[..], &first, &rest].concat()[..]);
}

#[test]
fn generation_continues_from_the_last_generated_token() {
    let m = model(2);
    let mut a = Session::new(&m);
    let gen = generate(&mut a, &PROMPT, 5);
    let next = a.step(7).unwrap().to_vec();
    let mut b = Session::new(&m);
    let fed = [&PROMPT[..], &gen, &[7]].concat();
    assert_eq!(b.prefill(&fed).unwrap(), &next[..]);
    assert_eq!(a.history(), &fed[..]);
    assert_eq!(a.state().n_tokens, fed.len() as u64);
}

#[test]
fn a_state_of_other_shapes_is_an_error_not_a_panic() {
    let ours = model(3);
    let theirs = Model::from_bytes(&model_bytes(&config(6, true), 3, |_, _| {})).unwrap();
    let mut s = Session::new(&theirs);
    s.prefill(&PROMPT).unwrap();
    let bytes = s.snapshot().unwrap().to_bytes();
    // Their state under our model's id: only the shapes can tell.
    let forged = forge(&bytes, |b| {
        b[8..16].copy_from_slice(&ours.id().to_le_bytes())
    });
    let snap = Snapshot::from_bytes(&forged).unwrap();
    assert_eq!(snap.state.model_id(), ours.id());
    let mut o = Session::new(&ours);
    assert!(matches!(
        o.restore(snap.clone()),
        Err(RuntimeError::BadState(_))
    ));
    let mut batch = Batch::new(&ours, 2);
    batch.states[1] = snap.state.clone();
    assert!(matches!(
        batch.prefill(&[&PROMPT, &PROMPT]),
        Err(RuntimeError::BadState(_))
    ));
    assert!(matches!(
        batch.step(&[1, 2]),
        Err(RuntimeError::BadState(_))
    ));
    assert_eq!(batch.states[0].n_tokens, 0);
}

#[test]
fn a_batch_refuses_bad_input_before_advancing_any_sequence() {
    let m = model(4);
    let long: Vec<u32> = (0..600).map(|i| (i * 7 % VOCAB) as u32).collect();
    let fresh = m.new_state();
    let mut b = Batch::new(&m, 2);
    let bad_inputs: [[&[u32]; 2]; 3] = [[&PROMPT, &[]], [&long, &[]], [&long, &[1, VOCAB as u32]]];
    for inputs in bad_inputs {
        assert!(b.prefill(&inputs).is_err());
        assert!(
            b.states.iter().all(|s| *s == fresh),
            "a refused prefill advanced a sequence"
        );
    }
    assert!(matches!(b.prefill(&[&PROMPT]), Err(RuntimeError::Batch(_))));
    assert!(matches!(
        b.step(&[1, VOCAB as u32]),
        Err(RuntimeError::TokenOutOfRange { .. })
    ));
    assert!(b.states.iter().all(|s| *s == fresh));
}

#[test]
fn non_finite_state_values_are_refused_with_a_valid_checksum() {
    let m = model(5);
    let mut s = Session::new(&m);
    s.prefill(&PROMPT).unwrap();
    let snap = s.snapshot().unwrap();
    let bytes = snap.to_bytes();
    let n_conv = snap.state.conv().len();
    // The state values start after the 88-byte header of version 3.
    let ssm_at = 88 + 4 * (n_conv + 5);
    let logits_at = bytes.len() - 8 - 4 * 3;
    for (at, v) in [
        (88, f32::NAN),
        (ssm_at, f32::INFINITY),
        (logits_at, f32::NAN),
    ] {
        let forged = forge(&bytes, |b| b[at..at + 4].copy_from_slice(&v.to_le_bytes()));
        let err = Snapshot::from_bytes(&forged).unwrap_err();
        assert!(matches!(err, RuntimeError::BadState(_)), "{err}");
        assert!(err.to_string().contains("non-finite"), "{err}");
    }
    // Set by hand, not read from a file: refused on restore all the same.
    let mut nan = snap.clone();
    nan.state.ssm_mut(2)[1] = f32::NAN;
    let before = s.snapshot().unwrap();
    assert!(matches!(s.restore(nan), Err(RuntimeError::BadState(_))));
    assert_eq!(
        s.snapshot().unwrap(),
        before,
        "a refused restore changed nothing"
    );
    // Version 1 files are refused with a reason, not as garbage.
    let err = Snapshot::from_bytes(b"MSTATE01 and the rest of an old file").unwrap_err();
    assert!(err.to_string().contains("version-1"), "{err}");
}

#[test]
fn forged_sizes_in_a_state_file_are_refused_not_a_panic() {
    let m = model(7);
    let mut s = Session::new(&m);
    s.prefill(&PROMPT).unwrap();
    let bytes = s.snapshot().unwrap().to_bytes();
    for field in 1..11 {
        for v in [0, 1, 1 << 32, 1 << 40, u64::MAX / 3, u64::MAX] {
            let at = 8 * field;
            let forged = forge(&bytes, |b| b[at..at + 8].copy_from_slice(&v.to_le_bytes()));
            if let Ok(snap) = Snapshot::from_bytes(&forged) {
                // Consistent sizes (e.g. zero layers of huge channels): the model
                // refuses it instead.
                if snap.state.shape() != s.state().shape() {
                    assert!(Session::new(&m).restore(snap).is_err());
                }
            }
        }
    }
}

#[test]
fn nan_in_a_layer_stops_the_forward_pass_naming_the_layer() {
    let m = poisoned(true, |name, v| {
        if name == "layers.1.mixer.out_proj.weight" {
            v[17] = f32::NAN;
        }
    });
    let mut s = Session::new(&m);
    match s.prefill(&PROMPT) {
        Err(RuntimeError::NonFinite {
            layer: Some(1),
            sequence: 0,
            position: 0,
            ..
        }) => {}
        other => panic!("expected NonFinite at layer 1: {other:?}"),
    }
    assert!(s.logits().is_empty(), "no stale logits to sample from");
    let mut s = Session::new(&m);
    assert!(matches!(
        s.generate(&PROMPT, &mut sampler(), &opts(3), |_, _| true),
        Err(RuntimeError::NonFinite { layer: Some(1), .. })
    ));
    let mut b = Batch::new(&m, 2);
    assert!(matches!(
        b.step(&[1, 2]),
        Err(RuntimeError::NonFinite { layer: Some(1), .. })
    ));
    assert!(matches!(
        Session::new(&m).logits_all(&PROMPT),
        Err(RuntimeError::NonFinite { layer: Some(1), .. })
    ));
}

#[test]
fn nan_in_one_embedding_row_names_the_token() {
    let d_model = 16;
    let m = poisoned(false, |name, v| {
        if name == "embeddings.weight" {
            v[9 * d_model + 3] = f32::NAN; // token 9 only
        }
    });
    let mut s = Session::new(&m);
    s.prefill(&[1, 2]).unwrap();
    match s.prefill(&[4, 9]) {
        Err(RuntimeError::NonFinite {
            layer: None,
            position: 3,
            ..
        }) => {}
        other => panic!("expected NonFinite at the embedding of token 3: {other:?}"),
    }
}

#[test]
fn an_infinite_head_stops_at_the_logits() {
    let m = poisoned(false, |name, v| {
        if name == "lm_head.weight" {
            v[5] = f32::INFINITY;
        }
    });
    let mut s = Session::new(&m);
    let err = s.prefill(&PROMPT).unwrap_err();
    assert!(
        matches!(
            &err,
            RuntimeError::NonFinite {
                layer: None,
                position: 6,
                what,
                ..
            } if what == "the logits"
        ),
        "{err:?}"
    );
    let mut b = Batch::new(&m, 1);
    assert!(matches!(
        b.prefill(&[&PROMPT]),
        Err(RuntimeError::NonFinite { layer: None, .. })
    ));
}

/// Runs `f` on another thread and fails the test if it does not return within a
/// few seconds (a blocking open of a FIFO would hang forever).
fn within_seconds<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || tx.send(f()).unwrap());
    rx.recv_timeout(Duration::from_secs(10))
        .expect("blocked on a special file")
}

/// A FIFO in `dir`, or `None` (with a message) where one cannot be made.
fn fifo(dir: &Path) -> Option<std::path::PathBuf> {
    let p = dir.join("fifo");
    let made = std::process::Command::new("mkfifo").arg(&p).status();
    if made.is_ok_and(|s| s.success()) {
        Some(p)
    } else {
        eprintln!("SKIPPED: cannot make a FIFO (mkfifo)");
        None
    }
}

fn kind(r: Result<impl Sized, RuntimeError>) -> &'static str {
    match r {
        Err(RuntimeError::File(FileError::NotRegular { kind, .. })) => kind,
        Err(e) => panic!("expected a refusal by kind: {e}"),
        Ok(_) => panic!("expected a refusal by kind, got Ok"),
    }
}

#[test]
fn special_files_are_refused_as_models_without_blocking() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(kind(Model::open(dir.path())), "directory");
    assert_eq!(kind(Model::open("/dev/null")), "character device");
    if let Some(f) = fifo(dir.path()) {
        assert_eq!(within_seconds(move || kind(Model::open(&f))), "FIFO");
    }
}

#[test]
fn state_files_never_replace_the_model_nor_special_files() {
    let dir = tempfile::tempdir().unwrap();
    let model_path = dir.path().join("model.mbin");
    let bytes = model_bytes(&config(4, true), 6, |_, _| {});
    std::fs::write(&model_path, &bytes).unwrap();
    let m = Model::open(&model_path).unwrap();
    assert_eq!(m.path(), Some(model_path.as_path()));
    let mut s = Session::new(&m);
    s.prefill(&PROMPT).unwrap();
    assert!(matches!(
        s.save_state(&model_path),
        Err(RuntimeError::File(FileError::OutputIsInput { .. }))
    ));
    let link = dir.path().join("link.mbin");
    std::os::unix::fs::symlink(&model_path, &link).unwrap();
    assert!(matches!(
        s.save_state(&link),
        Err(RuntimeError::File(FileError::OutputIsInput { .. }))
    ));
    assert_eq!(std::fs::read(&model_path).unwrap(), bytes);
    assert_eq!(kind(s.save_state(dir.path())), "directory");
    assert_eq!(kind(s.load_state(dir.path())), "directory");
    assert_eq!(
        kind(s.load_state(Path::new("/dev/zero"))),
        "character device"
    );
    if let Some(f) = fifo(dir.path()) {
        let m2 = model(6);
        let got = within_seconds(move || kind(Session::new(&m2).load_state(&f)));
        assert_eq!(got, "FIFO");
    }
    // Larger than any state: refused by its size, before reading (sparse file).
    let big = dir.path().join("big.state");
    let f = std::fs::File::create(&big).unwrap();
    f.set_len(mamba_files::limits::MAX_STATE_BYTES + 1).unwrap();
    assert!(matches!(
        s.load_state(&big),
        Err(RuntimeError::File(FileError::TooLarge { .. }))
    ));
    // No temporary file was left behind.
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(names.iter().all(|n| !n.starts_with('.')), "{names:?}");
}
