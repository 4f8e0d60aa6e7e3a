//! Reading `config.json`: which checkpoint layout it is, and the hyper-parameters.
//!
//! Two layouts are recognised:
//!
//! - **Hugging Face** `MambaForCausalLM` (`model_type: "mamba"`): `hidden_size`,
//!   `num_hidden_layers`, `vocab_size`, `state_size`, `expand`/`intermediate_size`,
//!   `conv_kernel`, `time_step_rank`, `use_bias`, `use_conv_bias`, `layer_norm_epsilon`,
//!   `tie_word_embeddings`, token ids. Absent optional keys take transformers'
//!   `MambaConfig` defaults.
//!   Source: `huggingface/transformers` `src/transformers/models/mamba/configuration_mamba.py`.
//! - **state-spaces** `mamba_ssm` (`d_model` and no `model_type`): the `MambaConfig`
//!   dataclass (`d_model`, `n_layer`, `vocab_size`, `ssm_cfg`, `rms_norm`,
//!   `pad_vocab_size_multiple`, `tie_embeddings`, ...), with the Mamba-1 layer defaults
//!   for `ssm_cfg` and RMSNorm eps 1e-5. The embedding has `vocab_size` rounded up to a
//!   multiple of `pad_vocab_size_multiple` rows.
//!   Source: `state-spaces/mamba` `mamba_ssm/models/config_mamba.py`,
//!   `mamba_ssm/models/mixer_seq_simple.py` (`MambaLMHeadModel.__init__`),
//!   `mamba_ssm/modules/mamba_simple.py` (`Mamba.__init__`).
//!
//! Nothing is hard-coded to the published sizes: any d_state, d_conv, dt_rank, expand
//! and vocab are accepted.

use std::path::{Path, PathBuf};

use mamba_files::limits::MAX_CONFIG_BYTES;
use mamba_files::{read_to_string_capped, FileError};
use mamba_format::arch::MAX_DIM;
use mamba_format::MambaConfig;
use serde_json::{Map, Value};

use crate::error::ConvertError;

/// What [`ConvertError::UnknownArchitecture`] lists as supported.
pub const SUPPORTED_ARCHITECTURES: &str =
    "mamba (HF MambaForCausalLM, state-spaces mamba_ssm Mamba1)";

/// The checkpoint layout, which decides tensor names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// Hugging Face `MambaForCausalLM`.
    HuggingFace,
    /// state-spaces `mamba_ssm` `MambaLMHeadModel`.
    MambaSsm,
}

/// A parsed `config.json`.
#[derive(Clone, Debug)]
pub struct SourceConfig {
    /// Which layout.
    pub layout: Layout,
    /// The hyper-parameters; `vocab_size` is the embedding's row count (padded for
    /// `mamba_ssm`).
    pub model: MambaConfig,
    /// Beginning-of-sequence id from the config, if it names one.
    pub bos_id: Option<u32>,
    /// End-of-sequence id from the config, if it names one.
    pub eos_id: Option<u32>,
    /// Padding id from the config, if it names one.
    pub pad_id: Option<u32>,
}

/// Reads and interprets `<dir>/config.json`.
pub fn read_config(dir: &Path) -> Result<SourceConfig, ConvertError> {
    let path = dir.join("config.json");
    // Capped and regular-file-only: a FIFO or /dev/zero named config.json must not
    // hang the conversion or exhaust memory.
    let text = match read_to_string_capped(&path, MAX_CONFIG_BYTES, "config.json") {
        Ok(t) => t,
        Err(FileError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            return Err(ConvertError::MissingConfig { path })
        }
        Err(e) => return Err(ConvertError::input_file("config", &path, e)),
    };
    let value: Value =
        serde_json::from_str(&text).map_err(|source| ConvertError::MalformedJson {
            path: path.clone(),
            source,
        })?;
    let Value::Object(obj) = &value else {
        return Err(ConvertError::BadConfigValue {
            path,
            key: "(top level)".into(),
            expected: "a JSON object".into(),
            found: short(&value),
        });
    };
    let cfg = Json {
        path: &path,
        obj,
        prefix: "",
    };
    let is_hf_arch = obj
        .get("architectures")
        .and_then(Value::as_array)
        .is_some_and(|a| a.iter().any(|v| v.as_str() == Some("MambaForCausalLM")));
    match obj.get("model_type") {
        Some(Value::String(t)) if t == "mamba" => parse_hf(&cfg),
        Some(other) => Err(unknown_arch(
            &path,
            other.as_str().map_or_else(|| short(other), str::to_string),
        )),
        None if is_hf_arch => parse_hf(&cfg),
        None if obj.contains_key("d_model") => parse_ssm(&cfg),
        None => Err(unknown_arch(
            &path,
            "a config.json with none of model_type, architectures or d_model".into(),
        )),
    }
}

fn unknown_arch(path: &Path, found: String) -> ConvertError {
    ConvertError::UnknownArchitecture {
        path: path.to_path_buf(),
        found,
        supported: SUPPORTED_ARCHITECTURES,
    }
}

// -----------------------------------------------------------------------------------
// Hugging Face
// -----------------------------------------------------------------------------------

fn parse_hf(cfg: &Json<'_>) -> Result<SourceConfig, ConvertError> {
    if let Some(act) = cfg.opt_str("hidden_act")? {
        if act != "silu" {
            return Err(cfg.bad("hidden_act", "\"silu\"", &Value::String(act.into())));
        }
    }
    let d_model = cfg.dim("hidden_size")?;
    let n_layer = cfg.dim("num_hidden_layers")?;
    let vocab_size = cfg.dim("vocab_size")?;
    let d_state = cfg.opt_dim("state_size")?.unwrap_or(16);
    let d_conv = cfg.opt_dim("conv_kernel")?.unwrap_or(4);
    let d_inner = match cfg.opt_dim("intermediate_size")? {
        Some(di) => di,
        None => cfg.inner_from_expand("expand", d_model)?,
    };
    let dt_rank = cfg.dt_rank("time_step_rank", d_model)?;
    let model = MambaConfig {
        d_model,
        n_layer,
        d_state,
        d_conv,
        d_inner,
        dt_rank,
        vocab_size,
        rms_norm_eps: cfg.eps("layer_norm_epsilon")?,
        tie_embeddings: cfg.opt_bool("tie_word_embeddings")?.unwrap_or(true),
        conv_bias: cfg.opt_bool("use_conv_bias")?.unwrap_or(true),
        proj_bias: cfg.opt_bool("use_bias")?.unwrap_or(false),
    };
    Ok(SourceConfig {
        layout: Layout::HuggingFace,
        bos_id: cfg.token_id("bos_token_id", vocab_size)?,
        eos_id: cfg.token_id("eos_token_id", vocab_size)?,
        pad_id: cfg.token_id("pad_token_id", vocab_size)?,
        model,
    })
}

// -----------------------------------------------------------------------------------
// state-spaces mamba_ssm
// -----------------------------------------------------------------------------------

fn parse_ssm(cfg: &Json<'_>) -> Result<SourceConfig, ConvertError> {
    let d_model = cfg.dim("d_model")?;
    let n_layer = cfg.dim("n_layer")?;
    let vocab = cfg.dim("vocab_size")?;
    if cfg.opt_dim0("d_intermediate")?.unwrap_or(0) != 0 {
        return Err(unknown_arch(
            cfg.path,
            "mamba_ssm with MLP blocks (d_intermediate > 0)".into(),
        ));
    }
    if cfg
        .obj
        .get("attn_layer_idx")
        .and_then(Value::as_array)
        .is_some_and(|a| !a.is_empty())
    {
        return Err(unknown_arch(
            cfg.path,
            "mamba_ssm hybrid with attention layers (attn_layer_idx)".into(),
        ));
    }
    if cfg.opt_bool("rms_norm")? == Some(false) {
        return Err(unknown_arch(
            cfg.path,
            "mamba_ssm with LayerNorm (rms_norm: false)".into(),
        ));
    }
    let empty = Map::new();
    let ssm_obj = match cfg.obj.get("ssm_cfg") {
        None | Some(Value::Null) => &empty,
        Some(Value::Object(m)) => m,
        Some(v) => return Err(cfg.bad("ssm_cfg", "an object", v)),
    };
    let ssm = Json {
        path: cfg.path,
        obj: ssm_obj,
        prefix: "ssm_cfg.",
    };
    match ssm.opt_str("layer")? {
        None | Some("Mamba1") => {}
        Some(other) => return Err(unknown_arch(cfg.path, format!("mamba_ssm {other} layer"))),
    }
    let multiple = cfg.opt_dim("pad_vocab_size_multiple")?.unwrap_or(8);
    let padded = vocab
        .checked_next_multiple_of(multiple)
        .filter(|&v| v <= MAX_DIM)
        .ok_or_else(|| {
            cfg.bad(
                "vocab_size",
                "a vocab that pads to a sane size",
                &Value::from(vocab),
            )
        })?;
    let model = MambaConfig {
        d_model,
        n_layer,
        d_state: ssm.opt_dim("d_state")?.unwrap_or(16),
        d_conv: ssm.opt_dim("d_conv")?.unwrap_or(4),
        d_inner: ssm.inner_from_expand("expand", d_model)?,
        dt_rank: ssm.dt_rank("dt_rank", d_model)?,
        vocab_size: padded,
        rms_norm_eps: cfg.eps("norm_epsilon")?,
        tie_embeddings: cfg.opt_bool("tie_embeddings")?.unwrap_or(true),
        conv_bias: ssm.opt_bool("conv_bias")?.unwrap_or(true),
        proj_bias: ssm.opt_bool("bias")?.unwrap_or(false),
    };
    Ok(SourceConfig {
        layout: Layout::MambaSsm,
        model,
        bos_id: None,
        eos_id: None,
        pad_id: None,
    })
}

// -----------------------------------------------------------------------------------
// Typed access to a JSON object, with errors naming the file and key
// -----------------------------------------------------------------------------------

struct Json<'a> {
    path: &'a Path,
    obj: &'a Map<String, Value>,
    /// Prepended to keys in errors (`ssm_cfg.`).
    prefix: &'a str,
}

impl<'a> Json<'a> {
    fn key(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    fn bad(&self, key: &str, expected: &str, found: &Value) -> ConvertError {
        ConvertError::BadConfigValue {
            path: PathBuf::from(self.path),
            key: self.key(key),
            expected: expected.into(),
            found: short(found),
        }
    }

    /// The value, with JSON `null` treated as absent.
    fn get(&self, key: &str) -> Option<&'a Value> {
        self.obj.get(key).filter(|v| !v.is_null())
    }

    fn require(&self, key: &str) -> Result<&'a Value, ConvertError> {
        self.get(key).ok_or_else(|| ConvertError::MissingConfigKey {
            path: PathBuf::from(self.path),
            key: self.key(key),
        })
    }

    fn as_dim(&self, key: &str, v: &Value, allow_zero: bool) -> Result<usize, ConvertError> {
        let lo = usize::from(!allow_zero);
        match v.as_u64() {
            Some(n) if (lo as u64..=MAX_DIM as u64).contains(&n) => Ok(n as usize),
            _ => Err(self.bad(key, &format!("an integer in {lo}..={MAX_DIM}"), v)),
        }
    }

    fn dim(&self, key: &str) -> Result<usize, ConvertError> {
        self.as_dim(key, self.require(key)?, false)
    }

    fn opt_dim(&self, key: &str) -> Result<Option<usize>, ConvertError> {
        self.get(key)
            .map(|v| self.as_dim(key, v, false))
            .transpose()
    }

    fn opt_dim0(&self, key: &str) -> Result<Option<usize>, ConvertError> {
        self.get(key).map(|v| self.as_dim(key, v, true)).transpose()
    }

    fn opt_bool(&self, key: &str) -> Result<Option<bool>, ConvertError> {
        self.get(key)
            .map(|v| v.as_bool().ok_or_else(|| self.bad(key, "true or false", v)))
            .transpose()
    }

    fn opt_str(&self, key: &str) -> Result<Option<&'a str>, ConvertError> {
        self.get(key)
            .map(|v| v.as_str().ok_or_else(|| self.bad(key, "a string", v)))
            .transpose()
    }

    /// `key × d_model` (the inner width); `key` defaults to 2 and may be fractional as
    /// long as the product is a whole number.
    fn inner_from_expand(&self, key: &str, d_model: usize) -> Result<usize, ConvertError> {
        let Some(v) = self.get(key) else {
            return Ok(2 * d_model);
        };
        let inner = v.as_f64().map(|e| e * d_model as f64);
        match inner {
            Some(x) if x >= 1.0 && x <= MAX_DIM as f64 && x.fract() == 0.0 => Ok(x as usize),
            _ => Err(self.bad(key, "a positive factor giving a whole inner width", v)),
        }
    }

    /// An integer rank or `"auto"` = ceil(d_model / 16) (the default).
    fn dt_rank(&self, key: &str, d_model: usize) -> Result<usize, ConvertError> {
        match self.get(key) {
            None => Ok(d_model.div_ceil(16)),
            Some(Value::String(s)) if s == "auto" => Ok(d_model.div_ceil(16)),
            Some(v) => self
                .as_dim(key, v, false)
                .map_err(|_| self.bad(key, "a positive integer or \"auto\"", v)),
        }
    }

    /// RMSNorm epsilon in (0, 1); 1e-5 when absent (the default of both layouts).
    fn eps(&self, key: &str) -> Result<f64, ConvertError> {
        match self.get(key) {
            None => Ok(1e-5),
            Some(v) => match v.as_f64() {
                Some(e) if e > 0.0 && e < 1.0 => Ok(e),
                _ => Err(self.bad(key, "a number in (0, 1)", v)),
            },
        }
    }

    /// An optional token id below `vocab`.
    fn token_id(&self, key: &str, vocab: usize) -> Result<Option<u32>, ConvertError> {
        let Some(v) = self.get(key) else {
            return Ok(None);
        };
        match v.as_u64() {
            Some(id) if (id as usize) < vocab => Ok(Some(id as u32)),
            _ => Err(self.bad(key, &format!("a token id below the vocab size {vocab}"), v)),
        }
    }
}

/// A JSON value for an error message, cut to 60 characters.
fn short(v: &Value) -> String {
    let s = v.to_string();
    if s.chars().count() > 60 {
        format!("{}...", s.chars().take(57).collect::<String>())
    } else {
        s
    }
}
