//! The chat template to store as `tokenizer.chat_template`: the Jinja source a server
//! renders a conversation with, as Hugging Face `transformers` keeps it.
//!
//! In a checkpoint folder it is looked for in this order, the first template found
//! winning:
//!
//! 1. `chat_template.jinja`: the template alone, as newer transformers save it;
//!    transformers itself prefers it over `tokenizer_config.json`'s.
//! 2. `tokenizer_config.json`'s `chat_template`: a string, or a list of
//!    `{"name", "template"}` objects (several named templates).
//! 3. `chat_template.json`'s `chat_template`: what transformers' processors saved
//!    before `.jinja` files; last, because a processor's template may expect inputs
//!    (images) that the tokenizer's does not.
//!
//! The chat template is optional: a file that cannot be read or holds no usable
//! template is a warning, and the next source (or none) is used. A template given
//! explicitly ([`load_chat_template`], `--chat-template`) is the user's request, so
//! there a problem is an error.

use std::path::{Path, PathBuf};

use mamba_files::read_to_string_capped;
use mamba_format::metadata::MAX_STRING_LEN;
use serde_json::Value;

use crate::error::ConvertError;

/// The standalone template file of newer transformers.
pub const JINJA_FILE: &str = "chat_template.jinja";
/// The tokenizer's settings, with `chat_template` among them.
pub const TOKENIZER_CONFIG_FILE: &str = "tokenizer_config.json";
/// The processors' template file (`{"chat_template": ...}`).
pub const JSON_FILE: &str = "chat_template.json";
/// Every file a checkpoint folder's template may come from, in order of precedence.
pub const FILES: [&str; 3] = [JINJA_FILE, TOKENIZER_CONFIG_FILE, JSON_FILE];

/// The largest chat template (or file holding one) read: what one `.mbin` metadata
/// string holds. `tokenizer_config.json` can carry a large `added_tokens_decoder`
/// besides the template, so it gets the same generous cap.
pub const MAX_CHAT_TEMPLATE_BYTES: u64 = MAX_STRING_LEN;

/// The template `--chat-template` names: the whole file, UTF-8, not empty.
///
/// # Errors
/// [`ConvertError::Read`] or [`ConvertError::InputFile`] when the file cannot be read,
/// is not a regular file, is over [`MAX_CHAT_TEMPLATE_BYTES`] or is not UTF-8;
/// [`ConvertError::BadChatTemplate`] when it holds nothing but white space.
pub fn load_chat_template(path: &Path) -> Result<String, ConvertError> {
    let text = read_to_string_capped(path, MAX_CHAT_TEMPLATE_BYTES, "a chat template")
        .map_err(|e| ConvertError::input_file("chat template", path, e))?;
    if text.trim().is_empty() {
        return Err(ConvertError::BadChatTemplate {
            path: path.to_path_buf(),
            why: "it is empty".into(),
        });
    }
    Ok(text)
}

/// The template of the checkpoint folder `dir` (see the module docs for where it is
/// looked for), and the files that were read. Problems are pushed to `warnings`.
pub fn find_in_dir(dir: &Path, warnings: &mut Vec<String>) -> (Option<String>, Vec<PathBuf>) {
    let mut read = Vec::new();
    for name in FILES {
        let path = dir.join(name);
        // Anything there is read (and refused by its kind if it is not a regular
        // file), so that a FIFO or a folder under one of these names is reported
        // rather than silently skipped; absence is the common case and says nothing.
        if path.symlink_metadata().is_err() {
            continue;
        }
        read.push(path.clone());
        match from_file(&path, name == JINJA_FILE) {
            Ok(Some(template)) => return (Some(template), read),
            Ok(None) => {}
            Err(why) => warnings.push(format!("{why}; no chat template taken from it")),
        }
    }
    (None, read)
}

/// The template in one file: all of it for a `.jinja` file, else the JSON object's
/// `chat_template` field. `Ok(None)` when a JSON file has no such field (or `null`);
/// `Err` is the reason, naming the file, for a warning.
fn from_file(path: &Path, jinja: bool) -> Result<Option<String>, String> {
    // The file system's refusals name the path already.
    let text = read_to_string_capped(path, MAX_CHAT_TEMPLATE_BYTES, "a chat template file")
        .map_err(|e| e.to_string())?;
    let in_file = |why: String| format!("{}: {why}", path.display());
    if jinja {
        return non_empty(text).map(Some).map_err(in_file);
    }
    let value: Value =
        serde_json::from_str(&text).map_err(|e| in_file(format!("malformed JSON ({e})")))?;
    let Value::Object(map) = value else {
        return Err(in_file(format!(
            "{} is not a JSON object",
            json_kind(&value)
        )));
    };
    template_field(map.get("chat_template").unwrap_or(&Value::Null)).map_err(in_file)
}

/// `chat_template` as transformers reads it: a string, or a list of
/// `{"name": ..., "template": ...}` objects of which the one named `"default"` is what
/// `apply_chat_template` uses when no template is named. Only one string is stored,
/// so the list's `"default"` is taken, else its first entry (transformers then
/// requires a name; its first is the best guess a server without one can make).
fn template_field(v: &Value) -> Result<Option<String>, String> {
    match v {
        Value::Null => Ok(None),
        Value::String(s) => non_empty(s.clone()).map(Some),
        Value::Array(list) => {
            let mut named = Vec::with_capacity(list.len());
            for (i, entry) in list.iter().enumerate() {
                let field = |k: &str| entry.get(k).and_then(Value::as_str);
                match (field("name"), field("template")) {
                    (Some(name), Some(template)) => named.push((name, template)),
                    _ => {
                        return Err(format!(
                            "`chat_template` entry {i} is not a {{\"name\": string, \
                             \"template\": string}} object"
                        ))
                    }
                }
            }
            let chosen = named
                .iter()
                .find(|(name, _)| *name == "default")
                .or(named.first());
            match chosen {
                Some((_, template)) => non_empty(template.to_string()).map(Some),
                None => Ok(None),
            }
        }
        other => Err(format!(
            "`chat_template` is {}, not a string or a list of {{\"name\", \"template\"}} \
             objects",
            json_kind(other)
        )),
    }
}

/// An empty template renders every chat as nothing: treated as a mistake, not stored.
fn non_empty(template: String) -> Result<String, String> {
    if template.trim().is_empty() {
        Err("the chat template is empty".into())
    } else {
        Ok(template)
    }
}

/// "a number", "an object", ... for messages.
fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a bool",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn field_forms() {
        assert_eq!(template_field(&json!(null)), Ok(None));
        assert_eq!(template_field(&json!("{{x}}")), Ok(Some("{{x}}".into())));
        let list = json!([
            {"name": "tool_use", "template": "T"},
            {"name": "default", "template": "D"},
        ]);
        assert_eq!(template_field(&list), Ok(Some("D".into())));
        let no_default = json!([{"name": "a", "template": "A"}, {"name": "b", "template": "B"}]);
        assert_eq!(template_field(&no_default), Ok(Some("A".into())));
        assert_eq!(template_field(&json!([])), Ok(None));
        assert!(template_field(&json!(3)).unwrap_err().contains("a number"));
        assert!(template_field(&json!({"a": 1}))
            .unwrap_err()
            .contains("an object"));
        assert!(template_field(&json!([{"name": "default"}]))
            .unwrap_err()
            .contains("entry 0"));
        assert!(template_field(&json!("  \n")).is_err());
    }
}
