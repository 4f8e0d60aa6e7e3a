//! `mamba-bench`: llama-bench-style throughput tables, and batch sweeps with peak
//! memory per batch size.
//!
//! Tests (each repeated `-r` times; t/s reported as mean ± sample standard
//! deviation over the repetitions):
//!
//! - `ppP`: prefill of `B` prompts of `P` tokens from a zero state
//!   ([`Session::prefill`] for `B` = 1, [`Batch::prefill`] otherwise);
//!   t/s = B·P / time.
//! - `tgN`: after a 1-token prompt per sequence (not timed), `N` decode steps of all
//!   `B` sequences, each feeding the argmax of the previous logits; t/s = B·N / time.
//! - sweep (`-b` with several sizes, or `--sweep`): per batch size, prompt `P` then
//!   `N` decode steps for all `B` sequences, timed together; reports prompt,
//!   decode and total time and the process's peak RSS during that batch size
//!   (`VmHWM`, reset through `/proc/self/clear_refs`, or measured in a child
//!   process running `--single-batch B` where that is not possible or with
//!   `--isolate`).
//!
//! Generated tokens are greedy unless sampling flags say otherwise
//! (`--temperature`, `--top-p`/`--topp`, `--top-k`, `--repetition-penalty`,
//! `--seed`: the sampler of `mamba-run`, one per sequence, on the host, timed with
//! the decode); the reference GPU workload is `--temperature 0.7 --topp 0.9
//! --repetition-penalty 1.2`.
//!
//! Prompt tokens are pseudo-random (PCG32, fixed seed), below the vocabulary size.
//! A short warm-up (a few tokens) runs before the measurements.

use crate::cli;
use crate::device::Device;
use crate::rss;
use crate::svg::{Series, TwoAxisPlot};
use anyhow::{bail, ensure, Context, Result};
use clap::Parser;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use mamba_runtime::gpu::{GpuBatch, GpuModel, GpuSession};
use mamba_runtime::sampler::{argmax, Pcg32};
use mamba_runtime::{Batch, Model, Sampler, SamplerParams, Session};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Batch sizes of `--sweep` when `-b` is not given.
pub const DEFAULT_SWEEP: [usize; 6] = [1, 2, 4, 8, 16, 32];

/// Seed of the prompt tokens.
const PROMPT_SEED: u64 = 0x006d_616d_6261;

/// Command line of `mamba-bench`.
#[derive(Parser, Debug, Clone)]
#[command(
    name = "mamba-bench",
    version,
    about = "Benchmark a Mamba model (.mbin): prompt and generation throughput, batch sweeps",
    long_about = "Benchmark a Mamba model (.mbin): prompt and generation throughput, batch sweeps.\n\n\
        ppP: prefill of B prompts of P tokens (t/s = B*P/time). tgN: N decode steps of B sequences \
        after a 1-token prompt, feeding greedy tokens (t/s = B*N/time). Values are mean ± sample \
        standard deviation over the repetitions. Sweep mode (several -b values or --sweep): per batch \
        size, prompt P then N decode steps, total time and peak RSS."
)]
pub struct BenchArgs {
    /// Model file (.mbin).
    pub model: PathBuf,
    /// Prompt tokens per sequence (pp test), >= 0; 0 skips the pp test.
    #[arg(
        short = 'p',
        long = "n-prompt",
        visible_alias = "promptlen",
        value_name = "P",
        default_value_t = 512
    )]
    pub n_prompt: usize,
    /// Generated tokens per sequence (tg test), >= 0; 0 skips the tg test.
    #[arg(
        short = 'n',
        long = "n-gen",
        visible_alias = "genlen",
        value_name = "N",
        default_value_t = 128
    )]
    pub n_gen: usize,
    /// Sampling temperature of the generated tokens, 0-100; 0 (with no repetition
    /// penalty) is greedy.
    #[arg(long, value_name = "T", default_value_t = 0.0)]
    pub temperature: f32,
    /// Nucleus sampling: keep the smallest set of tokens whose probability reaches P, (0, 1].
    #[arg(
        long = "top-p",
        visible_alias = "topp",
        value_name = "P",
        default_value_t = 1.0
    )]
    pub top_p: f32,
    /// Keep only the K most likely tokens, 0 = all.
    #[arg(long = "top-k", value_name = "K", default_value_t = 0)]
    pub top_k: usize,
    /// Repetition penalty over the last 64 tokens of each sequence, > 0; 1 = none.
    #[arg(long = "repetition-penalty", value_name = "R", default_value_t = 1.0)]
    pub repetition_penalty: f32,
    /// Sampling seed (sequence i uses seed + i).
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub seed: u64,
    /// Batch sizes (sequences run together), comma separated (no empty items), each at
    /// least 1; several values run a batch sweep. [default: 1; with --sweep: 1,2,4,8,16,32]
    #[arg(short = 'b', long = "batch", value_name = "B,B,...")]
    pub batch: Option<cli::List<usize>>,
    #[arg(short = 't', long, value_name = "N", help = cli::THREADS_HELP, value_parser = cli::parse_threads)]
    pub threads: Option<usize>,
    /// Repetitions of each test, >= 1.
    #[arg(
        short = 'r',
        long = "repetitions",
        value_name = "R",
        default_value_t = 3
    )]
    pub repetitions: usize,
    /// Device: cpu, or GPU N as hip:N, cuda:N or gpu:N (needs a build with the `gpu` feature).
    #[arg(long, value_name = "D", default_value = "cpu")]
    pub device: Device,
    /// Print one JSON object per row (JSON lines) instead of the table.
    #[arg(long)]
    pub json: bool,
    /// Batch sweep even with a single -b value (prompt then generation, total time and
    /// peak memory per batch size).
    #[arg(long)]
    pub sweep: bool,
    /// Write an SVG plot of a sweep (time and peak memory against batch size): written
    /// to a temporary file beside FILE and renamed into place, replacing a regular
    /// file; never the model or a non-regular file (checked before the benchmark).
    #[arg(long, value_name = "FILE.svg")]
    pub plot: Option<PathBuf>,
    /// Measure each sweep point in a child process (exact per-batch peak RSS).
    #[arg(long)]
    pub isolate: bool,
    /// Internal: measure one sweep point and print it as JSON (used by the sweep).
    #[arg(long, hide = true, value_name = "B")]
    pub single_batch: Option<usize>,
}

/// One result row (one JSON line with `--json`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct BenchRow {
    /// Model file name.
    pub model: String,
    /// `general.quantization` of the file (`?` if absent).
    #[serde(rename = "type")]
    pub ty: String,
    /// Model file size.
    pub size_bytes: u64,
    /// CPU threads.
    pub threads: usize,
    /// Sequences run together.
    pub batch: usize,
    /// `pp512`, `tg128`, or `pp512+tg128` for a sweep point.
    pub test: String,
    /// Prompt tokens per sequence.
    pub n_prompt: usize,
    /// Generated tokens per sequence.
    pub n_gen: usize,
    /// Mean tokens per second (all sequences together).
    pub tokens_per_s: f64,
    /// Sample standard deviation of tokens per second over the repetitions.
    pub stddev: f64,
    /// Peak RSS: the process's so far for pp/tg rows, the sweep point's own for sweeps.
    pub peak_rss_bytes: Option<u64>,
    /// Peak device memory (GPU runs only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_memory_bytes: Option<u64>,
    /// How generated tokens were chosen, when not greedy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sampling: Option<String>,
    /// Sweep points only: timings and how the peak was measured.
    #[serde(default, flatten, skip_serializing_if = "Option::is_none")]
    pub sweep: Option<SweepTimes>,
}

/// The timings of a sweep point (means over the repetitions, seconds).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct SweepTimes {
    /// Prompt (prefill) time.
    pub prompt_s: f64,
    /// Decode time.
    pub decode_s: f64,
    /// Prompt + decode.
    pub total_s: f64,
    /// Sample standard deviation of the total.
    pub total_s_stddev: f64,
    /// Prompt tokens per second.
    pub pp_tokens_per_s: f64,
    /// Generated tokens per second.
    pub tg_tokens_per_s: f64,
    /// `clear_refs` (in-process peak reset) or `child` (own process).
    pub peak_rss_method: String,
}

/// Mean and sample standard deviation (0 for fewer than 2 values).
pub fn mean_std(v: &[f64]) -> (f64, f64) {
    let n = v.len() as f64;
    let mean = v.iter().sum::<f64>() / n;
    if v.len() < 2 {
        return (mean, 0.0);
    }
    let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0);
    (mean, var.sqrt())
}

/// `b` pseudo-random prompts of `p` tokens, each < `vocab`.
pub fn random_prompts(b: usize, p: usize, vocab: usize, seed: u64) -> Vec<Vec<u32>> {
    let mut rng = Pcg32::new(seed);
    (0..b)
        .map(|_| (0..p).map(|_| rng.next_u32() % vocab as u32).collect())
        .collect()
}

/// The model the measurements run: on the CPU, or uploaded to a GPU.
#[derive(Clone, Copy)]
pub enum Engine<'m> {
    /// The CPU forward pass.
    Cpu(&'m Model),
    /// The GPU forward pass.
    Gpu(&'m GpuModel),
}

impl<'m> Engine<'m> {
    fn vocab_size(self) -> usize {
        match self {
            Engine::Cpu(m) => m.vocab_size(),
            Engine::Gpu(g) => g.vocab_size(),
        }
    }
}

/// One sequence or several, on the CPU or a GPU, behind one interface.
enum Runner<'m> {
    One(Session<'m>),
    Many(Batch<'m>),
    GpuOne(GpuSession<'m>),
    GpuMany(GpuBatch<'m>),
}

impl<'m> Runner<'m> {
    fn new(engine: Engine<'m>, b: usize) -> Result<Runner<'m>> {
        Ok(match (engine, b) {
            (Engine::Cpu(m), 1) => Runner::One(Session::new(m)),
            (Engine::Cpu(m), _) => Runner::Many(Batch::new(m, b)),
            (Engine::Gpu(g), 1) => Runner::GpuOne(GpuSession::new(g)?),
            (Engine::Gpu(g), _) => Runner::GpuMany(GpuBatch::new(g, b)?),
        })
    }

    /// Logits `(B, vocab)` after each prompt.
    fn prefill(&mut self, prompts: &[Vec<u32>]) -> Result<&[f32]> {
        Ok(match self {
            Runner::One(s) => s.prefill(&prompts[0])?,
            Runner::Many(b) => b.prefill(&prompts.iter().map(Vec::as_slice).collect::<Vec<_>>())?,
            Runner::GpuOne(s) => s.prefill(&prompts[0])?,
            Runner::GpuMany(b) => {
                b.prefill(&prompts.iter().map(Vec::as_slice).collect::<Vec<_>>())?
            }
        })
    }

    /// Logits `(B, vocab)` after one more token per sequence.
    fn step(&mut self, tokens: &[u32]) -> Result<&[f32]> {
        Ok(match self {
            Runner::One(s) => s.step(tokens[0])?,
            Runner::Many(b) => b.step(tokens)?,
            Runner::GpuOne(s) => s.step(tokens[0])?,
            Runner::GpuMany(b) => b.step(tokens)?,
        })
    }
}

/// How each sequence's next token is chosen: the argmax, or a sampler per
/// sequence with the sequence's tokens so far (for the repetition penalty).
enum Picker {
    Greedy,
    Sample(Vec<(Sampler, Vec<u32>)>),
}

impl Picker {
    fn new(params: &SamplerParams, prompts: &[Vec<u32>]) -> Result<Picker> {
        if params.temperature == 0.0 && params.repeat_penalty == 1.0 {
            return Ok(Picker::Greedy);
        }
        let seqs = prompts.iter().enumerate().map(|(i, p)| {
            let params = SamplerParams {
                seed: params.seed.wrapping_add(i as u64),
                ..params.clone()
            };
            Ok((Sampler::new(params)?, p.clone()))
        });
        Ok(Picker::Sample(seqs.collect::<Result<_>>()?))
    }

    /// The next token of every sequence from its logits row.
    fn pick(&mut self, logits: &[f32], vocab: usize, out: &mut Vec<u32>) {
        out.clear();
        match self {
            Picker::Greedy => out.extend(logits.chunks_exact(vocab).map(argmax)),
            Picker::Sample(seqs) => {
                for ((sampler, history), row) in seqs.iter_mut().zip(logits.chunks_exact(vocab)) {
                    let t = sampler.sample(row, history);
                    history.push(t);
                    out.push(t);
                }
            }
        }
    }
}

/// `n` decode steps from `logits`, feeding the picked tokens each time; returns
/// seconds (choosing the tokens included).
fn decode(
    runner: &mut Runner<'_>,
    first_logits: Vec<f32>,
    vocab: usize,
    n: usize,
    picker: &mut Picker,
) -> Result<f64> {
    let mut toks = Vec::new();
    picker.pick(&first_logits, vocab, &mut toks);
    let t0 = Instant::now();
    for _ in 0..n {
        let logits = runner.step(&toks)?;
        let mut next = Vec::with_capacity(toks.len());
        picker.pick(logits, vocab, &mut next);
        toks = next;
    }
    Ok(t0.elapsed().as_secs_f64())
}

/// Seconds to prefill `b` prompts of `p` tokens.
pub fn time_pp(model: Engine<'_>, b: usize, p: usize) -> Result<f64> {
    let prompts = random_prompts(b, p, model.vocab_size(), PROMPT_SEED);
    let mut runner = Runner::new(model, b)?;
    let t0 = Instant::now();
    runner.prefill(&prompts)?;
    Ok(t0.elapsed().as_secs_f64())
}

/// Seconds for `n` decode steps of `b` sequences after a 1-token prompt (not timed),
/// choosing tokens as `sampling` says.
pub fn time_tg(model: Engine<'_>, b: usize, n: usize, sampling: &SamplerParams) -> Result<f64> {
    let prompts = random_prompts(b, 1, model.vocab_size(), PROMPT_SEED);
    let mut picker = Picker::new(sampling, &prompts)?;
    let mut runner = Runner::new(model, b)?;
    let logits = runner.prefill(&prompts)?.to_vec();
    decode(&mut runner, logits, model.vocab_size(), n, &mut picker)
}

/// One sweep repetition: (prompt seconds, decode seconds) for `b` sequences.
pub fn time_sweep(
    model: Engine<'_>,
    b: usize,
    p: usize,
    n: usize,
    sampling: &SamplerParams,
) -> Result<(f64, f64)> {
    let prompts = random_prompts(b, p, model.vocab_size(), PROMPT_SEED);
    let mut picker = Picker::new(sampling, &prompts)?;
    let mut runner = Runner::new(model, b)?;
    let t0 = Instant::now();
    let logits = runner.prefill(&prompts)?.to_vec();
    let tp = t0.elapsed().as_secs_f64();
    Ok((
        tp,
        decode(&mut runner, logits, model.vocab_size(), n, &mut picker)?,
    ))
}

/// A few tokens through the model: maps the weights in and starts the threads.
fn warmup(model: Engine<'_>, p: usize) -> Result<()> {
    let prompt = random_prompts(1, p.clamp(1, 8), model.vocab_size(), PROMPT_SEED ^ 1);
    let mut r = Runner::new(model, 1)?;
    r.prefill(&prompt)?;
    r.step(&[0])?;
    Ok(())
}

/// What every row repeats about the model and setup.
#[derive(Clone, Debug)]
struct Setup {
    model: String,
    ty: String,
    size_bytes: u64,
    threads: usize,
}

impl Setup {
    fn row(
        &self,
        batch: usize,
        test: String,
        n_prompt: usize,
        n_gen: usize,
        tps: &[f64],
    ) -> BenchRow {
        let (tokens_per_s, stddev) = mean_std(tps);
        BenchRow {
            model: self.model.clone(),
            ty: self.ty.clone(),
            size_bytes: self.size_bytes,
            threads: self.threads,
            batch,
            test,
            n_prompt,
            n_gen,
            tokens_per_s,
            stddev,
            peak_rss_bytes: rss::peak_rss_bytes(),
            device_memory_bytes: None,
            sampling: None,
            sweep: None,
        }
    }
}

/// Measures one sweep point in this process.
fn sweep_point(
    model: Engine<'_>,
    setup: &Setup,
    args: &BenchArgs,
    b: usize,
    method: &str,
    progress: &ProgressBar,
) -> Result<BenchRow> {
    let (p, n) = (args.n_prompt, args.n_gen);
    let (mut tp, mut td, mut tot, mut tps) = (vec![], vec![], vec![], vec![]);
    for _ in 0..args.repetitions {
        let (a, d) = time_sweep(model, b, p, n, &args.sampling())?;
        tp.push(a);
        td.push(d);
        tot.push(a + d);
        tps.push(b as f64 * (p as f64 + n as f64) / (a + d));
        progress.inc(1);
    }
    let mut row = setup.row(b, format!("pp{p}+tg{n}"), p, n, &tps);
    row.device_memory_bytes = device_peak(model);
    row.sampling = args.sampling_label();
    let (prompt_s, decode_s, (total_s, total_s_stddev)) =
        (mean_std(&tp).0, mean_std(&td).0, mean_std(&tot));
    row.sweep = Some(SweepTimes {
        prompt_s,
        decode_s,
        total_s,
        total_s_stddev,
        pp_tokens_per_s: b as f64 * p as f64 / prompt_s,
        tg_tokens_per_s: if n == 0 {
            0.0
        } else {
            b as f64 * n as f64 / decode_s
        },
        peak_rss_method: method.into(),
    });
    Ok(row)
}

/// Peak device memory so far (GPU runs only).
fn device_peak(model: Engine<'_>) -> Option<u64> {
    match model {
        Engine::Cpu(_) => None,
        Engine::Gpu(g) => Some(g.peak_memory_used()),
    }
}

/// Measures one sweep point in a child process (`--single-batch B`).
fn sweep_point_child(args: &BenchArgs, threads: usize, b: usize) -> Result<BenchRow> {
    let exe = std::env::current_exe().context("cannot find the mamba-bench executable")?;
    let out = std::process::Command::new(exe)
        .arg(&args.model)
        .args([
            "-p",
            &args.n_prompt.to_string(),
            "-n",
            &args.n_gen.to_string(),
            "-r",
            &args.repetitions.to_string(),
        ])
        .args([
            "-t",
            &threads.to_string(),
            "--device",
            &args.device.to_string(),
            "--single-batch",
            &b.to_string(),
        ])
        .args([
            "--temperature",
            &args.temperature.to_string(),
            "--top-p",
            &args.top_p.to_string(),
            "--top-k",
            &args.top_k.to_string(),
            "--repetition-penalty",
            &args.repetition_penalty.to_string(),
            "--seed",
            &args.seed.to_string(),
        ])
        .output()
        .context("cannot start a child process")?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        bail!(
            "batch size {b}: child process failed: {}",
            err.lines().last().unwrap_or("(no message)")
        );
    }
    let text = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(text.trim())
        .with_context(|| format!("batch size {b}: bad child output '{}'", text.trim()))
}

/// A markdown table with padded columns (numbers right-aligned).
pub fn markdown_table(headers: &[&str], right: &[bool], rows: &[Vec<String>]) -> String {
    let widths: Vec<usize> = (0..headers.len())
        .map(|c| {
            rows.iter()
                .map(|r| r[c].chars().count())
                .chain([headers[c].len(), 3])
                .max()
                .unwrap_or(3)
        })
        .collect();
    let line = |cells: Vec<String>| format!("| {} |\n", cells.join(" | "));
    let pad = |s: &str, c: usize| {
        if right[c] {
            format!("{s:>w$}", w = widths[c])
        } else {
            format!("{s:<w$}", w = widths[c])
        }
    };
    let mut out = line(headers.iter().enumerate().map(|(c, h)| pad(h, c)).collect());
    out += &line(
        (0..headers.len())
            .map(|c| {
                if right[c] {
                    format!("{}:", "-".repeat(widths[c] - 1))
                } else {
                    "-".repeat(widths[c])
                }
            })
            .collect(),
    );
    for r in rows {
        out += &line(r.iter().enumerate().map(|(c, s)| pad(s, c)).collect());
    }
    out
}

fn table(rows: &[BenchRow]) -> String {
    let sweep = rows.iter().any(|r| r.sweep.is_some());
    let mut headers = vec!["model", "size", "type", "threads", "batch", "test"];
    let mut right = vec![false, true, false, true, true, true];
    if sweep {
        headers.extend(["pp t/s", "tg t/s", "total s", "t/s", "peak RSS"]);
        right.extend([true; 5]);
    } else {
        headers.push("t/s");
        right.push(true);
    }
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            let mut c = vec![
                r.model.clone(),
                cli::mib(r.size_bytes),
                r.ty.clone(),
                r.threads.to_string(),
                r.batch.to_string(),
                r.test.clone(),
            ];
            let tps = format!("{:.2} ± {:.2}", r.tokens_per_s, r.stddev);
            match &r.sweep {
                Some(s) => c.extend([
                    format!("{:.2}", s.pp_tokens_per_s),
                    format!("{:.2}", s.tg_tokens_per_s),
                    format!("{:.3} ± {:.3}", s.total_s, s.total_s_stddev),
                    tps,
                    r.peak_rss_bytes.map_or("n/a".into(), cli::mib),
                ]),
                None => c.push(tps),
            }
            c
        })
        .collect();
    markdown_table(&headers, &right, &cells)
}

/// The sweep plot: total time and peak RSS against batch size.
pub fn sweep_plot(rows: &[BenchRow]) -> TwoAxisPlot {
    let r0 = &rows[0];
    TwoAxisPlot {
        title: format!(
            "{} ({}): pp{}+tg{}, {} threads",
            r0.model, r0.ty, r0.n_prompt, r0.n_gen, r0.threads
        ),
        x_label: "batch size (sequences)".into(),
        xs: rows.iter().map(|r| r.batch as f64).collect(),
        left: Series {
            label: "total time (s)".into(),
            ys: rows
                .iter()
                .map(|r| r.sweep.as_ref().map_or(f64::NAN, |s| s.total_s))
                .collect(),
            color: "#1f77b4",
        },
        right: Series {
            label: "peak RSS (MiB)".into(),
            ys: rows
                .iter()
                .map(|r| {
                    r.peak_rss_bytes
                        .map_or(f64::NAN, |b| b as f64 / (1024.0 * 1024.0))
                })
                .collect(),
            color: "#d62728",
        },
    }
}

fn progress_bar(len: u64) -> ProgressBar {
    let pb = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr());
    pb.set_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} {msg} [{elapsed}]")
            .expect("valid template"),
    );
    pb
}

fn file_name(path: &Path) -> String {
    path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}

/// Host memory that `b` sequences with prompts of `p` tokens need at most, in
/// bytes, in any test: the prompts, the states, the logits (a few `(B, vocab)`
/// copies) and the activations of one forward call (at most `PREFILL_CHUNK`
/// tokens in prefill, `B` in a decode step). Errors when a size overflows.
pub fn memory_needed(
    config: &mamba_format::ModelConfig,
    state_bytes: u64,
    b: usize,
    p: usize,
) -> Result<u64> {
    use crate::mem::{mul, sum};
    let (b, p) = (b as u64, p.max(1) as u64);
    let c = |v: usize| v as u64;
    // Mamba-1: x, z, dt, y (+ x_proj's R + 2N); Mamba-2: z, xBC, y, the gated y
    // (+ dt per head): both within 8 × d_inner + 2 × conv channels.
    let per_token = 4
        * (4 * c(config.d_model())
            + 8 * c(config.d_inner())
            + 2 * c(config.conv_channels())
            + 4 * c(config.d_state()));
    let chunk = c(mamba_runtime::session::PREFILL_CHUNK);
    let tokens = mul(b, p, "batch × prompt tokens")?;
    let forward_tokens = tokens.min(chunk).max(b);
    sum(
        &[
            mul(tokens, 4, "the prompts")?,
            mul(b, 64, "the batch")?,
            mul(b, state_bytes, "the states")?,
            mul(
                mul(b, 4 * 4, "the logits")?,
                c(config.vocab_size()),
                "the logits",
            )?,
            mul(forward_tokens, per_token, "the activations")?,
        ],
        "the benchmark",
    )
}

/// Refuses a batch size and prompt length whose buffers cannot fit in memory.
fn ensure_memory(model: &Model, b: usize, p: usize) -> Result<()> {
    let state = model.new_state().size_bytes() as u64;
    let needed = memory_needed(model.config(), state, b, p)
        .with_context(|| format!("batch size {b} with {p}-token prompts"))?;
    crate::mem::ensure_fits(needed, &format!("batch size {b} with {p}-token prompts"))
}

/// Runs `mamba-bench`.
impl BenchArgs {
    /// The sampler settings of the flags (greedy by default).
    pub fn sampling(&self) -> SamplerParams {
        SamplerParams {
            temperature: self.temperature,
            top_p: self.top_p,
            top_k: self.top_k,
            repeat_penalty: self.repetition_penalty,
            repeat_last_n: 64,
            seed: self.seed,
            ..SamplerParams::greedy()
        }
    }

    /// The sampling settings as a table note / JSON field; `None` when greedy.
    fn sampling_label(&self) -> Option<String> {
        (self.temperature != 0.0 || self.repetition_penalty != 1.0).then(|| {
            format!(
                "temperature {}, top-p {}, top-k {}, repetition penalty {}, seed {}",
                self.temperature, self.top_p, self.top_k, self.repetition_penalty, self.seed
            )
        })
    }
}

pub fn run(args: &BenchArgs) -> Result<()> {
    let gpu_index = crate::device::gpu_index(args.device)?;
    ensure!(args.repetitions >= 1, "-r/--repetitions must be at least 1");
    args.sampling().validate().context("bad sampling flags")?;
    let sweep = args.sweep
        || args.batch.as_ref().is_some_and(|b| b.0.len() > 1)
        || args.single_batch.is_some();
    let batches: Vec<usize> = match (&args.batch, args.single_batch) {
        (_, Some(b)) => vec![b],
        (Some(b), _) => b.0.clone(),
        (None, _) if args.sweep => DEFAULT_SWEEP.to_vec(),
        (None, _) => vec![1],
    };
    ensure!(
        batches.iter().all(|&b| b >= 1),
        "batch sizes must be at least 1"
    );
    if sweep {
        ensure!(
            args.n_prompt >= 1,
            "a batch sweep needs a prompt: -p must be at least 1"
        );
    } else {
        ensure!(
            args.n_prompt > 0 || args.n_gen > 0,
            "nothing to measure: -p and -n are both 0"
        );
        ensure!(
            args.plot.is_none(),
            "--plot needs a batch sweep (several -b values, or --sweep)"
        );
    }
    // Checked before the benchmark so that a bad path fails at once, and never the
    // model (writing there would destroy the file the weights are mapped from).
    if let Some(path) = &args.plot {
        mamba_files::check_output(path, &[&args.model], true).context("--plot")?;
    }
    let threads = cli::set_threads(args.threads)?;
    let model = Model::open(&args.model).context("cannot load the model")?;
    for &b in &batches {
        ensure_memory(&model, b, args.n_prompt)?;
    }
    let setup = Setup {
        model: file_name(&args.model),
        ty: model
            .metadata()
            .get(mamba_format::arch::KEY_QUANTIZATION)
            .and_then(|v| v.as_str())
            .unwrap_or("?")
            .to_string(),
        size_bytes: model.file_size() as u64,
        threads,
    };
    let gpu = gpu_index
        .map(|i| GpuModel::upload(&model, i))
        .transpose()
        .with_context(|| format!("cannot load the model on {}", args.device))?;
    let engine = match &gpu {
        Some(g) => Engine::Gpu(g),
        None => Engine::Cpu(&model),
    };
    warmup(engine, args.n_prompt)?;

    if let Some(b) = args.single_batch {
        rss::reset_peak_rss();
        if let Some(g) = &gpu {
            g.reset_peak_memory();
        }
        let row = sweep_point(engine, &setup, args, b, "child", &ProgressBar::hidden())?;
        let row = BenchRow {
            peak_rss_bytes: rss::peak_rss_bytes(),
            ..row
        };
        println!("{}", serde_json::to_string(&row)?);
        return Ok(());
    }

    let mut rows = Vec::new();
    if sweep {
        let in_process = !args.isolate && rss::reset_peak_rss();
        let pb = progress_bar(if in_process {
            batches.len().saturating_mul(args.repetitions) as u64
        } else {
            batches.len() as u64
        });
        for &b in &batches {
            pb.set_message(format!("batch {b}"));
            let row = if in_process {
                rss::reset_peak_rss();
                if let Some(g) = &gpu {
                    g.reset_peak_memory();
                }
                let row = sweep_point(engine, &setup, args, b, "clear_refs", &pb)?;
                BenchRow {
                    peak_rss_bytes: rss::peak_rss_bytes(),
                    ..row
                }
            } else {
                let row = sweep_point_child(args, threads, b)?;
                pb.inc(1);
                row
            };
            rows.push(row);
        }
        pb.finish_and_clear();
    } else {
        let b = batches[0];
        let tests: Vec<(bool, usize)> = [(true, args.n_prompt), (false, args.n_gen)]
            .into_iter()
            .filter(|t| t.1 > 0)
            .collect();
        let pb = progress_bar(tests.len().saturating_mul(args.repetitions) as u64);
        for (is_pp, len) in tests {
            let name = format!("{}{len}", if is_pp { "pp" } else { "tg" });
            pb.set_message(format!("{name}, batch {b}"));
            let mut tps = Vec::new();
            for _ in 0..args.repetitions {
                let secs = if is_pp {
                    time_pp(engine, b, len)?
                } else {
                    time_tg(engine, b, len, &args.sampling())?
                };
                tps.push(b as f64 * len as f64 / secs);
                pb.inc(1);
            }
            let (n_prompt, n_gen) = if is_pp { (len, 0) } else { (0, len) };
            let mut row = setup.row(b, name, n_prompt, n_gen, &tps);
            row.device_memory_bytes = device_peak(engine);
            if !is_pp {
                row.sampling = args.sampling_label();
            }
            rows.push(row);
        }
        pb.finish_and_clear();
    }

    if args.json {
        for r in &rows {
            println!("{}", serde_json::to_string(r)?);
        }
    } else {
        print!("{}", table(&rows));
        if let Some(s) = args.sampling_label() {
            println!("\ngenerated tokens sampled: {s} (on the host, timed with the decode)");
        }
        println!(
            "\nkernels: {}, device {}",
            mamba_kernels::cpu::kernels().name,
            args.device
        );
        if let Some(g) = &gpu {
            println!(
                "device memory: {} in use, peak {}",
                cli::mib(g.memory_used()),
                cli::mib(g.peak_memory_used())
            );
        }
    }
    if let Some(path) = &args.plot {
        let mut file =
            mamba_files::AtomicFile::create(path, &[&args.model], true).context("--plot")?;
        std::io::Write::write_all(&mut file, sweep_plot(&rows).to_svg().as_bytes())
            .with_context(|| format!("cannot write {}", file.tmp_path().display()))?;
        file.commit().context("--plot")?;
        eprintln!("plot written to {}", path.display());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statistics() {
        assert_eq!(mean_std(&[2.0]), (2.0, 0.0));
        let (m, s) = mean_std(&[1.0, 2.0, 3.0]);
        assert_eq!(m, 2.0);
        assert!((s - 1.0).abs() < 1e-12);
    }

    #[test]
    fn prompts_are_seeded_and_in_range() {
        let a = random_prompts(3, 50, 17, 5);
        assert_eq!(a, random_prompts(3, 50, 17, 5));
        assert_eq!(a.len(), 3);
        assert!(a.iter().all(|p| p.len() == 50 && p.iter().all(|&t| t < 17)));
        assert_ne!(a[0], a[1]);
    }

    #[test]
    fn table_is_aligned_markdown() {
        let t = markdown_table(
            &["a", "bb"],
            &[false, true],
            &[vec!["xyz".into(), "1".into()]],
        );
        assert_eq!(t, "| a   |  bb |\n| --- | --: |\n| xyz |   1 |\n");
    }

    #[test]
    fn rows_round_trip_through_json() {
        let setup = Setup {
            model: "m.mbin".into(),
            ty: "f32".into(),
            size_bytes: 10,
            threads: 2,
        };
        let mut row = setup.row(2, "pp4+tg4".into(), 4, 4, &[1.0, 3.0]);
        row.sweep = Some(SweepTimes {
            prompt_s: 1.0,
            decode_s: 2.0,
            total_s: 3.0,
            total_s_stddev: 0.1,
            pp_tokens_per_s: 8.0,
            tg_tokens_per_s: 4.0,
            peak_rss_method: "child".into(),
        });
        let json = serde_json::to_string(&row).unwrap();
        assert!(
            json.contains("\"type\":\"f32\"")
                && json.contains("\"total_s\":3.0")
                && !json.contains("device_memory_bytes")
        );
        assert_eq!(serde_json::from_str::<BenchRow>(&json).unwrap(), row);
        let plain = setup.row(1, "tg4".into(), 0, 4, &[1.0]);
        let json = serde_json::to_string(&plain).unwrap();
        assert!(!json.contains("total_s"));
        assert_eq!(serde_json::from_str::<BenchRow>(&json).unwrap(), plain);
    }
}
