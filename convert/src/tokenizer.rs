//! The tokenizer to embed: a Hugging Face `tokenizer.json`, checked just enough to
//! know it is one and that its ids fit the model.

use std::path::Path;

use mamba_files::read_to_string_capped;
use mamba_format::metadata::MAX_STRING_LEN;
use serde_json::Value;

use crate::error::ConvertError;

/// The end-of-text token of the GPT-NeoX tokenizer every published Mamba uses; a
/// `mamba_ssm` config names no special ids, so they come from this token.
pub const ENDOFTEXT: &str = "<|endoftext|>";

/// A validated `tokenizer.json`.
#[derive(Clone, Debug)]
pub struct Tokenizer {
    /// The file's text, embedded verbatim.
    pub json: String,
    /// The id of [`ENDOFTEXT`], if the tokenizer has it.
    pub endoftext_id: Option<u32>,
}

/// The largest `tokenizer.json` accepted: what one `.mbin` metadata string holds
/// (64 MiB; the largest published tokenizers are tens of MiB).
pub const MAX_TOKENIZER_BYTES: u64 = MAX_STRING_LEN;

/// Reads and checks a `tokenizer.json`: valid JSON, an object with a `model` key, no id
/// at or beyond `vocab_size` (the model's embedding rows), a regular file of at most
/// [`MAX_TOKENIZER_BYTES`].
pub fn load_tokenizer(path: &Path, vocab_size: usize) -> Result<Tokenizer, ConvertError> {
    // Regular files only (a FIFO must not hang, /dev/zero must not fill memory), and
    // never more than a metadata string can hold.
    let json = read_to_string_capped(path, MAX_TOKENIZER_BYTES, "a tokenizer")
        .map_err(|e| ConvertError::input_file("tokenizer", path, e))?;
    check_tokenizer(json, path, vocab_size)
}

/// [`load_tokenizer`]'s checks on a `tokenizer.json` already in memory (one rebuilt
/// from a GGUF file); `path` is the file errors name.
pub fn check_tokenizer(
    json: String,
    path: &Path,
    vocab_size: usize,
) -> Result<Tokenizer, ConvertError> {
    let bad = |why: String| ConvertError::BadTokenizer {
        path: path.to_path_buf(),
        why,
    };
    if json.len() as u64 > MAX_TOKENIZER_BYTES {
        return Err(bad(format!(
            "{} bytes is more than a metadata string holds ({MAX_TOKENIZER_BYTES})",
            json.len()
        )));
    }
    let value: Value =
        serde_json::from_str(&json).map_err(|source| ConvertError::MalformedJson {
            path: path.to_path_buf(),
            source,
        })?;
    let model = value
        .get("model")
        .filter(|m| m.is_object())
        .ok_or_else(|| bad("no `model` object: not a Hugging Face tokenizer.json".into()))?;

    // (token, id) pairs: the model's vocab (BPE/WordPiece map, or Unigram list) and
    // the added tokens.
    let mut max_id: Option<u64> = None;
    let mut endoftext_id = None;
    let mut see = |token: Option<&str>, id: Option<u64>| -> Result<(), ConvertError> {
        let id = id.ok_or_else(|| bad(format!("token {token:?} has no integer id")))?;
        max_id = max_id.max(Some(id));
        if token == Some(ENDOFTEXT) {
            endoftext_id = Some(id);
        }
        Ok(())
    };
    match model.get("vocab") {
        Some(Value::Object(map)) => {
            for (tok, id) in map {
                see(Some(tok), id.as_u64())?;
            }
        }
        Some(Value::Array(list)) => {
            for (i, entry) in list.iter().enumerate() {
                see(entry.get(0).and_then(Value::as_str), Some(i as u64))?;
            }
        }
        _ => {}
    }
    for added in value
        .get("added_tokens")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        see(
            added.get("content").and_then(Value::as_str),
            added.get("id").and_then(Value::as_u64),
        )?;
    }
    if let Some(id) = max_id.filter(|&id| id >= vocab_size as u64) {
        return Err(bad(format!(
            "token id {id} is outside the model's {vocab_size}-row embedding"
        )));
    }
    Ok(Tokenizer {
        json,
        endoftext_id: endoftext_id.map(|id| id as u32),
    })
}
