//! Reading `config.json`: which checkpoint layout and architecture it is, and the
//! hyper-parameters.
//!
//! Recognised, by `model_type` (or, without one, by `architectures`, or by a
//! state-spaces `d_model`):
//!
//! | config | layout | architecture | parser |
//! |---|---|---|---|
//! | `model_type: "mamba"`, `MambaForCausalLM` | Hugging Face | `mamba` | `mamba::from_hf` |
//! | `model_type: "falcon_mamba"`, `FalconMambaForCausalLM` | Hugging Face | `falcon-mamba` | `mamba::from_hf` |
//! | `model_type: "mamba2"`, `Mamba2ForCausalLM` | Hugging Face | `mamba2` | `mamba2::from_hf` |
//! | `d_model`, `ssm_cfg.layer` absent or `"Mamba1"` | state-spaces | `mamba` | `mamba::from_ssm` |
//! | `d_model`, `ssm_cfg.layer: "Mamba2"` | state-spaces | `mamba2` | `mamba2::from_ssm` |
//!
//! Absent optional keys take the defaults of the class that wrote the config
//! (transformers' config classes, `mamba_ssm`'s layer constructors); each parser
//! cites its source. Nothing is hard-coded to the published sizes.
//!
//! What every state-spaces config shares (the `MambaConfig` dataclass of
//! `mamba_ssm/models/config_mamba.py`: `d_model`, `n_layer`, `vocab_size`, `ssm_cfg`,
//! `rms_norm`, `pad_vocab_size_multiple`, `tie_embeddings`, and no MLP or attention
//! layers) is read here: the embedding has `vocab_size` rounded up to a multiple of
//! `pad_vocab_size_multiple` rows (`MambaLMHeadModel.__init__` in
//! `mamba_ssm/models/mixer_seq_simple.py`).

use std::path::Path;

use mamba_files::limits::MAX_CONFIG_BYTES;
use mamba_files::{read_to_string_capped, FileError};
use mamba_format::arch::MAX_DIM;
use mamba_format::ModelConfig;
use serde_json::{Map, Value};

use crate::error::ConvertError;

mod json;
mod mamba;
mod mamba2;

use json::{parse_config_text, short, Json};

/// What [`ConvertError::UnknownArchitecture`] lists as supported.
pub const SUPPORTED_ARCHITECTURES: &str = "mamba (HF MambaForCausalLM, state-spaces mamba_ssm \
     Mamba1), falcon-mamba (HF FalconMambaForCausalLM), mamba2 (HF Mamba2ForCausalLM, \
     state-spaces mamba_ssm Mamba2)";

/// The checkpoint layout, which decides tensor names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// Hugging Face `MambaForCausalLM`, `FalconMambaForCausalLM`, `Mamba2ForCausalLM`.
    HuggingFace,
    /// state-spaces `mamba_ssm` `MambaLMHeadModel` (Mamba-1 or Mamba-2 layers).
    MambaSsm,
}

/// A parsed `config.json`.
#[derive(Clone, Debug)]
pub struct SourceConfig {
    /// Which layout.
    pub layout: Layout,
    /// The architecture and its hyper-parameters; the vocab size is the embedding's
    /// row count (padded for `mamba_ssm`).
    pub model: ModelConfig,
    /// Beginning-of-sequence id from the config, if it names one.
    pub bos_id: Option<u32>,
    /// End-of-sequence id from the config, if it names one.
    pub eos_id: Option<u32>,
    /// Padding id from the config, if it names one.
    pub pad_id: Option<u32>,
}

/// The Hugging Face families, by `model_type` and class name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum HfFamily {
    Mamba,
    FalconMamba,
    Mamba2,
}

impl HfFamily {
    const ALL: [HfFamily; 3] = [HfFamily::Mamba, HfFamily::FalconMamba, HfFamily::Mamba2];

    fn model_type(self) -> &'static str {
        match self {
            HfFamily::Mamba => "mamba",
            HfFamily::FalconMamba => "falcon_mamba",
            HfFamily::Mamba2 => "mamba2",
        }
    }

    fn class(self) -> &'static str {
        match self {
            HfFamily::Mamba => "MambaForCausalLM",
            HfFamily::FalconMamba => "FalconMambaForCausalLM",
            HfFamily::Mamba2 => "Mamba2ForCausalLM",
        }
    }
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
    let value = parse_config_text(&text).map_err(|source| ConvertError::MalformedJson {
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
    let by_class = HfFamily::ALL.into_iter().find(|f| {
        obj.get("architectures")
            .and_then(Value::as_array)
            .is_some_and(|a| a.iter().any(|v| v.as_str() == Some(f.class())))
    });
    match obj.get("model_type") {
        Some(Value::String(t)) => match HfFamily::ALL.into_iter().find(|f| f.model_type() == t) {
            Some(family) => parse_hf(&cfg, family),
            None => Err(unknown_arch(&path, t.clone())),
        },
        Some(other) => Err(unknown_arch(&path, short(other))),
        None => match by_class {
            Some(family) => parse_hf(&cfg, family),
            None if obj.contains_key("d_model") => parse_ssm(&cfg),
            None => Err(unknown_arch(
                &path,
                "a config.json with none of model_type, architectures or d_model".into(),
            )),
        },
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

fn parse_hf(cfg: &Json<'_>, family: HfFamily) -> Result<SourceConfig, ConvertError> {
    // Every family's mixer hard-codes SiLU in mamba_ssm; a config asking for another
    // activation describes a model this runtime would compute wrongly.
    if let Some(act) = cfg.opt_str("hidden_act")? {
        if act != "silu" {
            return Err(cfg.bad("hidden_act", "\"silu\"", &Value::String(act.into())));
        }
    }
    let model = match family {
        HfFamily::Mamba => ModelConfig::Mamba(mamba::from_hf(cfg, false)?),
        HfFamily::FalconMamba => ModelConfig::Mamba(mamba::from_hf(cfg, true)?),
        HfFamily::Mamba2 => ModelConfig::Mamba2(mamba2::from_hf(cfg)?),
    };
    let vocab_size = model.vocab_size();
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

/// What every `mamba_ssm` config has, whatever its layer.
struct SsmCommon<'a> {
    d_model: usize,
    n_layer: usize,
    /// Rounded up to `pad_vocab_size_multiple`: the embedding's rows.
    vocab_size: usize,
    /// Block and final norm epsilon (`norm_epsilon`, 1e-5 by default).
    rms_norm_eps: f64,
    tie_embeddings: bool,
    /// `ssm_cfg`, the layer's constructor arguments.
    ssm: Json<'a>,
}

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
    let common = SsmCommon {
        d_model,
        n_layer,
        vocab_size: padded,
        rms_norm_eps: cfg.eps("norm_epsilon")?,
        tie_embeddings: cfg.opt_bool("tie_embeddings")?.unwrap_or(true),
        ssm: Json {
            path: cfg.path,
            obj: ssm_obj,
            prefix: "ssm_cfg.",
        },
    };
    let model = match common.ssm.opt_str("layer")? {
        None | Some("Mamba1") => ModelConfig::Mamba(mamba::from_ssm(&common)?),
        Some("Mamba2") => ModelConfig::Mamba2(mamba2::from_ssm(&common)?),
        Some(other) => return Err(unknown_arch(cfg.path, format!("mamba_ssm {other} layer"))),
    };
    Ok(SourceConfig {
        layout: Layout::MambaSsm,
        model,
        bos_id: None,
        eos_id: None,
        pad_id: None,
    })
}
