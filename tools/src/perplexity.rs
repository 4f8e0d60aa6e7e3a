//! `mamba-perplexity`: perplexity of a model on a text or on token-id sequences.
//!
#![doc = include_str!("perplexity_protocol.md")]

use crate::cli;
use crate::device::Device;
use anyhow::{bail, ensure, Context, Result};
use clap::Parser;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use mamba_runtime::gpu::{GpuModel, GpuSession};
use mamba_runtime::{Model, Session};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Command line of `mamba-perplexity`.
#[derive(Parser, Debug, Clone)]
#[command(
    name = "mamba-perplexity",
    version,
    about = "Perplexity of a Mamba model (.mbin) on a text file or token-id sequences",
    after_long_help = include_str!("perplexity_protocol.md")
)]
pub struct PplArgs {
    /// Model file (.mbin).
    pub model: PathBuf,
    /// Text file (UTF-8, a regular file of at most 1 GiB), tokenized with the
    /// embedded tokenizer, no BOS.
    #[arg(
        short = 'f',
        long = "file",
        value_name = "TEXT_FILE",
        required_unless_present = "ids_file",
        conflicts_with = "ids_file"
    )]
    pub file: Option<PathBuf>,
    /// Token ids instead of text: one sequence per line, ids separated by whitespace
    /// (a regular file of at most 1 GiB).
    #[arg(long, value_name = "FILE")]
    pub ids_file: Option<PathBuf>,
    /// Window length in tokens, >= 2.
    #[arg(long, value_name = "N", default_value_t = 256)]
    pub ctx: usize,
    /// Distance between window starts, in [1, ctx]. [default: ctx]
    #[arg(long, value_name = "N")]
    pub stride: Option<usize>,
    /// llama.cpp's protocol (`llama-perplexity -c CTX`): non-overlapping windows, each
    /// scoring only the predictions in its second half (positions ctx/2 + 1 .. ctx),
    /// so that a GGUF's figure can be compared one to one.
    #[arg(long, conflicts_with = "stride")]
    pub score_second_half: bool,
    /// Keep only the first N tokens of the input, >= 2. [default: all]
    #[arg(long, value_name = "N")]
    pub max_tokens: Option<usize>,
    /// Write `seq pos nll` for every scored token to FILE: written to a temporary
    /// file beside it and renamed into place at the end, replacing a regular file;
    /// never one of the inputs (model, text or ids file) or a non-regular file.
    #[arg(long, value_name = "FILE")]
    pub nll_out: Option<PathBuf>,
    #[arg(short = 't', long, value_name = "N", help = cli::THREADS_HELP, value_parser = cli::parse_threads)]
    pub threads: Option<usize>,
    /// Device: cpu, or GPU N as hip:N, cuda:N or gpu:N (needs a build with the `gpu` feature).
    #[arg(long, value_name = "D", default_value = "cpu")]
    pub device: Device,
}

/// One window of the protocol: tokens `start..start + len` of sequence `seq`,
/// positions `first_scored..len` scored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    /// Index of the input sequence.
    pub seq: usize,
    /// First token's index in the sequence.
    pub start: usize,
    /// Tokens in the window.
    pub len: usize,
    /// First scored position within the window (>= 1).
    pub first_scored: usize,
}

impl Window {
    /// Tokens scored in this window.
    pub fn n_scored(&self) -> usize {
        self.len - self.first_scored
    }
}

/// The windows of one sequence of `n` tokens (protocol steps 2 and 3): full
/// windows of `ctx` tokens only, or one window of all `n` tokens when `n < ctx`;
/// empty when `n < 2`. `second_half` (with `stride == ctx`) scores only positions
/// `len/2 + 1 ..` of every window, as llama.cpp's perplexity does.
pub fn plan_windows(
    seq: usize,
    n: usize,
    ctx: usize,
    stride: usize,
    second_half: bool,
) -> impl DoubleEndedIterator<Item = Window> {
    assert!(
        ctx >= 2 && (1..=ctx).contains(&stride),
        "ctx {ctx}, stride {stride}"
    );
    // One short window when n < ctx (none when n < 2), else the full windows.
    let (count, len) = match n {
        _ if n >= ctx => ((n - ctx) / stride + 1, ctx),
        0 | 1 => (0, n),
        _ => (1, n),
    };
    (0..count).map(move |k| Window {
        seq,
        start: k * stride,
        len,
        first_scored: match k {
            _ if second_half => len / 2 + 1,
            0 => 1,
            _ => (ctx - stride).max(1),
        },
    })
}

/// Tokens of a sequence of `n` tokens after its last window: not scored.
pub fn unscored_tail(n: usize, ctx: usize, stride: usize) -> usize {
    plan_windows(0, n, ctx, stride, false)
        .next_back()
        .map_or(n, |w| n - (w.start + w.len))
}

/// `-log_softmax(logits)[target]` in nats, in f64.
pub fn nll(logits: &[f32], target: u32) -> f64 {
    let max = logits
        .iter()
        .fold(f64::NEG_INFINITY, |m, &l| m.max(l as f64));
    let sum: f64 = logits.iter().map(|&l| (l as f64 - max).exp()).sum();
    max + sum.ln() - logits[target as usize] as f64
}

/// What [`score_window`] needs from a session: the CPU [`Session`] and the
/// [`GpuSession`] both provide it, so the protocol is written once.
pub trait WindowScorer {
    /// Rows of the logits.
    fn vocab(&self) -> usize;
    /// Back to a fresh zero state.
    fn reset_state(&mut self) -> Result<()>;
    /// Advances the state over `tokens` (logits not needed).
    fn feed(&mut self, tokens: &[u32]) -> Result<()>;
    /// Advances over `tokens` and returns the logits after each, `(L, vocab)`.
    fn all_logits(&mut self, tokens: &[u32]) -> Result<Vec<f32>>;
}

impl WindowScorer for Session<'_> {
    fn vocab(&self) -> usize {
        self.model().vocab_size()
    }
    fn reset_state(&mut self) -> Result<()> {
        self.reset();
        Ok(())
    }
    fn feed(&mut self, tokens: &[u32]) -> Result<()> {
        self.prefill(tokens)?;
        Ok(())
    }
    fn all_logits(&mut self, tokens: &[u32]) -> Result<Vec<f32>> {
        Ok(self.logits_all(tokens)?)
    }
}

impl WindowScorer for GpuSession<'_> {
    fn vocab(&self) -> usize {
        self.model().vocab_size()
    }
    fn reset_state(&mut self) -> Result<()> {
        Ok(self.reset()?)
    }
    fn feed(&mut self, tokens: &[u32]) -> Result<()> {
        self.prefill(tokens)?;
        Ok(())
    }
    fn all_logits(&mut self, tokens: &[u32]) -> Result<Vec<f32>> {
        Ok(self.logits_all(tokens)?)
    }
}

/// Scores one window from a fresh state, calling `on_nll(pos, nll)` for every scored
/// position in order. Logits are requested in chunks, so memory stays
/// O(chunk × vocab) whatever `ctx` is.
pub fn score_window(
    session: &mut impl WindowScorer,
    tokens: &[u32],
    first_scored: usize,
    mut on_nll: impl FnMut(usize, f64),
) -> Result<()> {
    const CHUNK: usize = mamba_runtime::session::PREFILL_CHUNK;
    assert!(first_scored >= 1 && first_scored < tokens.len());
    let vocab = session.vocab();
    session.reset_state()?;
    // The logits after position j-1 predict token j: logits are needed for positions
    // first_scored-1 ..= len-2; earlier tokens only advance the state.
    let from = first_scored - 1;
    if from > 0 {
        session.feed(&tokens[..from])?;
    }
    let mut pos = first_scored;
    for chunk in tokens[from..tokens.len() - 1].chunks(CHUNK) {
        let logits = session.all_logits(chunk)?;
        for row in logits.chunks_exact(vocab) {
            on_nll(pos, nll(row, tokens[pos]));
            pos += 1;
        }
    }
    Ok(())
}

/// Where [`evaluate`] runs the windows.
pub enum Scorer<'m> {
    /// The CPU forward pass.
    Cpu(Session<'m>),
    /// The GPU forward pass.
    Gpu(GpuSession<'m>),
}

impl Scorer<'_> {
    fn score(
        &mut self,
        tokens: &[u32],
        first_scored: usize,
        on_nll: impl FnMut(usize, f64),
    ) -> Result<()> {
        match self {
            Scorer::Cpu(s) => score_window(s, tokens, first_scored, on_nll),
            Scorer::Gpu(s) => score_window(s, tokens, first_scored, on_nll),
        }
    }
}

/// The result of a perplexity run.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Perplexity {
    /// Sum of the NLLs, nats.
    pub nll_sum: f64,
    /// Tokens scored.
    pub count: usize,
    /// Windows run.
    pub windows: usize,
}

impl Perplexity {
    /// Mean NLL, nats/token.
    pub fn mean_nll(&self) -> f64 {
        self.nll_sum / self.count as f64
    }

    /// `exp(mean NLL)`.
    pub fn perplexity(&self) -> f64 {
        self.mean_nll().exp()
    }
}

/// Memory per byte of an ids file while it is read: the text, and a 4-byte id for
/// every 2 bytes at most (one digit and a separator).
const IDS_BYTES_PER_TEXT_BYTE: u64 = 3;

/// Reads an ids file: one sequence per non-empty line.
pub fn read_ids_file(path: &Path, vocab: usize) -> Result<Vec<Vec<u32>>> {
    let text = cli::read_text(path, "an ids file", IDS_BYTES_PER_TEXT_BYTE)?;
    let mut seqs = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let ids = line
            .split_whitespace()
            .map(|w| {
                let id: u32 = w.parse().with_context(|| {
                    format!("{}:{}: '{w}' is not a token id", path.display(), i + 1)
                })?;
                ensure!(
                    (id as usize) < vocab,
                    "{}:{}: token id {id} is out of range (vocabulary size {vocab})",
                    path.display(),
                    i + 1
                );
                Ok(id)
            })
            .collect::<Result<Vec<u32>>>()?;
        if !ids.is_empty() {
            seqs.push(ids);
        }
    }
    Ok(seqs)
}

/// Keeps the first `max` tokens over all sequences, in order.
pub fn truncate_stream(seqs: &mut Vec<Vec<u32>>, max: usize) {
    let mut left = max;
    seqs.retain_mut(|s| {
        s.truncate(left);
        left -= s.len();
        !s.is_empty()
    });
}

/// Runs the protocol over `seqs`, writing `seq pos nll` lines to `nll_out` if given.
pub fn evaluate(
    scorer: &mut Scorer<'_>,
    seqs: &[Vec<u32>],
    ctx: usize,
    stride: usize,
    second_half: bool,
    mut nll_out: Option<&mut dyn Write>,
    progress: &ProgressBar,
) -> Result<Perplexity> {
    // Windows are planned one sequence at a time: with a small stride there are
    // nearly as many windows as tokens, too many to hold for a large input.
    let windows = || {
        seqs.iter()
            .enumerate()
            .flat_map(move |(i, s)| plan_windows(i, s.len(), ctx, stride, second_half))
    };
    let total: usize = windows().map(|w| w.n_scored()).sum();
    if total == 0 {
        bail!("nothing to score: a sequence needs at least 2 tokens");
    }
    progress.set_length(total as u64);
    let mut res = Perplexity::default();
    let mut io_err = None;
    for (wi, w) in windows().enumerate() {
        res.windows += 1;
        let tokens = &seqs[w.seq][w.start..w.start + w.len];
        let mut bad = None;
        scorer.score(tokens, w.first_scored, |pos, x| {
            if !x.is_finite() && bad.is_none() {
                bad = Some(pos);
            }
            res.nll_sum += x;
            res.count += 1;
            if let (Some(out), None) = (nll_out.as_mut(), &io_err) {
                if let Err(e) = writeln!(out, "{wi} {pos} {x:.6}") {
                    io_err = Some(e);
                }
            }
        })?;
        if let Some(pos) = bad {
            bail!("non-finite log-probability in window {wi} at position {pos} (the model produced NaN or infinite logits)");
        }
        if let Some(e) = io_err.take() {
            return Err(e).context("writing --nll-out");
        }
        progress.inc(w.n_scored() as u64);
    }
    Ok(res)
}

/// Runs `mamba-perplexity`.
pub fn run(args: &PplArgs) -> Result<()> {
    let gpu_index = crate::device::gpu_index(args.device)?;
    let stride = args.stride.unwrap_or(args.ctx);
    ensure!(args.ctx >= 2, "--ctx must be at least 2 (got {})", args.ctx);
    ensure!(
        (1..=args.ctx).contains(&stride),
        "--stride must be in [1, ctx = {}] (got {stride})",
        args.ctx
    );
    if let Some(m) = args.max_tokens {
        ensure!(m >= 2, "--max-tokens must be at least 2 (got {m})");
    }
    // The output is checked now, not after the scoring: it must not be one of the
    // inputs (writing there would destroy the memory-mapped model under us).
    let inputs: Vec<&Path> = [
        Some(args.model.as_path()),
        args.file.as_deref(),
        args.ids_file.as_deref(),
    ]
    .into_iter()
    .flatten()
    .collect();
    if let Some(p) = &args.nll_out {
        mamba_files::check_output(p, &inputs, true).context("--nll-out")?;
    }
    let threads = cli::set_threads(args.threads)?;
    let model = Model::open(&args.model).context("cannot load the model")?;
    // The logits of one chunk of a window are held at once.
    let chunk = args.ctx.min(mamba_runtime::session::PREFILL_CHUNK) as u64;
    let logits = crate::mem::mul(chunk, 4 * model.vocab_size() as u64, "the logits")?;
    crate::mem::ensure_fits(logits, "the logits of one chunk")?;
    let gpu = gpu_index
        .map(|i| GpuModel::upload(&model, i))
        .transpose()
        .with_context(|| format!("cannot load the model on {}", args.device))?;

    let mut seqs = match (&args.file, &args.ids_file) {
        (Some(f), _) => {
            let tok = model
                .tokenizer()
                .context("this model has no embedded tokenizer: use --ids-file")?;
            let text = cli::read_text(f, "a text file", crate::mem::TOKENIZE_BYTES_PER_TEXT_BYTE)?;
            vec![tok.encode(&text)?]
        }
        (None, Some(f)) => read_ids_file(f, model.vocab_size())?,
        (None, None) => bail!("give the input: -f TEXT_FILE or --ids-file FILE"),
    };
    let n_input: usize = seqs.iter().map(Vec::len).sum();
    if let Some(m) = args.max_tokens {
        truncate_stream(&mut seqs, m);
    }
    let n_used: usize = seqs.iter().map(Vec::len).sum();
    let tail: usize = seqs
        .iter()
        .map(|s| unscored_tail(s.len(), args.ctx, stride))
        .sum();
    eprintln!(
        "{n_used} of {n_input} tokens used, in {} sequence(s); ctx {}, stride {stride}{}; {}",
        seqs.len(),
        args.ctx,
        if args.score_second_half {
            ", second half of each window scored"
        } else {
            ""
        },
        match &gpu {
            Some(_) => format!("device {}", args.device),
            None => format!(
                "{threads} threads, kernels {}",
                mamba_kernels::cpu::kernels().name
            ),
        }
    );
    if tail > 0 {
        eprintln!(
            "note: {tail} token(s) after the last full window of their sequence are not scored"
        );
    }

    let mut out = match &args.nll_out {
        Some(p) => Some(std::io::BufWriter::new(
            mamba_files::AtomicFile::create(p, &inputs, true).context("--nll-out")?,
        )),
        None => None,
    };
    let progress = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
    progress.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} tokens, {per_sec}, eta {eta}")
            .expect("valid template"),
    );
    let t0 = std::time::Instant::now();
    let mut scorer = match &gpu {
        Some(g) => Scorer::Gpu(GpuSession::new(g)?),
        None => Scorer::Cpu(Session::new(&model)),
    };
    let res = evaluate(
        &mut scorer,
        &seqs,
        args.ctx,
        stride,
        args.score_second_half,
        out.as_mut().map(|w| w as &mut dyn Write),
        &progress,
    )?;
    progress.finish_and_clear();
    if let Some(w) = out {
        let file = w
            .into_inner()
            .map_err(|e| e.into_error())
            .context("writing --nll-out")?;
        file.commit().context("--nll-out")?;
    }
    let secs = t0.elapsed().as_secs_f64();
    eprintln!(
        "{} windows, {:.2} s, {:.1} tokens/s",
        res.windows,
        secs,
        res.count as f64 / secs
    );
    if let Some(g) = &gpu {
        eprintln!(
            "device memory: {} in use, peak {}",
            cli::mib(g.memory_used()),
            cli::mib(g.peak_memory_used())
        );
    }
    println!("scored tokens: {}", res.count);
    println!("nats/token: {:.6}", res.mean_nll());
    println!("perplexity: {:.4}", res.perplexity());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(seq: usize, n: usize, ctx: usize, stride: usize) -> Vec<Window> {
        plan_windows(seq, n, ctx, stride, false).collect()
    }

    fn w(start: usize, len: usize, first_scored: usize) -> Window {
        Window {
            seq: 0,
            start,
            len,
            first_scored,
        }
    }

    #[test]
    fn non_overlapping_windows_match_the_reference() {
        let ws = plan(0, 1024, 256, 256);
        assert_eq!(
            ws,
            vec![w(0, 256, 1), w(256, 256, 1), w(512, 256, 1), w(768, 256, 1)]
        );
        assert_eq!(ws.iter().map(Window::n_scored).sum::<usize>(), 1020);
        // A partial trailing window is not scored (the README's 35955 of 36099).
        assert_eq!(plan(0, 258, 256, 256), vec![w(0, 256, 1)]);
        assert_eq!(unscored_tail(258, 256, 256), 2);
        let val: usize = plan_windows(0, 36099, 256, 256, false)
            .map(|w| w.n_scored())
            .sum();
        assert_eq!(val, 35955);
        // A sequence shorter than ctx is one window.
        assert_eq!(plan(0, 100, 256, 256), vec![w(0, 100, 1)]);
        assert_eq!(plan(0, 256, 256, 64), vec![w(0, 256, 1)]);
        assert!(plan(0, 1, 256, 256).is_empty());
        assert_eq!(unscored_tail(1, 256, 256), 1);
    }

    #[test]
    fn sliding_windows_score_every_token_once() {
        for (n, ctx, stride) in [
            (1000, 256, 128),
            (1000, 256, 1),
            (300, 256, 100),
            (100, 256, 64),
            (513, 8, 3),
            (9, 8, 7),
        ] {
            let mut scored = vec![0; n];
            let ws = plan(0, n, ctx, stride);
            for wd in &ws {
                assert_eq!(wd.len, ctx.min(n));
                for j in wd.first_scored..wd.len {
                    scored[wd.start + j] += 1;
                    // Every scored token has ctx - stride tokens of context or more.
                    assert!(j >= (ctx - stride).min(wd.start + j));
                }
            }
            let end = n - unscored_tail(n, ctx, stride);
            assert!(n - end < stride, "tail shorter than a stride");
            assert_eq!(scored[0], 0);
            assert!(
                scored[1..end].iter().all(|&c| c == 1),
                "n {n} ctx {ctx} stride {stride}"
            );
            assert!(scored[end..].iter().all(|&c| c == 0));
        }
    }

    #[test]
    fn second_half_matches_llama_cpp() {
        // llama-perplexity -c 256 on val.txt: 141 windows, 127 predictions each
        // (tokens 129..255 of every window), 17907 in all.
        let ws = plan_windows(0, 36099, 256, 256, true).collect::<Vec<_>>();
        assert_eq!(ws.len(), 141);
        assert!(ws
            .iter()
            .all(|w| w.first_scored == 129 && w.n_scored() == 127));
        assert_eq!(ws.iter().map(|w| w.n_scored()).sum::<usize>(), 17907);
        // A short sequence is one window; its second half is scored.
        assert_eq!(plan(0, 10, 256, 256).len(), 1);
        let short: Vec<_> = plan_windows(0, 10, 256, 256, true).collect();
        assert_eq!(short[0].first_scored, 6);
    }

    #[test]
    fn nll_is_a_log_softmax() {
        let l = [1.0f32, 2.0, 3.0];
        let z: f64 = l.iter().map(|&x| (x as f64).exp()).sum();
        assert!((nll(&l, 2) - (z.ln() - 3.0)).abs() < 1e-12);
        assert!((nll(&[1000.0, 1000.0], 0) - 2f64.ln()).abs() < 1e-12);
    }

    #[test]
    fn truncation_counts_over_all_sequences() {
        let mut s = vec![vec![1, 2, 3], vec![4, 5, 6], vec![7]];
        truncate_stream(&mut s, 5);
        assert_eq!(s, vec![vec![1, 2, 3], vec![4, 5]]);
    }
}
