//! `mamba-run`: generate a continuation of a prompt, streamed to stdout.
//!
//! The prompt text is printed first (as llama.cpp does), then each new piece of
//! text as soon as it is complete UTF-8; statistics go to stderr at the end.
//! `--temp 0` is greedy decoding: the argmax of the logits, with the repetition
//! penalty off unless `--repeat-penalty` is given explicitly.

use crate::cli;
use crate::device::Device;
use anyhow::{bail, Context, Result};
use clap::Parser;
use mamba_runtime::gpu::{GpuModel, GpuSession};
use mamba_runtime::{generate, GenerateOptions, Model, Sampler, SamplerParams, Session};
use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

/// Repetition penalty used when sampling (`--temp` > 0) and no `--repeat-penalty` is given.
pub const DEFAULT_REPEAT_PENALTY: f32 = 1.2;

/// Command line of `mamba-run`.
#[derive(Parser, Debug, Clone)]
#[command(
    name = "mamba-run",
    version,
    about = "Generate text with a Mamba model (.mbin), streaming it to stdout",
    allow_negative_numbers = true,
    after_help = "Statistics (speed, memory, kernels) are printed to stderr at the end.\n\
                  Sampling order: repetition penalty, temperature, top-k, top-p, min-p, draw."
)]
pub struct RunArgs {
    /// Model file (.mbin).
    pub model: PathBuf,
    /// Prompt text, encoded with the model's embedded tokenizer (no BOS). Not empty.
    #[arg(
        short = 'p',
        long,
        value_name = "TEXT",
        required_unless_present_any = ["prompt_ids", "file"],
        conflicts_with_all = ["prompt_ids", "file"]
    )]
    pub prompt: Option<String>,
    /// Prompt text read from a UTF-8 file (a regular file of at most 1 GiB), for
    /// prompts too long for the command line; as -p otherwise.
    #[arg(
        short = 'f',
        long,
        value_name = "PROMPT_FILE",
        conflicts_with = "prompt_ids"
    )]
    pub file: Option<PathBuf>,
    /// Prompt as token ids instead of text, comma separated (each < vocabulary size;
    /// no empty items).
    #[arg(long, value_name = "ID,ID,...")]
    pub prompt_ids: Option<cli::List<u32>>,
    /// Most tokens to generate, >= 0.
    #[arg(
        short = 'n',
        long = "n-predict",
        value_name = "N",
        default_value_t = 128
    )]
    pub n_predict: usize,
    /// Temperature in [0, 100]; 0 = greedy (argmax).
    #[arg(long = "temp", value_name = "T", default_value_t = 0.7)]
    pub temperature: f32,
    /// Keep the K most likely tokens, >= 0; 0 = off.
    #[arg(long, value_name = "K", default_value_t = 40)]
    pub top_k: usize,
    /// Nucleus sampling: keep the most likely tokens up to probability P, in (0, 1]; 1 = off.
    #[arg(long, value_name = "P", default_value_t = 0.9)]
    pub top_p: f32,
    /// Drop tokens below P × the top probability, in [0, 1]; 0 = off.
    #[arg(long, value_name = "P", default_value_t = 0.05)]
    pub min_p: f32,
    /// Repetition penalty in (0, 10]; 1 = off. [default: 1.2 when sampling, off with --temp 0]
    #[arg(long, value_name = "R")]
    pub repeat_penalty: Option<f32>,
    /// Recent tokens (prompt included) the penalty looks at, >= 0; 0 = off.
    #[arg(long, value_name = "N", default_value_t = 64)]
    pub repeat_last_n: usize,
    /// Random seed, any u64. [default: from the clock, printed]
    #[arg(long, value_name = "S")]
    pub seed: Option<u64>,
    #[arg(short = 't', long, value_name = "N", help = cli::THREADS_HELP, value_parser = cli::parse_threads)]
    pub threads: Option<usize>,
    /// Keep generating past the end-of-sequence token.
    #[arg(long)]
    pub ignore_eos: bool,
    /// Print the generated token ids (space separated) instead of text.
    #[arg(long)]
    pub output_ids: bool,
    /// Device: cpu, or GPU N as hip:N, cuda:N or gpu:N (needs a build with the `gpu` feature).
    #[arg(long, value_name = "D", default_value = "cpu")]
    pub device: Device,
    /// Verify every tensor checksum before running (reads the whole file).
    #[arg(long)]
    pub verify: bool,
}

impl RunArgs {
    /// The sampler parameters these flags ask for, validated. The seed is
    /// `self.seed` or the given fallback.
    pub fn sampler_params(&self, fallback_seed: u64) -> Result<SamplerParams> {
        let greedy = self.temperature == 0.0;
        let params = SamplerParams {
            temperature: self.temperature,
            top_k: self.top_k,
            top_p: self.top_p,
            min_p: self.min_p,
            repeat_penalty: self.repeat_penalty.unwrap_or(if greedy {
                1.0
            } else {
                DEFAULT_REPEAT_PENALTY
            }),
            repeat_last_n: self.repeat_last_n,
            frequency_penalty: 0.0,
            presence_penalty: 0.0,
            seed: self.seed.unwrap_or(fallback_seed),
        };
        params.validate()?;
        Ok(params)
    }
}

fn clock_seed() -> u64 {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    d.as_secs() ^ (d.subsec_nanos() as u64).rotate_left(32)
}

/// Where generated output goes: text pieces or ids, flushed per piece. A closed
/// stdout (e.g. `| head`) stops generation quietly.
struct Out {
    out: std::io::StdoutLock<'static>,
    ids: bool,
    first: bool,
    closed: bool,
}

impl Out {
    fn write(&mut self, s: &str) -> bool {
        if self.closed {
            return false;
        }
        if let Err(e) = self
            .out
            .write_all(s.as_bytes())
            .and_then(|_| self.out.flush())
        {
            if e.kind() != std::io::ErrorKind::BrokenPipe {
                eprintln!("warning: writing to stdout: {e}");
            }
            self.closed = true;
        }
        !self.closed
    }

    fn token(&mut self, id: Option<u32>, piece: &str) -> bool {
        if self.ids {
            let Some(id) = id else {
                return true; // the decoder's final flush: text only
            };
            let sep = if self.first { "" } else { " " };
            self.first = false;
            self.write(&format!("{sep}{id}"))
        } else {
            self.write(piece)
        }
    }
}

/// Runs `mamba-run`.
pub fn run(args: &RunArgs) -> Result<()> {
    let t_start = Instant::now();
    let gpu_index = crate::device::gpu_index(args.device)?;
    let seed = args.seed.unwrap_or_else(clock_seed);
    let params = args.sampler_params(seed)?;
    let greedy = params.temperature == 0.0;
    let prompt_ids = args.prompt_ids.as_ref().map(|l| l.0.clone());
    let file_text = match &args.file {
        Some(f) => Some(cli::read_text(
            f,
            "a prompt file",
            crate::mem::TOKENIZE_BYTES_PER_TEXT_BYTE,
        )?),
        None => None,
    };
    let prompt_text = args.prompt.as_ref().or(file_text.as_ref());
    if matches!(prompt_text, Some(p) if p.is_empty()) {
        bail!("the prompt is empty");
    }
    let threads = cli::set_threads(args.threads)?;

    let model = Model::open(&args.model).context("cannot load the model")?;
    if args.verify {
        model.verify().context("checksum verification failed")?;
        eprintln!("verified: every tensor checksum matches");
    }
    let gpu = gpu_index
        .map(|i| GpuModel::upload(&model, i))
        .transpose()
        .with_context(|| format!("cannot load the model on {}", args.device))?;
    let tok = model.tokenizer();
    let (prompt, prompt_text) = match (prompt_text, prompt_ids) {
        (_, Some(ids)) => {
            if let Some(&bad) = ids.iter().find(|&&id| id as usize >= model.vocab_size()) {
                bail!(
                    "--prompt-ids: token id {bad} is out of range (vocabulary size {})",
                    model.vocab_size()
                );
            }
            let text = match tok {
                Some(t) if !args.output_ids => t.decode(&ids)?,
                _ => String::new(),
            };
            (ids, text)
        }
        (Some(text), None) => {
            let t = tok
                .context("this model has no embedded tokenizer: give the prompt as --prompt-ids")?;
            let ids = t.encode(text)?;
            if ids.is_empty() {
                bail!("the prompt encodes to no tokens");
            }
            (ids, text.clone())
        }
        (None, None) => bail!("give a prompt: -p TEXT, -f PROMPT_FILE or --prompt-ids IDS"),
    };
    let output_ids = args.output_ids || tok.is_none();
    if !args.output_ids && tok.is_none() {
        eprintln!("note: the model has no embedded tokenizer; printing token ids");
    }
    if args.seed.is_none() && !greedy {
        eprintln!("seed: {seed}");
    }
    if greedy && args.repeat_penalty.is_none() {
        eprintln!("greedy decoding (--temp 0): repetition penalty off (pass --repeat-penalty to apply one)");
    }
    let t_load = t_start.elapsed().as_secs_f64();

    let mut sampler = Sampler::new(params)?;
    let opts = GenerateOptions {
        max_tokens: args.n_predict,
        ignore_eos: args.ignore_eos,
    };
    let mut out = Out {
        out: std::io::stdout().lock(),
        ids: output_ids,
        first: true,
        closed: false,
    };
    if !output_ids {
        out.write(&prompt_text);
    }
    let on_token = |id: Option<u32>, piece: &str| out.token(id, piece);
    let (gen, state_bytes) = match &gpu {
        Some(g) => {
            let mut session = GpuSession::new(g)?;
            let gen = generate(&mut session, &model, &prompt, &mut sampler, &opts, on_token)?;
            (gen, gpu_state_bytes(&model))
        }
        None => {
            let mut session = Session::new(&model);
            let gen = session.generate(&prompt, &mut sampler, &opts, on_token)?;
            (gen, session.state().size_bytes() as u64)
        }
    };
    out.write("\n");

    let total = t_start.elapsed().as_secs_f64();
    let rate = |n: usize, s: f64| if s > 0.0 { n as f64 / s } else { 0.0 };
    eprintln!();
    eprintln!("load:      {:.1} ms", t_load * 1e3);
    eprintln!(
        "prompt:    {} tokens, {:.1} ms, {:.2} tokens/s",
        gen.prompt_tokens,
        gen.prompt_seconds * 1e3,
        rate(gen.prompt_tokens, gen.prompt_seconds)
    );
    eprintln!(
        "generated: {} tokens, {:.1} ms, {:.2} tokens/s{}",
        gen.tokens.len(),
        gen.decode_seconds * 1e3,
        rate(gen.tokens.len(), gen.decode_seconds),
        if gen.hit_eos {
            " (stopped at end-of-sequence)"
        } else {
            ""
        }
    );
    eprintln!("total:     {total:.3} s");
    eprintln!(
        "memory:    peak RSS {}, model file {} (memory-mapped), state {}",
        crate::rss::peak_rss_bytes().map_or("n/a".into(), cli::mib),
        cli::mib(model.file_size() as u64),
        cli::mib(state_bytes)
    );
    if let Some(g) = &gpu {
        eprintln!(
            "device:    {} memory in use, peak {} (weights {})",
            cli::mib(g.memory_used()),
            cli::mib(g.peak_memory_used()),
            cli::mib(g.weights_bytes())
        );
    }
    eprintln!(
        "kernels:   {} ({threads} threads, device {})",
        mamba_kernels::cpu::kernels().name,
        args.device
    );
    Ok(())
}

/// The recurrent state of one sequence, bytes (as the CPU session holds it).
fn gpu_state_bytes(model: &Model) -> u64 {
    model.new_state().size_bytes() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_prompt_ids() {
        let ids = |s: &str| RunArgs::try_parse_from(["mamba-run", "m.mbin", "--prompt-ids", s]);
        assert_eq!(ids("1,2, 3").unwrap().prompt_ids.unwrap().0, vec![1, 2, 3]);
        assert_eq!(ids(" 7 ").unwrap().prompt_ids.unwrap().0, vec![7]);
        for bad in ["1,x", "-1", "", "1,,2", "1,", ",1", "1, ,2"] {
            assert!(ids(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn prompt_sources_conflict() {
        for args in [
            &["-p", "x", "-f", "p.txt"][..],
            &["-f", "p.txt", "--prompt-ids", "1"],
            &["-p", "x", "--prompt-ids", "1"],
            &[],
        ] {
            let all = ["mamba-run", "m.mbin"].iter().chain(args);
            assert!(RunArgs::try_parse_from(all).is_err(), "{args:?}");
        }
        let a = RunArgs::try_parse_from(["mamba-run", "m.mbin", "-f", "p.txt"]).unwrap();
        assert_eq!(a.file.unwrap(), PathBuf::from("p.txt"));
    }

    #[test]
    fn greedy_turns_the_default_penalty_off() {
        let args = RunArgs::parse_from(["mamba-run", "m.mbin", "-p", "x", "--temp", "0"]);
        assert_eq!(args.sampler_params(1).unwrap().repeat_penalty, 1.0);
        let args = RunArgs::parse_from([
            "mamba-run",
            "m.mbin",
            "-p",
            "x",
            "--temp",
            "0",
            "--repeat-penalty",
            "1.3",
        ]);
        assert_eq!(args.sampler_params(1).unwrap().repeat_penalty, 1.3);
        let args = RunArgs::parse_from(["mamba-run", "m.mbin", "-p", "x"]);
        assert_eq!(
            args.sampler_params(1).unwrap().repeat_penalty,
            DEFAULT_REPEAT_PENALTY
        );
    }

    #[test]
    fn impossible_sampling_values_are_errors() {
        for bad in [
            ["--temp", "-1"],
            ["--top-p", "0"],
            ["--top-p", "1.5"],
            ["--min-p", "2"],
            ["--repeat-penalty", "0"],
            ["--temp", "nan"],
        ] {
            let args = RunArgs::parse_from(["mamba-run", "m.mbin", "-p", "x", bad[0], bad[1]]);
            assert!(args.sampler_params(1).is_err(), "{bad:?}");
        }
    }
}
