//! Golden tests on the GPU: F32 conversions of the shared fixtures (and
//! mamba-shakespeare) reproduce transformers' logits and greedy tokens
//! (`reference.safetensors`), as the CPU golden tests do.
//!
//! Needs a GPU (else `SKIPPED`, or a failure under `MAMBA_REQUIRE_GPU=1`) and the
//! shared data: `$MAMBA_SHARED`, else `<workspace>/../shared` (else `SKIPPED`, or a
//! failure under `MAMBA_REQUIRE_GPU=1` or `CI=true`). The fixtures are converted on
//! the spot by the converter library linked into this binary.

use mamba_runtime::gpu::{GpuBatch, GpuModel, GpuSession};
use mamba_runtime::sampler::argmax;
use mamba_runtime::Model;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Max abs error / std of the reference logits, as the CPU golden tests.
const REL_TOL: f32 = 1e-4;

const FIXTURES: [&str; 3] = ["mamba-tiny-hf", "mamba-tiny-ssm", "mamba-tiny-sharded-bf16"];

fn shared() -> Option<PathBuf> {
    let dir = mamba_testkit::shared_dir();
    assert!(
        dir.is_some() || !std::env::var("MAMBA_REQUIRE_GPU").is_ok_and(|v| v == "1"),
        "shared data not found (set MAMBA_SHARED); required under MAMBA_REQUIRE_GPU=1"
    );
    dir
}

/// Reference tensors as f64 (f32, f64 and i64 files).
struct Ref(HashMap<String, (Vec<usize>, Vec<f64>)>);

impl Ref {
    fn read(path: &Path) -> Ref {
        Ref(mamba_testkit::read_reference(path)
            .into_iter()
            .map(|(name, t)| (name, (t.shape, t.data)))
            .collect())
    }
    fn shape(&self, k: &str) -> &[usize] {
        &self.0[k].0
    }
    fn ids(&self, k: &str) -> Vec<u32> {
        self.0[k].1.iter().map(|&v| v as u32).collect()
    }
    fn f32s(&self, k: &str) -> Vec<f32> {
        self.0[k].1.iter().map(|&v| v as f32).collect()
    }
}

/// The GPU and an F32 conversion of `dir`, or `None` to skip.
fn load(dir: &Path) -> (Model, Ref, tempfile::TempDir) {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("model.mbin");
    let opts = mamba_convert::ConvertOptions {
        input: mamba_convert::Input::Dir(dir.to_path_buf()),
        output: out.clone(),
        preset: "f32".parse().unwrap(),
        force: true,
        tokenizer: None,
        progress: false,
    };
    mamba_convert::convert(&opts).unwrap_or_else(|e| panic!("converting {}: {e}", dir.display()));
    (
        Model::open(&out).unwrap(),
        Ref::read(&dir.join("reference.safetensors")),
        tmp,
    )
}

fn rel_err(got: &[f32], want: &[f32]) -> f32 {
    assert_eq!(got.len(), want.len(), "length mismatch");
    let max = got
        .iter()
        .zip(want)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    let n = want.len() as f64;
    let mean = want.iter().map(|&v| v as f64).sum::<f64>() / n;
    let std = (want.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n).sqrt();
    max / std as f32
}

/// Greedy decoding from the reference prompt: tokens equal, step logits close.
fn check_greedy(gpu: &GpuModel, r: &Ref, what: &str) {
    let prompt = r.ids("greedy_prompt");
    let want_tokens = r.ids("greedy_tokens");
    let want_logits = r.f32s("greedy_step_logits");
    let v = gpu.vocab_size();
    let mut s = GpuSession::new(gpu).unwrap();
    let mut logits = s.prefill(&prompt).unwrap().to_vec();
    let (mut got_tokens, mut got_logits) = (Vec::new(), Vec::new());
    for _ in 0..want_tokens.len() {
        got_logits.extend_from_slice(&logits);
        let next = argmax(&logits);
        got_tokens.push(next);
        logits = s.step(next).unwrap().to_vec();
    }
    assert_eq!(got_tokens, want_tokens, "{what}: greedy tokens differ");
    let e = rel_err(&got_logits, &want_logits[..want_tokens.len() * v]);
    eprintln!("{what}: greedy step logits error ratio {e:.3e}");
    assert!(e <= REL_TOL, "{what}: greedy step logits error {e:e}");
}

#[test]
fn fixtures_match_reference_on_gpu() {
    let Some(dev) = mamba_kernels::gpu::test_device() else {
        return;
    };
    let Some(shared) = shared() else { return };
    for fixture in FIXTURES {
        let (model, r, _tmp) = load(&shared.join("fixtures").join(fixture));
        let gpu = GpuModel::upload(&model, dev).unwrap();
        let v = gpu.vocab_size();
        let ids = r.ids("input_ids");
        let (b, l) = (r.shape("input_ids")[0], r.shape("input_ids")[1]);
        let want = r.f32s("logits");
        // Full forward of each row, and the same one token at a time.
        for row in 0..b {
            let toks = &ids[row * l..(row + 1) * l];
            let want_row = &want[row * l * v..(row + 1) * l * v];
            let got = GpuSession::new(&gpu).unwrap().logits_all(toks).unwrap();
            let e = rel_err(&got, want_row);
            eprintln!("{fixture} row {row}: logits_all error ratio {e:.3e}");
            assert!(e <= REL_TOL, "{fixture} row {row}: logits_all error {e:e}");
            let mut s = GpuSession::new(&gpu).unwrap();
            let stepped: Vec<f32> = toks
                .iter()
                .flat_map(|&t| s.step(t).unwrap().to_vec())
                .collect();
            let e = rel_err(&stepped, want_row);
            assert!(
                e <= REL_TOL,
                "{fixture} row {row}: step-by-step error {e:e}"
            );
        }
        // Both rows in one batch, with different prompt lengths, then one batched
        // step whose token and expected logits are still inside each reference row.
        let cut = [l - 1, l / 2];
        let prompts: Vec<&[u32]> = (0..b.min(2))
            .map(|row| &ids[row * l..row * l + cut[row]])
            .collect();
        let mut batch = GpuBatch::new(&gpu, prompts.len()).unwrap();
        let got = batch.prefill(&prompts).unwrap().to_vec();
        for (row, p) in prompts.iter().enumerate() {
            let at = (row * l + p.len() - 1) * v;
            let e = rel_err(&got[row * v..(row + 1) * v], &want[at..at + v]);
            assert!(e <= REL_TOL, "{fixture} batch row {row}: error {e:e}");
        }
        let next: Vec<u32> = (0..prompts.len())
            .map(|row| ids[row * l + cut[row]])
            .collect();
        let got = batch.step(&next).unwrap().to_vec();
        for (row, &c) in cut.iter().enumerate().take(prompts.len()) {
            let at = (row * l + c) * v;
            let e = rel_err(&got[row * v..(row + 1) * v], &want[at..at + v]);
            assert!(e <= REL_TOL, "{fixture} batch step row {row}: error {e:e}");
        }
        check_greedy(&gpu, &r, fixture);
    }
}

#[test]
fn shakespeare_greedy_continuation_matches_reference_on_gpu() {
    let Some(dev) = mamba_kernels::gpu::test_device() else {
        return;
    };
    let Some(shared) = shared() else { return };
    let dir = shared.join("models/mamba-shakespeare");
    if !dir.is_dir() {
        eprintln!("SKIPPED: {} not found", dir.display());
        return;
    }
    let (model, r, _tmp) = load(&dir);
    let gpu = GpuModel::upload(&model, dev).unwrap();
    check_greedy(&gpu, &r, "mamba-shakespeare");
}
