//! The GPU forward pass against the CPU one (scalar kernels) on small random models
//! of every weight type: logits of prefill, steps and `logits_all`, batches with
//! prompts of different lengths (chunked prefill), states, and errors.
//!
//! Without a GPU each test prints `SKIPPED: …` and passes (`MAMBA_REQUIRE_GPU=1`
//! makes that a failure); see `mamba_kernels::gpu::test_device`.

use mamba_format::{write_to_vec, MambaConfig, Metadata, QuantType, TensorRole, TensorSpec};
use mamba_runtime::gpu::{GpuBatch, GpuModel, GpuSession, PREFILL_TOKENS};
use mamba_runtime::{Model, RuntimeError, Session};

/// splitmix64.
struct Rng(u64);

impl Rng {
    fn uniform(&mut self, lo: f32, hi: f32) -> f32 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        lo + (hi - lo) * ((z >> 40) as f32 / (1u64 << 24) as f32)
    }
}

/// The GPU to test on after forcing the CPU side onto the scalar reference kernels.
fn setup() -> Option<usize> {
    std::env::set_var("MAMBA_FORCE_SCALAR", "1");
    mamba_kernels::gpu::test_device()
}

/// A random model whose matrices are `ty` (F16 where a block does not divide a row,
/// as the converter's fallback does), with the shapes of a small Mamba.
fn random_model(ty: QuantType, variant: usize, seed: u64) -> Model {
    let d_model = if ty.block_size() > 32 { 256 } else { 64 };
    let mut cfg = MambaConfig {
        d_model,
        n_layer: 2,
        d_state: 16,
        d_conv: 4,
        d_inner: 2 * d_model,
        dt_rank: 4,
        vocab_size: 301,
        rms_norm_eps: 1e-5,
        tie_embeddings: true,
        conv_bias: true,
        proj_bias: false,
        mixer_rms_eps: None,
    };
    if variant == 1 {
        // The less common options: biases, untied head, odd N and conv width.
        cfg = MambaConfig {
            d_state: 5,
            d_conv: 3,
            dt_rank: 3,
            tie_embeddings: false,
            conv_bias: false,
            proj_bias: true,
            mixer_rms_eps: None,
            ..cfg
        };
    }
    let mut md = Metadata::default();
    cfg.to_metadata(&mut md).unwrap();
    let mut rng = Rng(seed);
    let mut tensors: Vec<(TensorSpec, Vec<u8>)> = Vec::new();
    for def in cfg.tensor_defs() {
        let cols = *def.shape.last().unwrap() as usize;
        let n: usize = def.shape.iter().product::<u64>() as usize;
        let name = def.name.as_str();
        let (lo, hi) = if name.ends_with("mixer.A") {
            (-2.0, -0.1)
        } else if name.ends_with("dt_proj.bias") {
            (-4.0, -2.0)
        } else if name.ends_with("norm.weight")
            || name.ends_with("norm_f.weight")
            || name.ends_with("mixer.D")
        {
            (0.5, 1.5)
        } else if name.starts_with("embeddings") || name.starts_with("lm_head") {
            (-0.5, 0.5)
        } else {
            let b = 1.0 / (cols as f32).sqrt();
            (-b, b)
        };
        let vals: Vec<f32> = (0..n).map(|_| rng.uniform(lo, hi)).collect();
        let t = match def.role {
            TensorRole::F32Only => QuantType::F32,
            TensorRole::Matrix if ty.bytes_for(cols as u64).is_some() => ty,
            TensorRole::Matrix => QuantType::F16,
        };
        let mut bytes = vec![0u8; t.bytes_for(n as u64).unwrap() as usize];
        for (src, dst) in vals
            .chunks(cols)
            .zip(bytes.chunks_mut(t.bytes_for(cols as u64).unwrap() as usize))
        {
            t.quantize_row(src, dst);
        }
        tensors.push((TensorSpec::new(def.name.clone(), t, &def.shape), bytes));
    }
    let refs: Vec<(TensorSpec, &[u8])> = tensors
        .iter()
        .map(|(s, b)| (s.clone(), b.as_slice()))
        .collect();
    Model::from_bytes(&write_to_vec(&md, &refs).unwrap()).unwrap()
}

fn tokens(n: usize, vocab: usize, seed: usize) -> Vec<u32> {
    (0..n)
        .map(|i| ((i * 7919 + seed * 104_729 + 13) % vocab) as u32)
        .collect()
}

/// Max |a - b| over the standard deviation of `b` (the golden tests' measure).
fn rel_err(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    let max = a
        .iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0f32, f32::max);
    let mean = b.iter().map(|&v| v as f64).sum::<f64>() / b.len() as f64;
    let var = b.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / b.len() as f64;
    max / (var.sqrt() as f32).max(1e-12)
}

const TOL: f32 = 1e-4;

#[test]
fn gpu_session_matches_cpu_for_every_weight_type() {
    let Some(dev) = setup() else { return };
    for (i, ty) in QuantType::ALL.into_iter().enumerate() {
        for variant in [0, 1] {
            if variant == 1 && ty.block_size() > 32 {
                continue; // one K-quant model per type is enough (d_model 256)
            }
            let model = random_model(ty, variant, 100 + i as u64);
            let gpu = GpuModel::upload(&model, dev).unwrap();
            let v = model.vocab_size();
            let prompt = tokens(37, v, i);
            let what = format!("{ty} variant {variant}");

            // Every position's logits.
            let want = Session::new(&model).logits_all(&prompt).unwrap();
            let got = GpuSession::new(&gpu).unwrap().logits_all(&prompt).unwrap();
            let e = rel_err(&got, &want);
            assert!(e <= TOL, "{what}: logits_all error {e:e}");

            // Prefill, then single steps.
            let mut cpu = Session::new(&model);
            let mut g = GpuSession::new(&gpu).unwrap();
            let e = rel_err(
                g.prefill(&prompt[..20]).unwrap(),
                cpu.prefill(&prompt[..20]).unwrap(),
            );
            assert!(e <= TOL, "{what}: prefill error {e:e}");
            for &t in &prompt[20..26] {
                let e = rel_err(g.step(t).unwrap(), cpu.step(t).unwrap());
                assert!(e <= TOL, "{what}: step error {e:e}");
            }
            // The states agree too.
            let (gs, cs) = (g.state().unwrap(), cpu.state().clone());
            assert_eq!(gs.n_tokens, cs.n_tokens);
            let e = rel_err(gs.ssm(), cs.ssm()).max(rel_err(gs.conv(), cs.conv()));
            assert!(e <= TOL, "{what}: state error {e:e}");
        }
    }
}

#[test]
fn gpu_batch_matches_single_sequences_with_chunked_prefill() {
    let Some(dev) = setup() else { return };
    let model = random_model(QuantType::Q8_0, 0, 7);
    let gpu = GpuModel::upload(&model, dev).unwrap();
    let v = model.vocab_size();
    // Lengths that need several chunks, finishing in different ones.
    let prompts: Vec<Vec<u32>> = [1, 2100, PREFILL_TOKENS + 900, 3]
        .iter()
        .enumerate()
        .map(|(i, &n)| tokens(n, v, i))
        .collect();
    let refs: Vec<&[u32]> = prompts.iter().map(|p| p.as_slice()).collect();
    let mut batch = GpuBatch::new(&gpu, prompts.len()).unwrap();
    let got = batch.prefill(&refs).unwrap().to_vec();
    // Decode steps replay the first one's recorded graph (new tokens each time).
    let steps = [[1u32, 2, 3, 4], [5, 6, 7, 8], [9, 10, 11, 12]];
    let got_steps: Vec<Vec<f32>> = steps
        .iter()
        .map(|s| batch.step(s).unwrap().to_vec())
        .collect();
    let graphs = std::env::var("MAMBA_GPU_GRAPHS").map_or(true, |v| v != "0");
    assert_eq!(
        batch.graph_status(),
        Ok(graphs),
        "decode steps replay a graph"
    );
    for (i, p) in prompts.iter().enumerate() {
        let mut s = Session::new(&model);
        let e = rel_err(&got[i * v..(i + 1) * v], s.prefill(p).unwrap());
        assert!(
            e <= TOL,
            "prefill of sequence {i} ({} tokens): error {e:e}",
            p.len()
        );
        for (k, st) in steps.iter().enumerate() {
            let e = rel_err(&got_steps[k][i * v..(i + 1) * v], s.step(st[i]).unwrap());
            assert!(e <= TOL, "step {k} of sequence {i}: error {e:e}");
        }
        assert_eq!(batch.n_tokens(i), (p.len() + steps.len()) as u64);
    }
}

#[test]
fn cpu_state_continues_on_the_gpu() {
    let Some(dev) = setup() else { return };
    let model = random_model(QuantType::Q4_K, 0, 8);
    let gpu = GpuModel::upload(&model, dev).unwrap();
    let prompt = tokens(30, model.vocab_size(), 3);
    let mut cpu = Session::new(&model);
    cpu.prefill(&prompt).unwrap();
    let mut g = GpuSession::new(&gpu).unwrap();
    g.set_state(cpu.state()).unwrap();
    let e = rel_err(g.step(11).unwrap(), cpu.step(11).unwrap());
    assert!(e <= TOL, "step after a state handed over: error {e:e}");
    // A state of another model is refused.
    let other = random_model(QuantType::F32, 0, 9);
    assert!(matches!(
        g.set_state(&other.new_state()),
        Err(RuntimeError::BadState(_))
    ));
}

#[test]
fn a_cpu_snapshot_resumes_exactly_on_the_gpu() {
    let Some(dev) = setup() else { return };
    let model = random_model(QuantType::Q8_0, 0, 12);
    let gpu = GpuModel::upload(&model, dev).unwrap();
    let prompt = tokens(25, model.vocab_size(), 4);
    let mut cpu = Session::new(&model);
    cpu.prefill(&prompt).unwrap();
    let snap = cpu.snapshot().unwrap();
    let mut g = GpuSession::new(&gpu).unwrap();
    g.prefill(&[1, 2]).unwrap();
    g.restore(snap.clone()).unwrap();
    // The restored logits are the ones sampled next, exactly.
    assert_eq!(g.logits(), cpu.logits());
    assert_eq!(g.history(), &prompt[..]);
    let e = rel_err(g.step(11).unwrap(), cpu.step(11).unwrap());
    assert!(e <= TOL, "step after a restored snapshot: error {e:e}");
    // And back: the GPU's snapshot restores on the CPU.
    let mut back = Session::new(&model);
    back.restore(g.snapshot().unwrap()).unwrap();
    let e = rel_err(back.step(5).unwrap(), cpu.step(5).unwrap());
    assert!(e <= TOL, "step after a GPU snapshot: error {e:e}");
    // A snapshot of another model is refused, and changes nothing.
    let other = random_model(QuantType::F32, 1, 13);
    let mut o = Session::new(&other);
    o.prefill(&[1, 2]).unwrap();
    let before = g.snapshot().unwrap();
    assert!(matches!(
        g.restore(o.snapshot().unwrap()),
        Err(RuntimeError::BadState(_))
    ));
    assert_eq!(g.snapshot().unwrap(), before);
}

#[test]
fn gpu_errors_and_memory_report() {
    let Some(dev) = setup() else { return };
    let model = random_model(QuantType::Q4_0, 0, 10);
    let gpu = GpuModel::upload(&model, dev).unwrap();
    let mut batch = GpuBatch::new(&gpu, 2).unwrap();
    batch.prefill(&[&[1, 2, 3], &[4, 5]]).unwrap();
    let before: Vec<_> = (0..2).map(|i| batch.state(i).unwrap()).collect();
    assert!(matches!(batch.step(&[1]), Err(RuntimeError::Batch(_))));
    assert!(matches!(
        batch.prefill(&[&[1], &[]]),
        Err(RuntimeError::Batch(_))
    ));
    assert!(matches!(
        batch.step(&[1, 301]),
        Err(RuntimeError::TokenOutOfRange { id: 301, .. })
    ));
    // A bad id far past the first chunk is refused before any chunk runs.
    let mut long: Vec<u32> = (0..PREFILL_TOKENS as u32 + 7).map(|i| i % 300).collect();
    *long.last_mut().unwrap() = 301;
    assert!(matches!(
        batch.prefill(&[&[1, 2], &long]),
        Err(RuntimeError::TokenOutOfRange { id: 301, .. })
    ));
    for (i, want) in before.iter().enumerate() {
        assert_eq!(
            &batch.state(i).unwrap(),
            want,
            "a refused call changed sequence {i}"
        );
    }
    let mut s = GpuSession::new(&gpu).unwrap();
    assert!(matches!(s.prefill(&[]), Err(RuntimeError::EmptyPrompt)));
    s.prefill(&[1, 2, 3]).unwrap();
    let m = gpu.memory().unwrap();
    assert!(
        m.allocated >= gpu.weights_bytes() && m.peak >= m.allocated && m.total >= m.free,
        "{m:?}"
    );
    assert!(
        GpuModel::upload(&model, 1 << 20).is_err(),
        "a device index past the last"
    );
}

#[test]
fn upload_without_gpu_support_is_a_clear_error() {
    if mamba_kernels::gpu::platform().is_some() {
        return;
    }
    let model = random_model(QuantType::F16, 0, 11);
    let e = GpuModel::upload(&model, 0)
        .err()
        .expect("no GPU support in this build")
        .to_string();
    assert!(e.contains("no GPU support"), "{e}");
}
