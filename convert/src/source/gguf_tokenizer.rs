//! A Hugging Face `tokenizer.json` rebuilt from a GGUF file's `tokenizer.ggml.*` keys.
//!
//! llama.cpp keeps a BPE tokenizer as its vocabulary (id order), token types, merges
//! and pre-tokenizer name. For the byte-level BPE of GPT-2 and GPT-NeoX (every
//! published Mamba) that is enough to rebuild the tokenizer the model was trained
//! with: a BPE model over the byte-level alphabet, GPT-2's split regex, byte-level
//! decoding. Control tokens (type 3) become special added tokens; user-defined ones
//! (type 4, GPT-NeoX's runs of spaces) become normalized added tokens, as in
//! GPT-NeoX's own `tokenizer.json`; the NFC normalizer is GPT-NeoX's too (llama.cpp
//! applies none, which differs only on text that is not already NFC).
//!
//! Other tokenizers (SentencePiece `llama`, other pre-tokenizer regexes) are not
//! rebuilt: the caller says so and the user can pass `--tokenizer`.

use mamba_format::gguf::Gguf;
use serde_json::{json, Map, Value};

/// llama.cpp's pre-tokenizer names that use exactly GPT-2's split regex
/// (`src/llama-vocab.cpp`, `LLAMA_VOCAB_PRE_TYPE_GPT2`, `_MPT`, `_OLMO`), which is
/// Hugging Face's `ByteLevel` pre-tokenizer with `use_regex`.
const GPT2_REGEX_PRE: [&str; 3] = ["gpt-2", "olmo", "mpt"];

/// llama.cpp's token types (`llama_token_type`).
const CONTROL: i64 = 3;
const USER_DEFINED: i64 = 4;

/// The rebuilt `tokenizer.json`, or why it cannot be rebuilt (a sentence for a
/// warning). `Ok(None)` when the file has no tokenizer at all.
pub fn rebuild_tokenizer(g: &Gguf) -> Result<Option<String>, String> {
    let model = match g.get_str("tokenizer.ggml.model") {
        Ok(None) => return Ok(None),
        Ok(Some(m)) => m,
        Err(e) => return Err(e.to_string()),
    };
    if model != "gpt2" {
        return Err(format!(
            "its tokenizer model is {model:?}; only byte-level BPE (\"gpt2\") is rebuilt"
        ));
    }
    let pre = g
        .get_str("tokenizer.ggml.pre")
        .map_err(|e| e.to_string())?
        .unwrap_or("default");
    if !GPT2_REGEX_PRE.contains(&pre) {
        return Err(format!(
            "its pre-tokenizer is {pre:?}; only GPT-2's split regex ({}) is rebuilt",
            GPT2_REGEX_PRE.join(", ")
        ));
    }
    let tokens = g
        .get_str_array("tokenizer.ggml.tokens")
        .map_err(|e| e.to_string())?
        .ok_or("it has no tokenizer.ggml.tokens")?;
    let types = g
        .get_int_array("tokenizer.ggml.token_type")
        .map_err(|e| e.to_string())?
        .unwrap_or_else(|| vec![1; tokens.len()]);
    if types.len() != tokens.len() {
        return Err(format!(
            "tokenizer.ggml.token_type has {} entries for {} tokens",
            types.len(),
            tokens.len()
        ));
    }
    let merges = g
        .get_str_array("tokenizer.ggml.merges")
        .map_err(|e| e.to_string())?
        .ok_or("it has no tokenizer.ggml.merges")?;

    let mut vocab = Map::new();
    let mut added = Vec::new();
    for (id, (&tok, &ty)) in tokens.iter().zip(&types).enumerate() {
        if ty == USER_DEFINED {
            // Stored as text, not in the byte-level alphabet: an added token only.
            added.push(added_token(id, tok, false));
            continue;
        }
        if ty == CONTROL {
            added.push(added_token(id, tok, true));
        }
        if vocab.insert(tok.to_string(), json!(id)).is_some() {
            return Err(format!(
                "token {tok:?} appears twice in tokenizer.ggml.tokens"
            ));
        }
    }
    let byte_level = json!({
        "type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true
    });
    let tokenizer = json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": added,
        "normalizer": {"type": "NFC"},
        "pre_tokenizer": byte_level,
        "post_processor": byte_level,
        "decoder": byte_level,
        "model": {
            "type": "BPE",
            "dropout": null,
            "unk_token": null,
            "continuing_subword_prefix": null,
            "end_of_word_suffix": null,
            "fuse_unk": false,
            "byte_fallback": false,
            "vocab": Value::Object(vocab),
            "merges": merges,
        },
    });
    Ok(Some(tokenizer.to_string()))
}

fn added_token(id: usize, content: &str, special: bool) -> Value {
    json!({
        "id": id,
        "content": content,
        "single_word": false,
        "lstrip": false,
        "rstrip": false,
        "normalized": !special,
        "special": special,
    })
}
