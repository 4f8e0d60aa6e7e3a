//! Golden tests: F32 conversions of the shared fixtures reproduce transformers'
//! logits and greedy tokens (ground truth in `reference.safetensors`).

use mamba_runtime::{Batch, GenerateOptions, Model, Sampler, SamplerParams, Session};
use mamba_tests::{convert_dir, max_abs_diff, read_reference, shared_dir};

/// Relative tolerance: max abs error / std of the reference logits.
const REL_TOL: f32 = 1e-4;

/// Every family: Mamba-1 (three checkpoint forms), Mamba-2 (transformers and
/// state-spaces forms), Falcon-Mamba.
const FIXTURES: [&str; 6] = [
    "mamba-tiny-hf",
    "mamba-tiny-ssm",
    "mamba-tiny-sharded-bf16",
    "mamba2-tiny-hf",
    "mamba2-tiny-ssm",
    "falcon-mamba-tiny-hf",
];

fn load(
    fixture: &str,
) -> Option<(
    Model,
    std::collections::HashMap<String, mamba_tests::RefTensor>,
    tempfile::TempDir,
)> {
    let shared = shared_dir()?;
    let dir = shared.join("fixtures").join(fixture);
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("model.mbin");
    convert_dir(&dir, &out, "f32");
    let model = Model::open(&out).unwrap();
    Some((
        model,
        read_reference(&dir.join("reference.safetensors")),
        tmp,
    ))
}

#[test]
fn full_forward_logits_match_reference() {
    for fixture in FIXTURES {
        let Some((model, r, _tmp)) = load(fixture) else {
            return;
        };
        let ids = &r["input_ids"];
        let (b, l) = (ids.shape[0], ids.shape[1]);
        let want = r["logits"].f32s();
        let v = model.vocab_size();
        for row in 0..b {
            let toks = &ids.ids()[row * l..(row + 1) * l];
            let mut s = Session::new(&model);
            let got = s.logits_all(toks).unwrap();
            let (max, std) = max_abs_diff(&got, &want[row * l * v..(row + 1) * l * v]);
            eprintln!(
                "{fixture} row {row}: max abs err {max:.3e}, std {std:.4}, ratio {:.3e}",
                max / std
            );
            assert!(
                max / std <= REL_TOL,
                "{fixture} row {row}: max abs err {max} vs std {std}"
            );
        }
    }
}

#[test]
fn step_by_step_logits_match_reference() {
    for fixture in FIXTURES {
        let Some((model, r, _tmp)) = load(fixture) else {
            return;
        };
        let ids = &r["input_ids"];
        let l = ids.shape[1];
        let want = r["logits"].f32s();
        let v = model.vocab_size();
        let mut s = Session::new(&model);
        let mut got = Vec::new();
        for &t in &ids.ids()[..l] {
            got.extend_from_slice(s.step(t).unwrap());
        }
        let (max, std) = max_abs_diff(&got, &want[..l * v]);
        eprintln!(
            "{fixture} step path: max abs err {max:.3e}, ratio {:.3e}",
            max / std
        );
        assert!(max / std <= REL_TOL);
    }
}

#[test]
fn greedy_tokens_and_step_logits_match_reference() {
    for fixture in FIXTURES {
        let Some((model, r, _tmp)) = load(fixture) else {
            return;
        };
        let prompt = r["greedy_prompt"].ids();
        let want_tokens = r["greedy_tokens"].ids();
        let want_logits = r["greedy_step_logits"].f32s();
        let v = model.vocab_size();
        let mut s = Session::new(&model);
        let mut logits = s.prefill(&prompt).unwrap().to_vec();
        let mut got_tokens = Vec::new();
        let mut got_logits = Vec::new();
        for _ in 0..want_tokens.len() {
            got_logits.extend_from_slice(&logits);
            let next = mamba_runtime::sampler::argmax(&logits);
            got_tokens.push(next);
            logits = s.step(next).unwrap().to_vec();
        }
        assert_eq!(got_tokens, want_tokens, "{fixture}: greedy tokens differ");
        let (max, std) = max_abs_diff(&got_logits, &want_logits[..want_tokens.len() * v]);
        eprintln!(
            "{fixture} greedy step logits: max abs err {max:.3e}, ratio {:.3e}",
            max / std
        );
        assert!(max / std <= REL_TOL);
        // The same through the public generate() with temperature 0.
        let mut s = Session::new(&model);
        let mut sampler = Sampler::new(SamplerParams::greedy()).unwrap();
        let opts = GenerateOptions {
            max_tokens: want_tokens.len(),
            ignore_eos: true,
        };
        let gen = s
            .generate(&prompt, &mut sampler, &opts, |_, _| true)
            .unwrap();
        assert_eq!(gen.tokens, want_tokens, "{fixture}: generate() differs");
    }
}

#[test]
fn batch_equals_single_sequences() {
    for fixture in ["mamba-tiny-hf", "mamba2-tiny-hf", "falcon-mamba-tiny-hf"] {
        batch_equals_single_sequences_of(fixture);
    }
}

fn batch_equals_single_sequences_of(fixture: &str) {
    let Some((model, r, _tmp)) = load(fixture) else {
        return;
    };
    let ids = r["input_ids"].ids();
    let l = r["input_ids"].shape[1];
    let v = model.vocab_size();
    // Different prompt lengths in one batch, then a few batched steps.
    let prompts: [&[u32]; 3] = [&ids[..l], &ids[l..l + 5], &ids[3..20]];
    let mut batch = Batch::new(&model, 3);
    let got = batch.prefill(&prompts).unwrap().to_vec();
    let steps = [[1u32, 2, 3], [4, 5, 6]];
    let mut got_steps = Vec::new();
    for st in steps {
        got_steps.push(batch.step(&st).unwrap().to_vec());
    }
    for (i, p) in prompts.iter().enumerate() {
        let mut s = Session::new(&model);
        let want = s.prefill(p).unwrap().to_vec();
        assert!(
            max_abs_diff(&got[i * v..(i + 1) * v], &want).0 < 1e-5,
            "{fixture}: prefill row {i}"
        );
        for (k, st) in steps.iter().enumerate() {
            let want = s.step(st[i]).unwrap().to_vec();
            assert!(
                max_abs_diff(&got_steps[k][i * v..(i + 1) * v], &want).0 < 1e-5,
                "{fixture}: step {k} row {i}"
            );
        }
    }
}
