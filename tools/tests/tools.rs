//! End-to-end tests of `mamba-run`, `mamba-perplexity` and `mamba-bench`: the
//! binaries run on models converted from the shared fixtures. Run in release
//! (`cargo test --release -p mamba-tools`): perplexity of the shakespeare model is
//! slow in debug builds.

mod common;
use common::*;
use mamba_testkit::shared_dir;
use std::path::Path;

// ───────────────────────────── mamba-run ─────────────────────────────

#[test]
fn run_greedy_ids_match_the_reference() {
    let Some(model) = tiny() else { return };
    let r = reference("fixtures/mamba-tiny-hf/reference.safetensors");
    let prompt: Vec<String> = ids(&r["greedy_prompt"].1)
        .iter()
        .map(u32::to_string)
        .collect();
    let want = ids(&r["greedy_tokens"].1);
    let n = want.len().to_string();
    let out = ok(
        RUN,
        &[
            s(model),
            "--prompt-ids",
            &prompt.join(","),
            "--temp",
            "0",
            "-n",
            &n,
            "--ignore-eos",
            "--output-ids",
            "-t",
            "1",
        ],
    );
    let got: Vec<u32> = out
        .stdout
        .split_whitespace()
        .map(|t| t.parse().expect("an id"))
        .collect();
    assert_eq!(got, want);
    for key in ["prompt:", "generated:", "tokens/s", "peak RSS", "kernels:"] {
        assert!(
            out.stderr.contains(key),
            "stats lack {key}:\n{}",
            out.stderr
        );
    }
    // Sampling with a fixed seed is reproducible.
    let args = [
        s(model),
        "--prompt-ids",
        "1,2,3",
        "-n",
        "16",
        "--seed",
        "7",
        "--output-ids",
        "--ignore-eos",
        "--verify",
    ];
    let (a, b) = (ok(RUN, &args), ok(RUN, &args));
    assert_eq!(a.stdout, b.stdout);
    assert_eq!(a.stdout.split_whitespace().count(), 16);
    assert!(a.stderr.contains("verified"), "{}", a.stderr);
}

#[test]
fn run_shakespeare_greedy_text_matches_the_reference() {
    let Some(model) = shakespeare() else { return };
    let r = reference("models/mamba-shakespeare/reference.safetensors");
    let mut all = ids(&r["greedy_prompt"].1);
    all.extend(ids(&r["greedy_tokens"].1));
    let m = mamba_runtime::Model::open(model).unwrap();
    let want = m
        .tokenizer()
        .expect("embedded tokenizer")
        .decode(&all)
        .unwrap();
    assert!(
        want.starts_with("ROMEO:\nI'll tell you how:\nI'll make a thousand thousand men;"),
        "{want}"
    );
    let out = ok(
        RUN,
        &[
            s(model),
            "-p",
            "ROMEO:",
            "--temp",
            "0",
            "-n",
            "48",
            "--ignore-eos",
        ],
    );
    assert_eq!(out.stdout.strip_suffix('\n').unwrap_or(&out.stdout), want);
}

#[test]
fn run_rejects_bad_input_with_one_line() {
    let Some(model) = tiny() else { return };
    let m = s(model);
    let tmp = tempfile::tempdir().unwrap();
    let truncated = tmp.path().join("truncated.mbin");
    let bytes = std::fs::read(model).unwrap();
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    let garbage = tmp.path().join("garbage.mbin");
    std::fs::write(&garbage, b"not a model at all").unwrap();
    let ids = ["--prompt-ids", "1,2"];
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec![m, ids[0], ids[1], "--temp", "-1"], "temperature"),
        (vec![m, ids[0], ids[1], "--top-p", "0"], "top_p"),
        (vec![m, ids[0], ids[1], "--top-p", "1.5"], "top_p"),
        (vec![m, ids[0], ids[1], "--min-p", "-0.1"], "min_p"),
        (
            vec![m, ids[0], ids[1], "--repeat-penalty", "0"],
            "repeat_penalty",
        ),
        (vec![m, ids[0], ids[1], "--temp", "abc"], "abc"),
        (vec![m, ids[0], ids[1], "--no-such-flag"], "--no-such-flag"),
        (vec![m], "required"),
        (
            vec!["/no/such/model.mbin", ids[0], ids[1]],
            "/no/such/model.mbin",
        ),
        (vec![s(&truncated), ids[0], ids[1]], "truncated.mbin"),
        (vec![s(&garbage), ids[0], ids[1]], "garbage.mbin"),
        (vec![m, "--prompt-ids", "1,1000"], "1000"),
        (vec![m, "--prompt-ids", "1,x"], "'x'"),
        (vec![m, "--prompt-ids", ""], "empty"),
        (vec![m, "-p", ""], "empty"),
        (vec![m, "-p", "hello"], "tokenizer"),
        (
            vec![m, ids[0], ids[1], "--device", "cuda:0"],
            "no GPU support",
        ),
        (vec![m, ids[0], ids[1], "--device", "tpu"], "tpu"),
    ];
    for (args, needle) in cases {
        let line = fails(RUN, &args);
        assert!(
            line.contains(needle),
            "{args:?}: '{line}' does not mention '{needle}'"
        );
    }
}

// ───────────────────────────── mamba-perplexity ─────────────────────────────

fn perplexity_of(stdout: &str) -> f64 {
    let last = stdout.lines().last().expect("output");
    last.strip_prefix("perplexity: ")
        .unwrap_or_else(|| panic!("last line: {last}"))
        .parse()
        .unwrap()
}

/// `(seq, pos, nll)` lines of `--nll-out`.
fn nll_lines(path: &Path) -> Vec<(usize, usize, f64)> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            assert_eq!(f.len(), 3, "{l}");
            assert_eq!(
                f[2].split('.').nth(1).map(str::len),
                Some(6),
                "6 decimals: {l}"
            );
            (
                f[0].parse().unwrap(),
                f[1].parse().unwrap(),
                f[2].parse().unwrap(),
            )
        })
        .collect()
}

#[test]
fn perplexity_of_shakespeare_matches_the_reference() {
    let Some(model) = shakespeare() else { return };
    let shared = shared_dir().unwrap();
    let val = shared.join("models/mamba-shakespeare/val.txt");
    let r = reference("models/mamba-shakespeare/reference.safetensors");
    let tmp = tempfile::tempdir().unwrap();
    let nll_path = tmp.path().join("nll.txt");
    let out = ok(
        PPL,
        &[
            s(model),
            "-f",
            s(&val),
            "--max-tokens",
            "1024",
            "--ctx",
            "256",
            "--nll-out",
            s(&nll_path),
        ],
    );
    let ppl = perplexity_of(&out.stdout);
    assert!(
        (ppl / 78.7439 - 1.0).abs() < 1e-3,
        "perplexity {ppl}, reference 78.7439"
    );
    assert!(out.stdout.contains("scored tokens: 1020"), "{}", out.stdout);
    let (shape, want) = &r["ppl_nll"];
    assert_eq!(shape, &[4, 255]);
    let got = nll_lines(&nll_path);
    assert_eq!(got.len(), 1020);
    for (i, &(w, pos, x)) in got.iter().enumerate() {
        assert_eq!((w, pos), (i / 255, i % 255 + 1));
        let reference = want[w * 255 + pos - 1];
        assert!(
            (x - reference).abs() < 1e-3,
            "window {w} pos {pos}: {x} vs {reference}"
        );
    }
}

#[test]
fn perplexity_of_ids_file_matches_reference_logits() {
    let Some(model) = tiny() else { return };
    let r = reference("fixtures/mamba-tiny-hf/reference.safetensors");
    let (shape, input) = &r["input_ids"];
    let (b, l) = (shape[0], shape[1]);
    let logits = &r["logits"].1;
    let vocab = logits.len() / (b * l);
    let tmp = tempfile::tempdir().unwrap();
    let ids_path = tmp.path().join("ids.txt");
    let text: String = input
        .chunks(l)
        .map(|row| {
            row.iter()
                .map(|v| (*v as u32).to_string())
                .collect::<Vec<_>>()
                .join(" ")
                + "\n"
        })
        .collect();
    std::fs::write(&ids_path, format!("{text}\n")).unwrap(); // a blank line is skipped
    let nll_path = tmp.path().join("nll.txt");
    let lstr = l.to_string();
    let out = ok(
        PPL,
        &[
            s(model),
            "--ids-file",
            s(&ids_path),
            "--ctx",
            &lstr,
            "--nll-out",
            s(&nll_path),
            "-t",
            "1",
        ],
    );
    // Expected: -log_softmax of the reference logits.
    let mut sum = 0.0;
    let got = nll_lines(&nll_path);
    assert_eq!(got.len(), b * (l - 1));
    for (k, &(seq, pos, x)) in got.iter().enumerate() {
        assert_eq!((seq, pos), (k / (l - 1), k % (l - 1) + 1));
        let row = &logits[(seq * l + pos - 1) * vocab..(seq * l + pos) * vocab];
        let max = row.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let lse = max + row.iter().map(|v| (v - max).exp()).sum::<f64>().ln();
        let want = lse - row[input[seq * l + pos] as usize];
        assert!(
            (x - want).abs() < 1e-4,
            "seq {seq} pos {pos}: {x} vs {want}"
        );
        sum += want;
    }
    let ppl = perplexity_of(&out.stdout);
    let want = (sum / got.len() as f64).exp();
    assert!((ppl / want - 1.0).abs() < 1e-4, "{ppl} vs {want}");

    // Sliding windows: 5 full windows of 16 per sequence of 37 (15 + 4 × 5 scored),
    // the last token of each sequence is after the last window.
    let out = ok(
        PPL,
        &[
            s(model),
            "--ids-file",
            s(&ids_path),
            "--ctx",
            "16",
            "--stride",
            "5",
            "-t",
            "1",
        ],
    );
    assert_eq!(l, 37);
    assert!(
        out.stdout.contains(&format!("scored tokens: {}", b * 35)),
        "{}",
        out.stdout
    );
    assert!(
        out.stderr
            .contains(&format!("note: {b} token(s) after the last full window")),
        "{}",
        out.stderr
    );
    // --max-tokens counts over all sequences.
    let out = ok(
        PPL,
        &[
            s(model),
            "--ids-file",
            s(&ids_path),
            "--ctx",
            "8",
            "--max-tokens",
            "40",
            "-t",
            "1",
        ],
    );
    // 37 tokens → 4 windows of 8 (28 scored), 3 tokens → 1 short window (2 scored).
    assert!(out.stdout.contains("scored tokens: 30"), "{}", out.stdout);

    for (args, needle) in [
        (
            vec![
                s(model),
                "--ids-file",
                s(&ids_path),
                "--ctx",
                "8",
                "--stride",
                "9",
            ],
            "--stride",
        ),
        (
            vec![s(model), "--ids-file", s(&ids_path), "--ctx", "1"],
            "--ctx",
        ),
        (
            vec![s(model), "--ids-file", "/no/such/ids.txt"],
            "/no/such/ids.txt",
        ),
        (vec![s(model), "-f", s(&ids_path)], "tokenizer"),
        (vec![s(model)], "required"),
        (
            vec![s(model), "--ids-file", s(&ids_path), "--device", "hip:0"],
            "no GPU support",
        ),
    ] {
        let line = fails(PPL, &args);
        assert!(
            line.contains(needle),
            "{args:?}: '{line}' does not mention '{needle}'"
        );
    }
    std::fs::write(&ids_path, "1 2 3\n4 5 99999\n").unwrap();
    assert!(fails(PPL, &[s(model), "--ids-file", s(&ids_path)])
        .contains(":2: token id 99999 is out of range"));
}

// ───────────────────────────── mamba-bench ─────────────────────────────

fn json_rows(stdout: &str) -> Vec<serde_json::Value> {
    stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

#[test]
fn bench_prints_json_lines() {
    let Some(model) = tiny() else { return };
    for batch in ["1", "3"] {
        let out = ok(
            BENCH,
            &[
                s(model),
                "-p",
                "8",
                "-n",
                "4",
                "-r",
                "1",
                "-b",
                batch,
                "--json",
            ],
        );
        let rows = json_rows(&out.stdout);
        assert_eq!(rows.len(), 2);
        for (row, test) in rows.iter().zip(["pp8", "tg4"]) {
            for f in [
                "model",
                "type",
                "size_bytes",
                "threads",
                "batch",
                "test",
                "n_prompt",
                "n_gen",
                "tokens_per_s",
                "stddev",
                "peak_rss_bytes",
            ] {
                assert!(row.get(f).is_some(), "field {f} missing: {row}");
            }
            assert_eq!(row["test"], test);
            assert_eq!(row["model"], "tiny-hf-f32.mbin");
            assert_eq!(row["type"], "f32");
            assert_eq!(row["batch"].as_u64(), batch.parse().ok());
            assert!(row["tokens_per_s"].as_f64().unwrap() > 0.0);
        }
    }
    let out = ok(BENCH, &[s(model), "-p", "8", "-n", "4", "-r", "2"]);
    assert!(
        out.stdout.contains("| model")
            && out.stdout.contains("pp8")
            && out.stdout.contains("tg4")
            && out.stdout.contains(" ± "),
        "{}",
        out.stdout
    );
    for (args, needle) in [
        (vec![s(model), "-b", "0"], "batch"),
        (vec![s(model), "-r", "0"], "repetitions"),
        (vec![s(model), "--plot", "x.svg"], "--plot"),
        (vec![s(model), "--device", "cuda:1"], "no GPU support"),
        (vec!["/no/such/model.mbin"], "/no/such/model.mbin"),
    ] {
        let line = fails(BENCH, &args);
        assert!(
            line.contains(needle),
            "{args:?}: '{line}' does not mention '{needle}'"
        );
    }
}

/// The reference GPU workload's flags: sampled tokens, noted in the row; the
/// sweep's child processes get the same flags; bad values are refused.
#[test]
fn bench_samples_with_the_reference_workloads_flags() {
    let Some(model) = tiny() else { return };
    let sampled = [
        "--temperature",
        "0.7",
        "--topp",
        "0.9",
        "--repetition-penalty",
        "1.2",
    ];
    let run = |extra: &[&str]| {
        let mut args = vec![
            s(model),
            "--promptlen",
            "8",
            "--genlen",
            "6",
            "-r",
            "1",
            "--json",
        ];
        args.extend_from_slice(extra);
        json_rows(&ok(BENCH, &args).stdout)
    };
    let rows = run(&sampled);
    assert_eq!(rows[0]["test"], "pp8");
    assert!(rows[0].get("sampling").is_none(), "prefill samples nothing");
    let note = rows[1]["sampling"].as_str().unwrap();
    assert!(
        note.contains("temperature 0.7") && note.contains("top-p 0.9"),
        "{note}"
    );
    assert!(run(&[])[1].get("sampling").is_none(), "greedy by default");
    let mut isolated = sampled.to_vec();
    isolated.extend(["-b", "1,2", "--isolate"]);
    for row in run(&isolated) {
        assert!(
            row["sampling"]
                .as_str()
                .unwrap()
                .contains("repetition penalty 1.2"),
            "{row}"
        );
    }
    for bad in ["--topp=0", "--temperature=-1", "--repetition-penalty=0"] {
        let line = fails(BENCH, &[s(model), "-r", "1", bad]);
        assert!(line.contains("sampling"), "{bad}: {line}");
    }
}

#[test]
fn bench_sweep_writes_a_plot() {
    let Some(model) = tiny() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let svg = tmp.path().join("x.svg");
    let out = ok(
        BENCH,
        &[
            s(model),
            "-b",
            "1,2",
            "-p",
            "4",
            "-n",
            "4",
            "-r",
            "1",
            "--plot",
            s(&svg),
        ],
    );
    assert!(
        out.stdout.contains("pp4+tg4") && out.stdout.contains("peak RSS"),
        "{}",
        out.stdout
    );
    let doc = std::fs::read_to_string(&svg).unwrap();
    assert!(doc.starts_with("<svg") && doc.trim_end().ends_with("</svg>"));
    assert_eq!(doc.matches("<polyline").count(), 2);
    // Each point in its own process.
    let out = ok(
        BENCH,
        &[
            s(model),
            "-b",
            "1,2",
            "-p",
            "4",
            "-n",
            "4",
            "-r",
            "1",
            "--isolate",
            "--json",
        ],
    );
    let rows = json_rows(&out.stdout);
    assert_eq!(rows.len(), 2);
    for (row, b) in rows.iter().zip([1, 2]) {
        assert_eq!(row["batch"], b);
        assert_eq!(row["peak_rss_method"], "child");
        assert!(
            row["peak_rss_bytes"].as_u64().unwrap() > 0 && row["total_s"].as_f64().unwrap() > 0.0
        );
    }
}
