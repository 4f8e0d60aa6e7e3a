//! Architectures: their required metadata keys and standard tensors (SPEC.md §5).
//!
//! The architecture is a field of the file (`general.architecture`), and each one
//! is a variant here, so new families are added without touching the container
//! format. Falcon-Mamba is its own architecture name rather than a flag of `mamba`:
//! a reader that predates it then refuses the file by name instead of running it
//! without its extra norms and producing plausible but wrong text.

mod mamba;
mod mamba2;

pub use mamba::MambaConfig;
pub use mamba2::Mamba2Config;

use crate::error::{FormatError, Result};
use crate::index::TensorInfo;
use crate::metadata::Metadata;
use crate::quant::QuantType;
use crate::reader::MbinFile;
use std::collections::{HashMap, HashSet};

/// Metadata key naming the architecture.
pub const KEY_ARCHITECTURE: &str = "general.architecture";
/// Metadata key holding the embedded Hugging Face `tokenizer.json` (a string).
pub const KEY_TOKENIZER_JSON: &str = "tokenizer.huggingface.json";
/// Metadata key of the chat template (a Jinja string, as `tokenizer_config.json`'s
/// `chat_template`; optional).
pub const KEY_CHAT_TEMPLATE: &str = "tokenizer.chat_template";
/// Metadata key of the beginning-of-sequence token id.
pub const KEY_BOS_ID: &str = "tokenizer.bos_id";
/// Metadata key of the end-of-sequence token id.
pub const KEY_EOS_ID: &str = "tokenizer.eos_id";
/// Metadata key of the padding token id (optional).
pub const KEY_PAD_ID: &str = "tokenizer.pad_id";
/// Provenance: human-readable model name (string, optional).
pub const KEY_NAME: &str = "general.name";
/// Provenance: where the weights came from, a Hugging Face repo id or a path (string,
/// optional).
pub const KEY_SOURCE: &str = "general.source";
/// Provenance: the source checkpoint format, e.g. `"safetensors"` (string, optional).
pub const KEY_SOURCE_FORMAT: &str = "general.source_format";
/// Provenance: the program and version that wrote the file (string, optional).
pub const KEY_CONVERTER: &str = "general.converter";
/// Provenance: the quantization recipe, e.g. `"q8_0"` (string, optional).
pub const KEY_QUANTIZATION: &str = "general.quantization";
/// Provenance: true for randomly initialized test models (bool, optional).
pub const KEY_SYNTHETIC: &str = "general.synthetic";

/// The optional string-valued keys every architecture shares.
const STRING_KEYS: [&str; 7] = [
    KEY_NAME,
    KEY_SOURCE,
    KEY_SOURCE_FORMAT,
    KEY_CONVERTER,
    KEY_QUANTIZATION,
    KEY_TOKENIZER_JSON,
    KEY_CHAT_TEMPLATE,
];

/// A supported model architecture.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Architecture {
    /// Mamba-1 (Gu & Dao 2023), as in `MambaForCausalLM` and `mamba_ssm`.
    Mamba,
    /// Falcon-Mamba (TII 2024, `FalconMambaForCausalLM`): Mamba-1 blocks with
    /// weightless RMS norms on dt, B and C before the scan.
    FalconMamba,
    /// Mamba-2 (Dao & Gu 2024, "Transformers are SSMs"), as in `Mamba2ForCausalLM`
    /// and `mamba_ssm`'s `Mamba2` layer.
    Mamba2,
}

impl Architecture {
    /// Every supported architecture.
    pub const ALL: [Architecture; 3] = [
        Architecture::Mamba,
        Architecture::FalconMamba,
        Architecture::Mamba2,
    ];

    /// The `general.architecture` string.
    pub fn name(self) -> &'static str {
        match self {
            Architecture::Mamba => "mamba",
            Architecture::FalconMamba => "falcon-mamba",
            Architecture::Mamba2 => "mamba2",
        }
    }

    /// Parses a `general.architecture` string.
    pub fn from_name(s: &str) -> Result<Architecture> {
        Architecture::ALL
            .into_iter()
            .find(|a| a.name() == s)
            .ok_or_else(|| FormatError::UnknownArchitecture {
                found: s.to_string(),
                supported: Architecture::ALL.map(|a| a.name()).join(", "),
            })
    }
}

impl std::fmt::Display for Architecture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Largest dimension the loader accepts for any hyper-parameter (far above any real
/// model; it keeps shape arithmetic far from overflow).
pub const MAX_DIM: usize = 1 << 24;

/// What a standard tensor holds, which decides the types it may have.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TensorRole {
    /// A large matrix: any type whose block divides its row length.
    Matrix,
    /// A small SSM-sensitive tensor that must stay f32.
    F32Only,
}

/// One standard tensor: name, shape and role.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TensorDef {
    /// Standard name.
    pub name: String,
    /// Shape, outermost first.
    pub shape: Vec<u64>,
    /// Type rule.
    pub role: TensorRole,
}

fn def(name: String, shape: &[u64], role: TensorRole) -> TensorDef {
    TensorDef {
        name,
        shape: shape.to_vec(),
        role,
    }
}

/// The tensors every architecture has around its layers: the embedding first, then
/// `layers`, then the final norm and the untied LM head.
fn model_defs<'a>(
    d_model: u64,
    vocab: u64,
    n_layer: usize,
    tied: bool,
    layer: impl Fn(usize) -> Vec<TensorDef> + 'a,
) -> impl Iterator<Item = TensorDef> + 'a {
    use TensorRole::*;
    std::iter::once(def("embeddings.weight".into(), &[vocab, d_model], Matrix))
        .chain((0..n_layer).flat_map(layer))
        .chain(std::iter::once(def(
            "norm_f.weight".into(),
            &[d_model],
            F32Only,
        )))
        .chain((!tied).then(|| def("lm_head.weight".into(), &[vocab, d_model], Matrix)))
}

/// An integer dimension key: present, an integer, in `1..=MAX_DIM` (MUST-A3).
fn require_dim(md: &Metadata, key: &str) -> Result<usize> {
    let v = md.require_u64(key)?;
    if v == 0 || v > MAX_DIM as u64 {
        return Err(FormatError::BadValue {
            key: key.into(),
            why: format!("{v} is outside 1..={MAX_DIM}"),
        });
    }
    Ok(v as usize)
}

/// An epsilon key: present, a float, in (0, 1), so not NaN (MUST-A4).
fn require_eps(md: &Metadata, key: &str) -> Result<f64> {
    let v = md.require_f64(key)?;
    if !(v > 0.0 && v < 1.0) {
        return Err(FormatError::BadValue {
            key: key.into(),
            why: format!("{v} is not in (0, 1)"),
        });
    }
    Ok(v)
}

/// A dimension that is a product or sum of others (checked in u64, so no
/// overflow): at most [`MAX_DIM`].
fn check_derived(key: &str, what: &str, v: u64) -> Result<()> {
    if v > MAX_DIM as u64 {
        return Err(FormatError::BadValue {
            key: key.into(),
            why: format!("{what} = {v} is above {MAX_DIM}"),
        });
    }
    Ok(())
}

/// Checks that `tensors` are exactly the standard set `defs`, with their shapes and
/// allowed types (MUST-A7…A10).
///
/// Work and memory are bounded by `tensors.len()`, whatever `n_layer` claims: the
/// walk over the standard names stops at the first one that is missing.
fn check_tensors(defs: impl Iterator<Item = TensorDef>, tensors: &[TensorInfo]) -> Result<()> {
    let by_name: HashMap<&str, &TensorInfo> =
        tensors.iter().map(|t| (t.name.as_str(), t)).collect();
    let mut expected = HashSet::new();
    for def in defs {
        let t = by_name
            .get(def.name.as_str())
            .ok_or_else(|| FormatError::MissingTensor(def.name.clone()))?;
        if t.shape != def.shape {
            return Err(FormatError::ShapeMismatch {
                tensor: t.name.clone(),
                found: t.shape.clone(),
                expected: def.shape.clone(),
            });
        }
        if def.role == TensorRole::F32Only && t.ty != QuantType::F32 {
            return Err(FormatError::MustBeF32 {
                tensor: t.name.clone(),
                found: t.ty,
            });
        }
        expected.insert(t.name.as_str());
    }
    if let Some(extra) = tensors.iter().find(|t| !expected.contains(t.name.as_str())) {
        return Err(FormatError::UnexpectedTensor(extra.name.clone()));
    }
    Ok(())
}

/// The hyper-parameters of a file, by architecture.
#[derive(Clone, Debug, PartialEq)]
pub enum ModelConfig {
    /// A Mamba-1 or Falcon-Mamba model (the latter when
    /// [`MambaConfig::mixer_rms_eps`] is set).
    Mamba(MambaConfig),
    /// A Mamba-2 model.
    Mamba2(Mamba2Config),
}

impl ModelConfig {
    /// Reads the architecture and its hyper-parameters from a parsed file and checks
    /// its tensors against them: what a loader needs before trusting any shape.
    pub fn from_file(file: &MbinFile<'_>) -> Result<ModelConfig> {
        let md = &file.metadata;
        let arch = Architecture::from_name(md.require_str(KEY_ARCHITECTURE)?)?;
        check_optional_keys(md)?;
        let config = match arch {
            Architecture::Mamba | Architecture::FalconMamba => {
                ModelConfig::Mamba(MambaConfig::from_metadata(md, arch)?)
            }
            Architecture::Mamba2 => ModelConfig::Mamba2(Mamba2Config::from_metadata(md)?),
        };
        check_token_ids(md, config.vocab_size(), config.key("vocab_size"))?;
        check_tensors(config.defs(), &file.tensors)?;
        Ok(config)
    }

    /// Writes the architecture's keys and `general.architecture`.
    pub fn to_metadata(&self, md: &mut Metadata) -> Result<()> {
        match self {
            ModelConfig::Mamba(c) => c.to_metadata(md),
            ModelConfig::Mamba2(c) => c.to_metadata(md),
        }
    }

    /// The architecture.
    pub fn architecture(&self) -> Architecture {
        match self {
            ModelConfig::Mamba(c) => c.architecture(),
            ModelConfig::Mamba2(_) => Architecture::Mamba2,
        }
    }

    /// The metadata key `name` in this architecture's namespace, e.g.
    /// `mamba2.vocab_size`.
    pub fn key(&self, name: &str) -> String {
        let ns = match self {
            ModelConfig::Mamba(_) => "mamba",
            ModelConfig::Mamba2(_) => "mamba2",
        };
        format!("{ns}.{name}")
    }

    /// Residual stream width.
    pub fn d_model(&self) -> usize {
        match self {
            ModelConfig::Mamba(c) => c.d_model,
            ModelConfig::Mamba2(c) => c.d_model,
        }
    }

    /// Number of layers.
    pub fn n_layer(&self) -> usize {
        match self {
            ModelConfig::Mamba(c) => c.n_layer,
            ModelConfig::Mamba2(c) => c.n_layer,
        }
    }

    /// Inner (SSM) width.
    pub fn d_inner(&self) -> usize {
        match self {
            ModelConfig::Mamba(c) => c.d_inner,
            ModelConfig::Mamba2(c) => c.d_inner(),
        }
    }

    /// SSM state size N.
    pub fn d_state(&self) -> usize {
        match self {
            ModelConfig::Mamba(c) => c.d_state,
            ModelConfig::Mamba2(c) => c.d_state,
        }
    }

    /// Causal conv1d width K.
    pub fn d_conv(&self) -> usize {
        match self {
            ModelConfig::Mamba(c) => c.d_conv,
            ModelConfig::Mamba2(c) => c.d_conv,
        }
    }

    /// Channels of the causal conv1d (`d_inner` for Mamba-1; x, B and C for Mamba-2).
    pub fn conv_channels(&self) -> usize {
        match self {
            ModelConfig::Mamba(c) => c.d_inner,
            ModelConfig::Mamba2(c) => c.conv_dim(),
        }
    }

    /// Rows of the embedding and the LM head.
    pub fn vocab_size(&self) -> usize {
        match self {
            ModelConfig::Mamba(c) => c.vocab_size,
            ModelConfig::Mamba2(c) => c.vocab_size,
        }
    }

    /// Epsilon of the block norms and the final norm.
    pub fn rms_norm_eps(&self) -> f64 {
        match self {
            ModelConfig::Mamba(c) => c.rms_norm_eps,
            ModelConfig::Mamba2(c) => c.rms_norm_eps,
        }
    }

    /// Whether the LM head is the embedding.
    pub fn tie_embeddings(&self) -> bool {
        match self {
            ModelConfig::Mamba(c) => c.tie_embeddings,
            ModelConfig::Mamba2(c) => c.tie_embeddings,
        }
    }

    /// The standard tensors, in the order writers write them.
    pub fn tensor_defs(&self) -> Vec<TensorDef> {
        self.defs().collect()
    }

    fn defs(&self) -> Box<dyn Iterator<Item = TensorDef> + '_> {
        match self {
            ModelConfig::Mamba(c) => Box::new(c.defs()),
            ModelConfig::Mamba2(c) => Box::new(c.defs()),
        }
    }
}

/// The shared optional keys, when present, have their types (SPEC.md §5.2).
fn check_optional_keys(md: &Metadata) -> Result<()> {
    for key in STRING_KEYS {
        if md.get(key).is_some() {
            md.require_str(key)?;
        }
    }
    if md.get(KEY_SYNTHETIC).is_some() {
        md.require_bool(KEY_SYNTHETIC)?;
    }
    Ok(())
}

/// Token ids, when present, index the embedding: unsigned and below `vocab_size`.
fn check_token_ids(md: &Metadata, vocab_size: usize, vocab_key: String) -> Result<()> {
    for key in [KEY_BOS_ID, KEY_EOS_ID, KEY_PAD_ID] {
        if md.get(key).is_none() {
            continue;
        }
        let id = md.require_u64(key)?;
        if id >= vocab_size as u64 {
            return Err(FormatError::BadValue {
                key: key.into(),
                why: format!("token id {id} is not below {vocab_key} {vocab_size}"),
            });
        }
    }
    Ok(())
}
