//! What to convert and where: [`ConvertOptions`], [`Input`], [`SyntheticSize`].

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use crate::error::ParseNameError;
use crate::preset::Preset;

/// Everything [`crate::convert`] needs.
#[derive(Clone, Debug)]
pub struct ConvertOptions {
    /// The checkpoint directory, or a synthetic model.
    pub input: Input,
    /// The `.mbin` file to write (atomically: it appears only when complete).
    pub output: PathBuf,
    /// Tensor types; see [`Preset`].
    pub preset: Preset,
    /// Overwrite `output` if it exists. Only a regular file is ever replaced, and
    /// never one of the conversion's inputs (also through a hard link or symlink).
    pub force: bool,
    /// A `tokenizer.json` to embed, overriding one found in the input directory.
    pub tokenizer: Option<PathBuf>,
    /// Draw a progress bar on stderr (only when stderr is a terminal), and print
    /// warnings and fallback notes as they happen. Without it the library prints
    /// nothing; warnings are still in [`crate::Summary::warnings`].
    pub progress: bool,
}

/// Inputs beyond [`ConvertOptions`] that replace what the converted model brings,
/// for [`crate::convert_with`] and [`crate::dry_run_with`].
///
/// Kept apart from [`ConvertOptions`] so that code building those options field by
/// field keeps compiling as overrides are added: build one with
/// `Overrides::default()` and set the fields wanted.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Overrides {
    /// A file holding a chat template (Jinja source, UTF-8), stored as
    /// `tokenizer.chat_template` instead of any the input has.
    pub chat_template: Option<PathBuf>,
}

/// Where the weights come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Input {
    /// A Hugging Face (`config.json` + `model.safetensors` or shards) or state-spaces
    /// `mamba_ssm` (`config.json` + `pytorch_model.bin`) directory of a Mamba,
    /// Falcon-Mamba or Mamba-2 model.
    Dir(PathBuf),
    /// A llama.cpp GGUF file of architecture `mamba` (Falcon-Mamba included) or
    /// `mamba2`.
    Gguf {
        /// The `.gguf` file.
        path: PathBuf,
        /// `false`: every tensor keeps its stored type and blocks are copied byte for
        /// byte ([`ConvertOptions::preset`] is not used). `true`: the weights are
        /// dequantized and quantized again as the preset says.
        requantize: bool,
    },
    /// A Hugging Face Hub repository (`owner/name`), downloaded into the standard cache
    /// (`HF_HOME`) and then converted as a [`Input::Dir`].
    Hub {
        /// The repository id, `owner/name`.
        repo: String,
        /// A branch, tag or commit; `main` when `None`.
        revision: Option<String>,
    },
    /// Seeded random weights with the shapes of a published Mamba, Mamba-2 or
    /// Falcon-Mamba model, for benchmarks and tests that need full-size files without
    /// downloading any.
    Synthetic {
        /// Which published model's shapes to use.
        size: SyntheticSize,
        /// PRNG seed; the same seed always gives the same file.
        seed: u64,
    },
}

/// The published model shapes [`Input::Synthetic`] can write, by family:
///
/// - **Mamba-1** (`130m`, `370m`, `790m`, `1.4b`, `2.8b`: state-spaces/mamba-*): vocab
///   50280 (GPT-NeoX, padded to a multiple of 8), d_state 16, d_conv 4, expand 2,
///   dt_rank = ceil(d_model / 16), tied embeddings, a conv bias, no projection biases,
///   eps 1e-5.
/// - **Mamba-2** (`mamba2-130m`, `mamba2-370m`, `mamba2-780m`, `mamba2-1.3b`,
///   `mamba2-2.7b`: state-spaces/mamba2-*): expand 2, heads of 64, d_state 128, one
///   group, d_conv 4, chunks of 256, vocab 50288, tied, a conv bias, no projection
///   biases, eps 1e-5, no dt clamp.
/// - **Mamba-Codestral** (`codestral-mamba-7b`: mistralai/Mamba-Codestral-7B-v0.1):
///   Mamba-2 with d_model 4096, 64 layers, 128 heads of 64, 8 groups, d_state 128,
///   vocab 32768, untied.
/// - **Falcon-Mamba** (`falcon-mamba-7b`: tiiuae/falcon-mamba-7b): Mamba-1 blocks with
///   d_model 4096, 64 layers, d_inner 8192, d_state 16, dt_rank 256, vocab 65024,
///   untied, eps 1e-5, dt/B/C norm eps 1e-6.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SyntheticSize {
    /// Mamba-1, d_model 768, 24 layers.
    M130,
    /// Mamba-1, d_model 1024, 48 layers.
    M370,
    /// Mamba-1, d_model 1536, 48 layers.
    M790,
    /// Mamba-1, d_model 2048, 48 layers.
    B1_4,
    /// Mamba-1, d_model 2560, 64 layers.
    B2_8,
    /// Mamba-2, d_model 768, 24 layers.
    Mamba2M130,
    /// Mamba-2, d_model 1024, 48 layers.
    Mamba2M370,
    /// Mamba-2, d_model 1536, 48 layers.
    Mamba2M780,
    /// Mamba-2, d_model 2048, 48 layers.
    Mamba2B1_3,
    /// Mamba-2, d_model 2560, 64 layers.
    Mamba2B2_7,
    /// Mamba-Codestral 7B (Mamba-2), d_model 4096, 64 layers.
    CodestralMamba7B,
    /// Falcon-Mamba 7B, d_model 4096, 64 layers.
    FalconMamba7B,
}

/// Which hyper-parameter family a [`SyntheticSize`] belongs to (see its docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SyntheticFamily {
    Mamba,
    FalconMamba,
    Mamba2,
    Codestral,
}

impl SyntheticSize {
    /// Every size: Mamba-1 smallest first, then Mamba-2, Codestral and Falcon-Mamba.
    pub const ALL: [SyntheticSize; 12] = [
        SyntheticSize::M130,
        SyntheticSize::M370,
        SyntheticSize::M790,
        SyntheticSize::B1_4,
        SyntheticSize::B2_8,
        SyntheticSize::Mamba2M130,
        SyntheticSize::Mamba2M370,
        SyntheticSize::Mamba2M780,
        SyntheticSize::Mamba2B1_3,
        SyntheticSize::Mamba2B2_7,
        SyntheticSize::CodestralMamba7B,
        SyntheticSize::FalconMamba7B,
    ];

    /// The name used on the command line and in `general.name` (`"130m"`,
    /// `"mamba2-130m"`).
    pub fn name(self) -> &'static str {
        match self {
            SyntheticSize::M130 => "130m",
            SyntheticSize::M370 => "370m",
            SyntheticSize::M790 => "790m",
            SyntheticSize::B1_4 => "1.4b",
            SyntheticSize::B2_8 => "2.8b",
            SyntheticSize::Mamba2M130 => "mamba2-130m",
            SyntheticSize::Mamba2M370 => "mamba2-370m",
            SyntheticSize::Mamba2M780 => "mamba2-780m",
            SyntheticSize::Mamba2B1_3 => "mamba2-1.3b",
            SyntheticSize::Mamba2B2_7 => "mamba2-2.7b",
            SyntheticSize::CodestralMamba7B => "codestral-mamba-7b",
            SyntheticSize::FalconMamba7B => "falcon-mamba-7b",
        }
    }

    /// The hyper-parameters written for this size (see the type's docs).
    pub fn config(self) -> mamba_format::ModelConfig {
        crate::synthetic::synthetic_config(self)
    }

    /// The architecture written for this size.
    pub fn architecture(self) -> mamba_format::Architecture {
        self.config().architecture()
    }

    /// `(d_model, n_layer)`.
    pub fn dims(self) -> (usize, usize) {
        match self {
            SyntheticSize::M130 | SyntheticSize::Mamba2M130 => (768, 24),
            SyntheticSize::M370 | SyntheticSize::Mamba2M370 => (1024, 48),
            SyntheticSize::M790 | SyntheticSize::Mamba2M780 => (1536, 48),
            SyntheticSize::B1_4 | SyntheticSize::Mamba2B1_3 => (2048, 48),
            SyntheticSize::B2_8 | SyntheticSize::Mamba2B2_7 => (2560, 64),
            SyntheticSize::CodestralMamba7B | SyntheticSize::FalconMamba7B => (4096, 64),
        }
    }

    pub(crate) fn family(self) -> SyntheticFamily {
        match self {
            SyntheticSize::M130
            | SyntheticSize::M370
            | SyntheticSize::M790
            | SyntheticSize::B1_4
            | SyntheticSize::B2_8 => SyntheticFamily::Mamba,
            SyntheticSize::Mamba2M130
            | SyntheticSize::Mamba2M370
            | SyntheticSize::Mamba2M780
            | SyntheticSize::Mamba2B1_3
            | SyntheticSize::Mamba2B2_7 => SyntheticFamily::Mamba2,
            SyntheticSize::CodestralMamba7B => SyntheticFamily::Codestral,
            SyntheticSize::FalconMamba7B => SyntheticFamily::FalconMamba,
        }
    }
}

impl fmt::Display for SyntheticSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for SyntheticSize {
    type Err = ParseNameError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        SyntheticSize::ALL
            .into_iter()
            .find(|z| z.name().eq_ignore_ascii_case(s))
            .ok_or_else(|| ParseNameError {
                what: "synthetic size",
                found: s.to_string(),
                accepted: SyntheticSize::ALL.map(|z| z.name()).join(", "),
            })
    }
}
