//! mamba-shakespeare (Mamba-1) and mamba2-shakespeare (Mamba-2) at F32: greedy
//! continuation token-identical to transformers', and perplexity under the
//! reference protocol within 0.1%; quantized perplexity close to F32's.

use mamba_runtime::{Model, Session};
use mamba_tests::{convert_dir, max_abs_diff, nll, read_reference, shared_dir};

/// The trained models and the start of their reference greedy continuation.
const MODELS: [(&str, &str); 2] = [
    (
        "mamba-shakespeare",
        "ROMEO:\nI'll tell you how:\nI'll make a thousand thousand men;",
    ),
    (
        "mamba2-shakespeare",
        "ROMEO:\nI have been, sir, I'll tell you what you have.",
    ),
];

fn model(name: &str, preset: &str) -> Option<(Model, std::path::PathBuf, tempfile::TempDir)> {
    let shared = shared_dir()?;
    let dir = shared.join("models").join(name);
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("m.mbin");
    convert_dir(&dir, &out, preset);
    Some((Model::open(&out).unwrap(), dir, tmp))
}

/// Mean NLL (nats) of the reference protocol: windows of `ctx` tokens from a fresh
/// state, the first token of each window not scored.
fn mean_nll(model: &Model, ids: &[u32], ctx: usize) -> (f64, Vec<f64>) {
    let v = model.vocab_size();
    let mut nlls = Vec::new();
    for w in ids.chunks(ctx) {
        let mut s = Session::new(model);
        let logits = s.logits_all(w).unwrap();
        for j in 0..w.len() - 1 {
            nlls.push(nll(&logits[j * v..(j + 1) * v], w[j + 1]));
        }
    }
    (nlls.iter().sum::<f64>() / nlls.len() as f64, nlls)
}

#[test]
fn greedy_continuation_matches_transformers() {
    for (name, text) in MODELS {
        greedy_continuation_of(name, text);
    }
}

fn greedy_continuation_of(name: &str, start: &str) {
    let Some((model, dir, _tmp)) = model(name, "f32") else {
        return;
    };
    let r = read_reference(&dir.join("reference.safetensors"));
    let prompt = r["greedy_prompt"].ids();
    let tok = model.tokenizer().expect("embedded tokenizer");
    assert_eq!(
        tok.encode("ROMEO:").unwrap(),
        prompt,
        "tokenizer disagrees with the reference encoding"
    );
    let want = r["greedy_tokens"].ids();
    // The reference rows may omit the embedding's padding rows (never produced).
    let want_logits = &r["greedy_step_logits"];
    let w = want_logits.shape[1];
    let v = model.vocab_size();
    let mut s = Session::new(&model);
    let mut logits = s.prefill(&prompt).unwrap().to_vec();
    let mut got = Vec::new();
    let mut got_logits = Vec::new();
    for _ in 0..want.len() {
        got_logits.extend_from_slice(&logits[..w]);
        let next = mamba_runtime::sampler::argmax(&logits);
        got.push(next);
        logits = s.step(next).unwrap().to_vec();
    }
    assert_eq!(got, want, "{name}");
    assert!(w <= v, "{name}: reference logits wider than the vocabulary");
    let (max, std) = max_abs_diff(&got_logits, &want_logits.f32s()[..want.len() * w]);
    eprintln!(
        "{name} greedy step logits: max abs err {max:.3e}, std {std:.3}, ratio {:.3e}",
        max / std
    );
    assert!(max / std <= 1e-4, "{name}");
    let text = tok.decode(&[prompt.clone(), got].concat()).unwrap();
    assert!(text.starts_with(start), "{name}: {text}");
}

#[test]
fn perplexity_matches_reference_protocol() {
    for (name, _) in MODELS {
        perplexity_of(name);
    }
}

fn perplexity_of(name: &str) {
    let Some((model, dir, _tmp)) = model(name, "f32") else {
        return;
    };
    let r = read_reference(&dir.join("reference.safetensors"));
    let ids = r["ppl_ids"].ids();
    // Our tokenizer must produce the reference ids from val.txt.
    let val = std::fs::read_to_string(dir.join("val.txt")).unwrap();
    let tok = model.tokenizer().unwrap();
    assert_eq!(&tok.encode(&val).unwrap()[..1024], &ids[..]);
    let (nll, per_token) = mean_nll(&model, &ids, 256);
    let ppl = nll.exp();
    let want = r["ppl"].data[0];
    eprintln!(
        "{name} F32 perplexity {ppl:.4} (reference {want:.4}, rel diff {:.2e})",
        (ppl - want).abs() / want
    );
    assert!((ppl - want).abs() / want < 1e-3, "{name}");
    let want_nll = &r["ppl_nll"].data;
    let worst = per_token
        .iter()
        .zip(want_nll)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f64::max);
    eprintln!("{name} per-token nll max abs diff {worst:.2e}");
    assert!(worst < 1e-3, "{name}");
}

#[test]
fn quantized_perplexity_stays_close() {
    for (name, _) in MODELS {
        quantized_perplexity_of(name);
    }
}

fn quantized_perplexity_of(name: &str) {
    // q8_0 must stay within 1% of F32's perplexity; q4_k_m within 10%.
    let Some(shared) = shared_dir() else { return };
    let dir = shared.join("models").join(name);
    let r = read_reference(&dir.join("reference.safetensors"));
    let ids = r["ppl_ids"].ids();
    let want = r["ppl"].data[0];
    let base = {
        let (f32_model, _, _tmp) = model(name, "f32").unwrap();
        mean_nll(&f32_model, &ids[..512], 256).0.exp()
    };
    for (preset, tol) in [("q8_0", 0.01), ("q4_k_m", 0.10)] {
        let (model, _, _tmp) = model(name, preset).unwrap();
        let ppl = mean_nll(&model, &ids[..512], 256).0.exp();
        eprintln!("{name} {preset}: ppl {ppl:.4} vs f32 {base:.4} (full reference {want:.4})");
        assert!(
            (ppl - base).abs() / base < tol,
            "{name} {preset}: {ppl} vs {base}"
        );
    }
}
