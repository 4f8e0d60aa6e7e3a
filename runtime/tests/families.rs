//! Sessions, batches, fork and saved states on every architecture (Mamba-1,
//! Falcon-Mamba, Mamba-2), and states refused across architectures.

use mamba_runtime::gpu::GpuModel;
use mamba_runtime::{Batch, Model, RuntimeError, Session, Snapshot};
use mamba_testkit::shared_dir as shared;

const FIXTURES: [&str; 3] = ["mamba-tiny-hf", "falcon-mamba-tiny-hf", "mamba2-tiny-hf"];

fn convert(fixture: &str, preset: &str) -> Option<(Model, tempfile::TempDir)> {
    let dir = shared()?.join("fixtures").join(fixture);
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("m.mbin");
    let opts = mamba_convert::ConvertOptions {
        input: mamba_convert::Input::Dir(dir),
        output: out.clone(),
        preset: preset.parse().unwrap(),
        force: false,
        tokenizer: None,
        progress: false,
    };
    mamba_convert::convert(&opts).unwrap_or_else(|e| panic!("{fixture}: {e}"));
    Some((Model::open(&out).unwrap(), tmp))
}

/// A prompt of `n` ids valid for any of the fixtures' vocabularies.
fn prompt(n: usize, vocab: usize) -> Vec<u32> {
    (0..n).map(|i| ((i * 7919 + 13) % vocab) as u32).collect()
}

fn close(a: &[f32], b: &[f32], what: &str) {
    assert_eq!(a.len(), b.len(), "{what}");
    let max = a
        .iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0f32, f32::max);
    assert!(max < 1e-4, "{what}: max abs diff {max}");
}

#[test]
fn prefill_in_pieces_and_steps_equal_one_prefill() {
    for fixture in FIXTURES {
        let Some((m, _t)) = convert(fixture, "f32") else {
            return;
        };
        // 37 tokens: several of Mamba-2's chunks and a remainder in one call.
        let p = prompt(37, m.vocab_size());
        let mut whole = Session::new(&m);
        let want = whole.prefill(&p).unwrap().to_vec();
        let mut pieces = Session::new(&m);
        pieces.prefill(&p[..1]).unwrap();
        pieces.prefill(&p[1..9]).unwrap();
        pieces.prefill(&p[9..30]).unwrap();
        for &t in &p[30..36] {
            pieces.step(t).unwrap();
        }
        let got = pieces.step(p[36]).unwrap().to_vec();
        close(&got, &want, fixture);
        assert_eq!(pieces.state().n_tokens, 37);
    }
}

#[test]
fn fork_save_restore_and_batches_on_every_family() {
    for fixture in FIXTURES {
        let Some((m, tmp)) = convert(fixture, "q8_0") else {
            return;
        };
        let p = prompt(12, m.vocab_size());
        let mut a = Session::new(&m);
        a.prefill(&p).unwrap();
        let path = tmp.path().join("state");
        a.save_state(&path).unwrap();
        let fork = a.fork();
        let want = a.step(3).unwrap().to_vec();
        let mut f = fork;
        close(f.step(3).unwrap(), &want, "fork");
        let mut b = Session::new(&m);
        b.load_state(&path).unwrap();
        close(b.step(3).unwrap(), &want, "restored");
        // A batch of two gives each sequence what a session gives it.
        let mut batch = Batch::new(&m, 2);
        let v = m.vocab_size();
        let q = prompt(5, v);
        let got = batch.prefill(&[&p, &q]).unwrap().to_vec();
        let mut s = Session::new(&m);
        close(&got[..v], s.prefill(&p).unwrap(), "batch row 0");
        let mut s = Session::new(&m);
        close(&got[v..], s.prefill(&q).unwrap(), "batch row 1");
    }
}

#[test]
fn a_state_of_another_architecture_is_refused_naming_it() {
    let (Some((m1, _t1)), Some((m2, _t2))) = (
        convert("mamba-tiny-hf", "f32"),
        convert("mamba2-tiny-hf", "f32"),
    ) else {
        return;
    };
    let mut s2 = Session::new(&m2);
    s2.prefill(&prompt(4, m2.vocab_size())).unwrap();
    let snap = s2.snapshot().unwrap();
    let back = Snapshot::from_bytes(&snap.to_bytes()).unwrap();
    assert_eq!(back, snap, "a Mamba-2 snapshot round-trips");
    let mut s1 = Session::new(&m1);
    match s1.restore(snap) {
        Err(RuntimeError::BadState(why)) => assert!(why.contains("mamba2"), "{why}"),
        other => panic!("expected BadState: {other:?}"),
    }
}

#[test]
fn version_2_state_files_still_load() {
    let Some((m, _t)) = convert("mamba-tiny-hf", "f32") else {
        return;
    };
    let mut s = Session::new(&m);
    s.prefill(&prompt(6, m.vocab_size())).unwrap();
    let snap = s.snapshot().unwrap();
    let v3 = snap.to_bytes();
    // Version 2: no architecture (bytes 24..32) nor conv channels (48..56).
    let mut v2 = b"MSTATE02".to_vec();
    v2.extend_from_slice(&v3[8..24]);
    v2.extend_from_slice(&v3[32..48]);
    v2.extend_from_slice(&v3[56..v3.len() - 8]);
    let sum = mamba_format::checksum::checksum(&v2);
    v2.extend_from_slice(&sum.to_le_bytes());
    assert_eq!(Snapshot::from_bytes(&v2).unwrap(), snap);
}

#[test]
fn the_gpu_backend_refuses_the_families_it_has_no_kernels_for() {
    for (fixture, arch) in [
        ("falcon-mamba-tiny-hf", "falcon-mamba"),
        ("mamba2-tiny-hf", "mamba2"),
    ] {
        let Some((m, _t)) = convert(fixture, "f32") else {
            return;
        };
        match GpuModel::upload(&m, 0) {
            Err(RuntimeError::Device(why)) => {
                assert!(why.contains(arch) && why.contains("CPU"), "{why}")
            }
            Err(e) => panic!("{fixture}: expected a refusal naming {arch}: {e}"),
            Ok(_) => panic!("{fixture}: uploaded a model the GPU cannot run"),
        }
    }
}
