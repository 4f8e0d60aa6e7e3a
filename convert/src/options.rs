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

/// Where the weights come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Input {
    /// A Hugging Face (`config.json` + `model.safetensors` or shards) or state-spaces
    /// `mamba_ssm` (`config.json` + `pytorch_model.bin`) directory.
    Dir(PathBuf),
    /// Seeded random weights with the shapes of a real Mamba model, for benchmarks and
    /// tests that need full-size files without downloading any.
    Synthetic {
        /// Which published model's shapes to use.
        size: SyntheticSize,
        /// PRNG seed; the same seed always gives the same file.
        seed: u64,
    },
}

/// The published Mamba-1 sizes (state-spaces/mamba-*), for [`Input::Synthetic`].
///
/// All have vocab 50280 (GPT-NeoX, padded to a multiple of 8), d_state 16, d_conv 4,
/// expand 2, dt_rank = ceil(d_model / 16), tied embeddings, a conv bias and no
/// projection biases.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SyntheticSize {
    /// d_model 768, 24 layers.
    M130,
    /// d_model 1024, 48 layers.
    M370,
    /// d_model 1536, 48 layers.
    M790,
    /// d_model 2048, 48 layers.
    B1_4,
    /// d_model 2560, 64 layers.
    B2_8,
}

impl SyntheticSize {
    /// Every size, smallest first.
    pub const ALL: [SyntheticSize; 5] = [
        SyntheticSize::M130,
        SyntheticSize::M370,
        SyntheticSize::M790,
        SyntheticSize::B1_4,
        SyntheticSize::B2_8,
    ];

    /// The name used on the command line and in `general.name` (`"130m"`).
    pub fn name(self) -> &'static str {
        match self {
            SyntheticSize::M130 => "130m",
            SyntheticSize::M370 => "370m",
            SyntheticSize::M790 => "790m",
            SyntheticSize::B1_4 => "1.4b",
            SyntheticSize::B2_8 => "2.8b",
        }
    }

    /// The hyper-parameters written for this size (see the type's docs).
    pub fn config(self) -> mamba_format::MambaConfig {
        crate::synthetic::synthetic_config(self)
    }

    /// `(d_model, n_layer)`.
    pub fn dims(self) -> (usize, usize) {
        match self {
            SyntheticSize::M130 => (768, 24),
            SyntheticSize::M370 => (1024, 48),
            SyntheticSize::M790 => (1536, 48),
            SyntheticSize::B1_4 => (2048, 48),
            SyntheticSize::B2_8 => (2560, 64),
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
