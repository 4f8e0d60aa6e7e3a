//! The metadata written besides the architecture's hyper-parameters (`mamba.*`,
//! `mamba2.*`): provenance (`general.*`), the tokenizer and the chat template.

use std::path::Path;

use mamba_format::arch::{
    KEY_BOS_ID, KEY_CHAT_TEMPLATE, KEY_EOS_ID, KEY_PAD_ID, KEY_TOKENIZER_JSON,
};
use mamba_format::{FormatError, Metadata, ModelConfig, Value};

use crate::config::{Layout, SourceConfig};
use crate::error::ConvertError;
use crate::options::{ConvertOptions, Input};
use crate::tokenizer::Tokenizer;

pub use mamba_format::arch::{
    KEY_CONVERTER, KEY_NAME, KEY_QUANTIZATION, KEY_SOURCE, KEY_SOURCE_FORMAT, KEY_SYNTHETIC,
};

/// What the metadata says about the input besides its hyper-parameters.
pub struct Described {
    /// `general.name`.
    pub name: String,
    /// `general.source`.
    pub source: String,
    /// `general.source_format`.
    pub source_format: &'static str,
    /// The tokenizer to embed, if any.
    pub tokenizer: Option<Tokenizer>,
    /// `tokenizer.chat_template`: the Jinja source to store, if any.
    pub chat_template: Option<String>,
    /// bos, eos, pad.
    pub ids: [Option<u32>; 3],
    /// `general.quantization` when it is not the preset's name: a GGUF file kept in
    /// its stored types is labelled with its own mix (`q4_k_m`).
    pub quantization: Option<String>,
}

/// bos, eos, pad: the config's; else, for bos and eos (and pad of a `mamba_ssm`
/// checkpoint, which names none), the tokenizer's `<|endoftext|>`.
pub fn token_ids(cfg: &SourceConfig, tok: Option<&Tokenizer>) -> [Option<u32>; 3] {
    let eot = tok.and_then(|t| t.endoftext_id);
    let pad_default = if cfg.layout == Layout::MambaSsm {
        eot
    } else {
        None
    };
    [
        cfg.bos_id.or(eot),
        cfg.eos_id.or(eot),
        cfg.pad_id.or(pad_default),
    ]
}

/// The directory's own name (`.` resolved), for `general.name`.
pub fn dir_name(dir: &Path) -> String {
    std::fs::canonicalize(dir)
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "model".into())
}

/// The complete metadata section; warns when there is no tokenizer.
pub fn build_metadata(
    opts: &ConvertOptions,
    model: &ModelConfig,
    d: &Described,
    warnings: &mut Vec<String>,
) -> Result<Metadata, ConvertError> {
    let write_err = |source: FormatError| ConvertError::Write {
        path: opts.output.clone(),
        source,
    };
    let mut md = Metadata::new();
    model.to_metadata(&mut md).map_err(write_err)?;
    let mut entries = vec![
        (KEY_NAME, Value::String(d.name.clone())),
        (KEY_SOURCE, Value::String(d.source.clone())),
        (KEY_SOURCE_FORMAT, Value::String(d.source_format.into())),
        (
            KEY_CONVERTER,
            Value::String(format!("mamba-convert {}", env!("CARGO_PKG_VERSION"))),
        ),
        (
            KEY_QUANTIZATION,
            Value::String(
                d.quantization
                    .clone()
                    .unwrap_or_else(|| opts.preset.name().into()),
            ),
        ),
        (
            KEY_SYNTHETIC,
            Value::Bool(matches!(opts.input, Input::Synthetic { .. })),
        ),
    ];
    match &d.tokenizer {
        Some(t) => entries.push((KEY_TOKENIZER_JSON, Value::String(t.json.clone()))),
        None => warnings.push(
            "no tokenizer (no tokenizer.json in the input, no --tokenizer): the model will run on token ids only"
                .into(),
        ),
    }
    if let Some(t) = &d.chat_template {
        entries.push((KEY_CHAT_TEMPLATE, Value::String(t.clone())));
    }
    for (key, id) in [KEY_BOS_ID, KEY_EOS_ID, KEY_PAD_ID].into_iter().zip(d.ids) {
        if let Some(id) = id {
            entries.push((key, Value::U32(id)));
        }
    }
    for (k, v) in entries {
        md.set(k, v).map_err(write_err)?;
    }
    Ok(md)
}
