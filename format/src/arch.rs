//! Architectures: their required metadata keys and standard tensors (SPEC.md §5).
//!
//! The architecture is a field of the file (`general.architecture`), and each one
//! is a variant here, so Falcon-Mamba and Mamba-2 can be added as new variants
//! without touching the container format.

use crate::error::{FormatError, Result};
use crate::index::TensorInfo;
use crate::metadata::{Metadata, Value};
use crate::quant::QuantType;
use crate::reader::MbinFile;
use std::collections::{HashMap, HashSet};

/// Metadata key naming the architecture.
pub const KEY_ARCHITECTURE: &str = "general.architecture";
/// Metadata key holding the embedded Hugging Face `tokenizer.json` (a string).
pub const KEY_TOKENIZER_JSON: &str = "tokenizer.huggingface.json";
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
const STRING_KEYS: [&str; 6] = [
    KEY_NAME,
    KEY_SOURCE,
    KEY_SOURCE_FORMAT,
    KEY_CONVERTER,
    KEY_QUANTIZATION,
    KEY_TOKENIZER_JSON,
];

/// A supported model architecture.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Architecture {
    /// Mamba-1 (Gu & Dao 2023), as in `MambaForCausalLM` and `mamba_ssm`.
    Mamba,
}

impl Architecture {
    /// Every supported architecture.
    pub const ALL: [Architecture; 1] = [Architecture::Mamba];

    /// The `general.architecture` string.
    pub fn name(self) -> &'static str {
        match self {
            Architecture::Mamba => "mamba",
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

/// Mamba-1 hyper-parameters (`mamba.*` metadata keys).
#[derive(Clone, Debug, PartialEq)]
pub struct MambaConfig {
    /// Residual stream width (`mamba.d_model`).
    pub d_model: usize,
    /// Number of layers (`mamba.n_layer`).
    pub n_layer: usize,
    /// SSM state size N per channel (`mamba.d_state`).
    pub d_state: usize,
    /// Causal conv1d kernel width (`mamba.d_conv`).
    pub d_conv: usize,
    /// Inner width, expand × d_model (`mamba.d_inner`).
    pub d_inner: usize,
    /// Rank of the dt projection (`mamba.dt_rank`).
    pub dt_rank: usize,
    /// Rows of the embedding and the LM head (`mamba.vocab_size`), padding included.
    pub vocab_size: usize,
    /// RMSNorm epsilon (`mamba.rms_norm_eps`).
    pub rms_norm_eps: f64,
    /// LM head shares the embedding (`mamba.tie_embeddings`).
    pub tie_embeddings: bool,
    /// conv1d has a bias (`mamba.conv_bias`).
    pub conv_bias: bool,
    /// in_proj and out_proj have biases (`mamba.proj_bias`).
    pub proj_bias: bool,
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

impl MambaConfig {
    /// Reads and checks the `mamba.*` keys.
    pub fn from_metadata(md: &Metadata) -> Result<MambaConfig> {
        let dim = |key: &str| -> Result<usize> {
            let v = md.require_u64(key)?;
            if v == 0 || v > MAX_DIM as u64 {
                return Err(FormatError::BadValue {
                    key: key.into(),
                    why: format!("{v} is outside 1..={MAX_DIM}"),
                });
            }
            Ok(v as usize)
        };
        let c = MambaConfig {
            d_model: dim("mamba.d_model")?,
            n_layer: dim("mamba.n_layer")?,
            d_state: dim("mamba.d_state")?,
            d_conv: dim("mamba.d_conv")?,
            d_inner: dim("mamba.d_inner")?,
            dt_rank: dim("mamba.dt_rank")?,
            vocab_size: dim("mamba.vocab_size")?,
            rms_norm_eps: md.require_f64("mamba.rms_norm_eps")?,
            tie_embeddings: md.require_bool("mamba.tie_embeddings")?,
            conv_bias: md.require_bool("mamba.conv_bias")?,
            proj_bias: md.require_bool("mamba.proj_bias")?,
        };
        if !(c.rms_norm_eps > 0.0 && c.rms_norm_eps < 1.0) {
            return Err(FormatError::BadValue {
                key: "mamba.rms_norm_eps".into(),
                why: format!("{} is not in (0, 1)", c.rms_norm_eps),
            });
        }
        Ok(c)
    }

    /// Writes the `mamba.*` keys and `general.architecture`.
    pub fn to_metadata(&self, md: &mut Metadata) -> Result<()> {
        md.set(
            KEY_ARCHITECTURE,
            Value::String(Architecture::Mamba.name().into()),
        )?;
        for (k, v) in [
            ("mamba.d_model", self.d_model),
            ("mamba.n_layer", self.n_layer),
            ("mamba.d_state", self.d_state),
            ("mamba.d_conv", self.d_conv),
            ("mamba.d_inner", self.d_inner),
            ("mamba.dt_rank", self.dt_rank),
            ("mamba.vocab_size", self.vocab_size),
        ] {
            md.set(k, Value::U64(v as u64))?;
        }
        md.set("mamba.rms_norm_eps", Value::F64(self.rms_norm_eps))?;
        md.set("mamba.tie_embeddings", Value::Bool(self.tie_embeddings))?;
        md.set("mamba.conv_bias", Value::Bool(self.conv_bias))?;
        md.set("mamba.proj_bias", Value::Bool(self.proj_bias))?;
        Ok(())
    }

    /// The standard tensors, in the order the converter writes them.
    pub fn tensor_defs(&self) -> Vec<TensorDef> {
        self.defs().collect()
    }

    /// [`MambaConfig::tensor_defs`] as a lazy iterator: `n_layer` may be up to
    /// [`MAX_DIM`], so checking a file must not materialize every name up front.
    fn defs(&self) -> impl Iterator<Item = TensorDef> + '_ {
        use TensorRole::*;
        let (d, di, n, r, v, k) = (
            self.d_model as u64,
            self.d_inner as u64,
            self.d_state as u64,
            self.dt_rank as u64,
            self.vocab_size as u64,
            self.d_conv as u64,
        );
        fn def(name: String, shape: &[u64], role: TensorRole) -> TensorDef {
            TensorDef {
                name,
                shape: shape.to_vec(),
                role,
            }
        }
        let layer = move |i: usize| {
            let p = |s: &str| format!("layers.{i}.{s}");
            [
                Some(def(p("norm.weight"), &[d], F32Only)),
                Some(def(p("mixer.in_proj.weight"), &[2 * di, d], Matrix)),
                self.proj_bias
                    .then(|| def(p("mixer.in_proj.bias"), &[2 * di], F32Only)),
                Some(def(p("mixer.conv1d.weight"), &[di, k], F32Only)),
                self.conv_bias
                    .then(|| def(p("mixer.conv1d.bias"), &[di], F32Only)),
                Some(def(p("mixer.x_proj.weight"), &[r + 2 * n, di], Matrix)),
                Some(def(p("mixer.dt_proj.weight"), &[di, r], Matrix)),
                Some(def(p("mixer.dt_proj.bias"), &[di], F32Only)),
                Some(def(p("mixer.A"), &[di, n], F32Only)),
                Some(def(p("mixer.D"), &[di], F32Only)),
                Some(def(p("mixer.out_proj.weight"), &[d, di], Matrix)),
                self.proj_bias
                    .then(|| def(p("mixer.out_proj.bias"), &[d], F32Only)),
            ]
            .into_iter()
            .flatten()
        };
        std::iter::once(def("embeddings.weight".into(), &[v, d], Matrix))
            .chain((0..self.n_layer).flat_map(layer))
            .chain(std::iter::once(def("norm_f.weight".into(), &[d], F32Only)))
            .chain((!self.tie_embeddings).then(|| def("lm_head.weight".into(), &[v, d], Matrix)))
    }

    /// Checks that `tensors` are exactly the standard set, with the implied shapes and
    /// allowed types.
    ///
    /// Work and memory are bounded by `tensors.len()`, whatever `n_layer` claims: the
    /// walk over the standard names stops at the first one that is missing.
    pub fn check_tensors(&self, tensors: &[TensorInfo]) -> Result<()> {
        let by_name: HashMap<&str, &TensorInfo> =
            tensors.iter().map(|t| (t.name.as_str(), t)).collect();
        let mut expected = HashSet::new();
        for def in self.defs() {
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
}

/// The hyper-parameters of a file, by architecture.
#[derive(Clone, Debug, PartialEq)]
pub enum ModelConfig {
    /// A Mamba-1 model.
    Mamba(MambaConfig),
}

impl ModelConfig {
    /// Reads the architecture and its hyper-parameters from a parsed file and checks
    /// its tensors against them: what a loader needs before trusting any shape.
    pub fn from_file(file: &MbinFile<'_>) -> Result<ModelConfig> {
        let md = &file.metadata;
        let arch = Architecture::from_name(md.require_str(KEY_ARCHITECTURE)?)?;
        check_optional_keys(md)?;
        match arch {
            Architecture::Mamba => {
                let c = MambaConfig::from_metadata(md)?;
                check_token_ids(md, c.vocab_size)?;
                c.check_tensors(&file.tensors)?;
                Ok(ModelConfig::Mamba(c))
            }
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
fn check_token_ids(md: &Metadata, vocab_size: usize) -> Result<()> {
    for key in [KEY_BOS_ID, KEY_EOS_ID, KEY_PAD_ID] {
        if md.get(key).is_none() {
            continue;
        }
        let id = md.require_u64(key)?;
        if id >= vocab_size as u64 {
            return Err(FormatError::BadValue {
                key: key.into(),
                why: format!("token id {id} is not below mamba.vocab_size {vocab_size}"),
            });
        }
    }
    Ok(())
}
