//! llama.cpp's GGUF files imported as stored score `val.txt` as llama.cpp does:
//! every file listed in a `../shared/fixtures/gguf-*/README.md` perplexity table,
//! under llama.cpp's protocol (windows of 256 from a fresh state, second half of
//! each scored), within 0.1% of llama.cpp's own figure.
//!
//! q8_0 weights multiply activations quantized with a scale per 32 values, as in
//! ggml (`kernels/src/cpu/act.rs`); with the scale per 256 values the other 32-value
//! types use, mamba-shakespeare's q8_0 file landed 0.11% from llama.cpp.

use mamba_runtime::{Model, Session};
use mamba_tests::{nll, shared_dir};

const CTX: usize = 256;

/// Mean NLL of llama.cpp's protocol: non-overlapping windows of `CTX`, each from a
/// fresh state, the predictions of positions CTX/2 + 1 .. CTX scored.
fn second_half_nll(model: &Model, ids: &[u32]) -> (f64, usize) {
    let v = model.vocab_size();
    let (mut sum, mut n) = (0.0, 0);
    for w in ids.chunks_exact(CTX) {
        let mut s = Session::new(model);
        // The first half only advances the state; the logits after positions
        // CTX/2 .. CTX-2 predict the scored tokens CTX/2 + 1 .. CTX-1.
        s.prefill(&w[..CTX / 2]).unwrap();
        let logits = s.logits_all(&w[CTX / 2..CTX - 1]).unwrap();
        for (row, &target) in logits.chunks_exact(v).zip(&w[CTX / 2 + 1..]) {
            sum += nll(row, target);
            n += 1;
        }
    }
    (sum / n as f64, n)
}

/// `(file, perplexity)` rows of a fixture README's table.
fn table(readme: &str) -> Vec<(String, f64)> {
    readme
        .lines()
        .filter_map(|l| {
            let cells: Vec<&str> = l.split('|').map(str::trim).collect();
            match cells[..] {
                ["", file, ppl, ""] if file.ends_with(".gguf") => {
                    Some((file.trim_matches('`').to_string(), ppl.parse().ok()?))
                }
                _ => None,
            }
        })
        .collect()
}

#[test]
fn imported_ggufs_score_as_llama_cpp_does() {
    let Some(shared) = shared_dir() else {
        return;
    };
    let mut checked = 0;
    for e in std::fs::read_dir(shared.join("fixtures")).unwrap() {
        let dir = e.unwrap().path();
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        if !name.starts_with("gguf-") {
            continue;
        }
        let readme = std::fs::read_to_string(dir.join("README.md")).unwrap();
        // The README names the model it was made from, `../../models/NAME`; its
        // val.txt is the text scored.
        let model_name = readme
            .split("../../models/")
            .nth(1)
            .and_then(|r| r.split(|c: char| c == '`' || c.is_whitespace()).next())
            .unwrap_or_else(|| panic!("{name}/README.md names no ../../models/ folder"));
        let text_dir = shared.join("models").join(model_name.trim_end_matches('/'));
        for (file, want) in table(&readme) {
            let path = dir.join(&file);
            let tmp = tempfile::tempdir().unwrap();
            let out = tmp.path().join("m.mbin");
            let opts = mamba_convert::ConvertOptions {
                input: mamba_convert::Input::Gguf {
                    path: path.clone(),
                    requantize: false,
                },
                output: out.clone(),
                preset: "f16".parse().unwrap(),
                force: false,
                tokenizer: None,
                progress: false,
            };
            mamba_convert::convert(&opts).unwrap_or_else(|e| panic!("{file}: {e}"));
            let model = Model::open(&out).unwrap();
            let text = std::fs::read_to_string(text_dir.join("val.txt")).unwrap();
            let ids = model.tokenizer().unwrap().encode(&text).unwrap();
            let (nll, n) = second_half_nll(&model, &ids);
            let ppl = nll.exp();
            let rel = (ppl - want).abs() / want;
            eprintln!("{file}: {ppl:.4} over {n} predictions, llama.cpp {want:.4}, rel {rel:.2e}");
            assert!(
                rel < 1e-3,
                "{file}: {ppl:.4} vs llama.cpp {want:.4} ({rel:.2e})"
            );
            checked += 1;
        }
    }
    if checked == 0 {
        assert!(
            !mamba_testkit::strict(),
            "no GGUF fixture with a perplexity table"
        );
        eprintln!("SKIPPED: no GGUF fixtures");
    }
}
