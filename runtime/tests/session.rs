//! Session, state and error behaviour on the tiny shared fixture.

use mamba_runtime::{
    Batch, GenerateOptions, Model, RuntimeError, Sampler, SamplerParams, Session, Snapshot,
};

use mamba_testkit::shared_dir as shared;

fn tiny(preset: &str) -> Option<(Model, tempfile::TempDir)> {
    let dir = shared()?.join("fixtures/mamba-tiny-hf");
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("tiny.mbin");
    let opts = mamba_convert::ConvertOptions {
        input: mamba_convert::Input::Dir(dir),
        output: out.clone(),
        preset: preset.parse().unwrap(),
        force: false,
        tokenizer: None,
        progress: false,
    };
    mamba_convert::convert(&opts).unwrap();
    Some((Model::open(&out).unwrap(), tmp))
}

const PROMPT: [u32; 9] = [5, 17, 300, 999, 0, 42, 42, 7, 123];

#[test]
fn step_after_prefill_equals_prefill_of_longer_sequence() {
    let Some((m, _t)) = tiny("f32") else { return };
    let mut a = Session::new(&m);
    a.prefill(&PROMPT[..5]).unwrap();
    for &t in &PROMPT[5..] {
        a.step(t).unwrap();
    }
    let mut b = Session::new(&m);
    b.prefill(&PROMPT).unwrap();
    let diff = a
        .logits()
        .iter()
        .zip(b.logits())
        .map(|(x, y)| (x - y).abs())
        .fold(0.0f32, f32::max);
    assert!(diff < 1e-5, "{diff}");
    assert_eq!(a.state().n_tokens, PROMPT.len() as u64);
}

#[test]
fn fork_and_reset() {
    let Some((m, _t)) = tiny("q8_0") else { return };
    let mut a = Session::new(&m);
    a.prefill(&PROMPT[..4]).unwrap();
    let mut b = a.fork();
    let la = a.step(9).unwrap().to_vec();
    let lb = b.step(9).unwrap().to_vec();
    assert_eq!(la, lb, "a fork continues exactly like the original");
    a.reset();
    assert_eq!(a.state().n_tokens, 0);
    assert!(a.state().ssm().iter().all(|&v| v == 0.0));
    let fresh = Session::new(&m).prefill(&PROMPT[..4]).unwrap().to_vec();
    assert_eq!(a.prefill(&PROMPT[..4]).unwrap(), &fresh[..]);
}

#[test]
fn save_and_restore_state() {
    let Some((m, tmp)) = tiny("f32") else { return };
    let mut a = Session::new(&m);
    a.prefill(&PROMPT[..6]).unwrap();
    let path = tmp.path().join("state.bin");
    a.save_state(&path).unwrap();
    let want = a.step(11).unwrap().to_vec();
    let mut b = Session::new(&m);
    b.load_state(&path).unwrap();
    assert_eq!(b.state().n_tokens, 6);
    assert_eq!(b.step(11).unwrap(), &want[..]);
    // Damaged, truncated and foreign states are refused.
    let mut bytes = std::fs::read(&path).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 1;
    assert!(matches!(
        Snapshot::from_bytes(&bytes),
        Err(RuntimeError::BadState(_))
    ));
    assert!(matches!(
        Snapshot::from_bytes(&bytes[..100]),
        Err(RuntimeError::BadState(_))
    ));
    assert!(matches!(
        Snapshot::from_bytes(b"garbage"),
        Err(RuntimeError::BadState(_))
    ));
    let Some((other, _t2)) = tiny("q8_0") else {
        return;
    };
    let mut c = Session::new(&other);
    assert!(matches!(
        c.load_state(&path),
        Err(RuntimeError::BadState(_))
    ));
    // A state of one model cannot be run on another.
    let mut foreign = Batch::new(&other, 1);
    foreign.states[0] = a.state().clone();
    assert!(matches!(foreign.step(&[1]), Err(RuntimeError::BadState(_))));
}

#[test]
fn typed_errors_not_panics() {
    let Some((m, _t)) = tiny("f32") else { return };
    let mut s = Session::new(&m);
    assert!(matches!(s.prefill(&[]), Err(RuntimeError::EmptyPrompt)));
    assert!(matches!(
        s.prefill(&[1, 1000]),
        Err(RuntimeError::TokenOutOfRange {
            id: 1000,
            vocab: 1000
        })
    ));
    assert!(matches!(
        s.step(u32::MAX),
        Err(RuntimeError::TokenOutOfRange { .. })
    ));
    assert_eq!(
        s.state().n_tokens,
        0,
        "a rejected call leaves the state untouched"
    );
    let mut sampler = Sampler::new(SamplerParams::greedy()).unwrap();
    let opts = GenerateOptions {
        max_tokens: 3,
        ignore_eos: true,
    };
    assert!(matches!(
        s.generate(&[], &mut sampler, &opts, |_, _| true),
        Err(RuntimeError::EmptyPrompt)
    ));
    let mut b = Batch::new(&m, 2);
    assert!(matches!(b.step(&[1]), Err(RuntimeError::Batch(_))));
    assert!(matches!(
        b.prefill(&[&[1], &[]]),
        Err(RuntimeError::EmptyPrompt) | Err(RuntimeError::Batch(_))
    ));
    assert!(matches!(
        Model::open("/nonexistent/model.mbin"),
        Err(RuntimeError::File(_))
    ));
    assert!(matches!(
        Model::from_bytes(b"not a model"),
        Err(RuntimeError::Format { .. })
    ));
    assert!(m.tokenizer().is_none());
}

#[test]
fn generation_is_reproducible_with_a_seed() {
    let Some((m, _t)) = tiny("q4_0") else { return };
    let params = SamplerParams {
        temperature: 1.0,
        top_k: 50,
        top_p: 0.9,
        min_p: 0.0,
        repeat_penalty: 1.2,
        repeat_last_n: 16,
        frequency_penalty: 0.0,
        presence_penalty: 0.0,
        seed: 7,
    };
    let opts = GenerateOptions {
        max_tokens: 20,
        ignore_eos: true,
    };
    let run = |seed: u64| {
        let mut s = Session::new(&m);
        let mut sampler = Sampler::new(SamplerParams {
            seed,
            ..params.clone()
        })
        .unwrap();
        s.generate(&PROMPT, &mut sampler, &opts, |_, _| true)
            .unwrap()
            .tokens
    };
    assert_eq!(run(7), run(7));
    assert_ne!(run(7), run(8));
    assert_eq!(run(7).len(), 20);
}

#[test]
fn model_is_shared_across_threads() {
    let Some((m, _t)) = tiny("q8_0") else { return };
    let want = Session::new(&m).prefill(&PROMPT).unwrap().to_vec();
    std::thread::scope(|sc| {
        for _ in 0..3 {
            sc.spawn(|| {
                let mut s = Session::new(&m);
                assert_eq!(s.prefill(&PROMPT).unwrap(), &want[..]);
            });
        }
    });
}
