//! `mamba-convert`: a thin command line over [`mamba_convert::convert`].
//!
//! Every failure prints one line `error: ...` and exits with status 1; usage errors are
//! clap's (status 2, with the usage text).

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::builder::{PossibleValuesParser, TypedValueParser};
use clap::Parser;
use mamba_convert::{
    convert_with, dry_run_with, is_repo_id, peak_rss_bytes, ConvertOptions, Input, Overrides,
    Preset, SyntheticSize, MAX_CHAT_TEMPLATE_BYTES, MAX_TOKENIZER_BYTES,
};
use mamba_files::limits::{MAX_CONFIG_BYTES, MAX_INDEX_BYTES};

/// Convert a Hugging Face or state-spaces Mamba, Mamba-2 or Falcon-Mamba checkpoint (or
/// a synthetic model) into one .mbin file.
#[derive(Parser, Debug)]
#[command(name = "mamba-convert", version, about, after_help = after_help())]
struct Cli {
    /// What to convert, one of three forms: a checkpoint directory (config.json of HF
    /// MambaForCausalLM, FalconMambaForCausalLM, Mamba2ForCausalLM, or state-spaces
    /// mamba_ssm with Mamba1 or Mamba2 layers, plus model.safetensors, sharded
    /// model-*.safetensors with model.safetensors.index.json, or pytorch_model.bin); a
    /// llama.cpp GGUF file (architecture mamba or mamba2; blocks copied as stored unless
    /// --type is given); or a Hugging Face Hub id owner/name (downloaded into the HF
    /// cache; HF_HOME, HF_ENDPOINT and HF_TOKEN are honoured). A path that exists wins
    /// over a Hub id.
    #[arg(
        value_name = "INPUT",
        required_unless_present = "synthetic",
        conflicts_with = "synthetic"
    )]
    input: Option<PathBuf>,

    /// Branch, tag or commit of a Hub id (default: main).
    #[arg(long, value_name = "REV", conflicts_with = "synthetic")]
    revision: Option<String>,

    /// Output .mbin file (not needed with --dry-run).
    #[arg(
        short,
        long,
        value_name = "OUT.mbin",
        required_unless_present = "dry_run"
    )]
    output: Option<PathBuf>,

    /// Tensor type for the weight matrices (norms, conv1d, biases, A, D and dt_bias
    /// always stay f32); q2_k_m, q3_k_m, q4_k_m and q5_k_m are llama.cpp-style mixes (see
    /// PRESETS.md).
    /// Default f16; for a GGUF input the default keeps every tensor's stored type.
    #[arg(short = 't', long = "type", value_name = "TYPE", value_parser = preset_parser())]
    preset: Option<Preset>,

    /// Overwrite OUT.mbin if it exists (a regular file only, never an input).
    #[arg(short, long)]
    force: bool,

    /// tokenizer.json to embed (default: INPUT_DIR/tokenizer.json when present).
    #[arg(long, value_name = "PATH")]
    tokenizer: Option<PathBuf>,

    /// Chat template to store (Jinja source, UTF-8), replacing the input's (default:
    /// INPUT_DIR/chat_template.jinja, else tokenizer_config.json's chat_template, else
    /// chat_template.json's; a GGUF file's tokenizer.chat_template).
    #[arg(long, value_name = "FILE")]
    chat_template: Option<PathBuf>,

    /// Write seeded random weights with the shapes of a published model instead of
    /// reading a checkpoint: Mamba-1 130m..2.8b (state-spaces/mamba-*), Mamba-2
    /// mamba2-130m..mamba2-2.7b (state-spaces/mamba2-*), codestral-mamba-7b (Mamba-2),
    /// falcon-mamba-7b.
    #[arg(long, value_name = "SIZE", value_parser = size_parser())]
    synthetic: Option<SyntheticSize>,

    /// Seed for --synthetic (any u64).
    #[arg(long, value_name = "N", default_value_t = 0, requires = "synthetic")]
    seed: u64,

    /// No progress bar and no summary table (warnings and errors still print).
    #[arg(short, long)]
    quiet: bool,

    /// Read the config and the tensor headers, check every tensor and print what would
    /// be written (architecture, types, fallbacks, size); write nothing.
    #[arg(long)]
    dry_run: bool,
}

/// The help's closing text; the limits come from the constants that enforce them.
fn after_help() -> String {
    let mib = |n: u64| n >> 20;
    format!(
        "\
Files: every input must be a regular file (a directory, FIFO, device or socket is
refused by its kind). Files loaded whole are capped: config.json {} MiB,
model.safetensors.index.json {} MiB, the tokenizer {} MiB and a chat template file
(tokenizer_config.json included) {} MiB (what an .mbin metadata string holds).
Weights are memory-mapped, not loaded whole; the CRC-32 of every pytorch_model.bin
member read is checked.

Output: written to a temporary file beside OUT.mbin (.OUT.mbin.tmpPID) and renamed into
place when complete; removed on an error and on SIGINT, SIGTERM or SIGHUP. --force
replaces only a regular file, never a device, FIFO, directory or socket, and never
one of the conversion's own inputs (also through a hard link or symlink). Temporary
files of killed runs found beside the output are reported as warnings.

Exit status: 0 on success, 1 on a conversion error (one line `error: ...` on stderr; no
output file is left behind), 2 on a usage error.",
        mib(MAX_CONFIG_BYTES),
        mib(MAX_INDEX_BYTES),
        mib(MAX_TOKENIZER_BYTES),
        mib(MAX_CHAT_TEMPLATE_BYTES),
    )
}

fn preset_parser() -> impl TypedValueParser<Value = Preset> {
    let names: Vec<&'static str> = Preset::all().iter().map(|p| p.name()).collect();
    PossibleValuesParser::new(names).try_map(|s| s.parse::<Preset>())
}

fn size_parser() -> impl TypedValueParser<Value = SyntheticSize> {
    PossibleValuesParser::new(SyntheticSize::ALL.map(|s| s.name()))
        .try_map(|s| s.parse::<SyntheticSize>())
}

/// Which of the three input forms `path` is: an existing directory, an existing file
/// (a GGUF file; anything else is refused by the GGUF reader with its reason), or, when
/// nothing exists there and it reads as `owner/name`, a Hub id.
fn classify_input(
    path: PathBuf,
    revision: Option<String>,
    requantize: bool,
) -> Result<Input, String> {
    let exists = path.symlink_metadata().is_ok();
    if exists {
        if revision.is_some() {
            return Err(format!(
                "--revision applies to a Hub id, but {} is a local path",
                path.display()
            ));
        }
        return Ok(if path.is_dir() {
            Input::Dir(path)
        } else {
            Input::Gguf { path, requantize }
        });
    }
    match path.to_str().filter(|s| is_repo_id(s)) {
        Some(repo) => Ok(Input::Hub {
            repo: repo.to_string(),
            revision,
        }),
        // Let the directory reader say "no such file or directory" with the path.
        None if revision.is_none() => Ok(Input::Dir(path)),
        None => Err(format!(
            "{} is neither a local path nor a Hub id (owner/name)",
            path.display()
        )),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let input = match (cli.synthetic, cli.input) {
        (Some(size), _) => Input::Synthetic {
            size,
            seed: cli.seed,
        },
        (None, Some(path)) => match classify_input(path, cli.revision, cli.preset.is_some()) {
            Ok(input) => input,
            Err(msg) => {
                eprintln!("error: {msg}");
                return ExitCode::FAILURE;
            }
        },
        (None, None) => {
            // clap already enforces this; kept so that no path panics.
            eprintln!("error: give INPUT_DIR or --synthetic SIZE");
            return ExitCode::from(2);
        }
    };
    let progress = !cli.quiet && std::io::stderr().is_terminal();
    let opts = ConvertOptions {
        input,
        // A dry run writes nothing and ignores the output path.
        output: cli.output.unwrap_or_default(),
        preset: cli
            .preset
            .unwrap_or(Preset::Uniform(mamba_format::QuantType::F16)),
        force: cli.force,
        tokenizer: cli.tokenizer,
        progress,
    };
    let mut overrides = Overrides::default();
    overrides.chat_template = cli.chat_template;
    if cli.dry_run {
        return match dry_run_with(&opts, &overrides) {
            Ok(plan) => {
                for w in &plan.warnings {
                    eprintln!("warning: {w}");
                }
                if !cli.quiet {
                    eprint!("{}", plan.table());
                }
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::FAILURE
            }
        };
    }
    match convert_with(&opts, &overrides) {
        Ok(summary) => {
            if !progress {
                // Warnings were not printed live.
                for w in &summary.warnings {
                    eprintln!("warning: {w}");
                }
            }
            if !cli.quiet {
                eprint!("{}", summary.table(peak_rss_bytes()));
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
