//! `model.safetensors.index.json`: which shard holds each tensor, read and checked
//! once for both a local folder and a Hub download.

use std::path::Path;

use mamba_files::limits::MAX_INDEX_BYTES;
use mamba_files::read_to_string_capped;
use serde_json::Value;

use crate::error::ConvertError;

/// The `(tensor, shard file)` pairs of the index's `weight_map`, in the file's order.
/// Every shard is a plain file name beside the index: never empty, `.`, `..`, or
/// containing a path separator.
pub fn read_shard_index(index: &Path) -> Result<Vec<(String, String)>, ConvertError> {
    let text = read_to_string_capped(index, MAX_INDEX_BYTES, "a shard index")
        .map_err(|e| ConvertError::input_file("shard index", index, e))?;
    let json: Value =
        serde_json::from_str(&text).map_err(|source| ConvertError::MalformedJson {
            path: index.to_path_buf(),
            source,
        })?;
    let bad = |why: String| ConvertError::BadShardIndex {
        path: index.to_path_buf(),
        why,
    };
    let map = json
        .get("weight_map")
        .and_then(Value::as_object)
        .ok_or_else(|| bad("no `weight_map` object".into()))?;
    let mut pairs = Vec::with_capacity(map.len());
    for (name, file) in map {
        let file = file
            .as_str()
            .ok_or_else(|| bad(format!("`{name}` maps to {file}, not a file name")))?;
        if file.is_empty() || file.contains(['/', '\\']) || file == "." || file == ".." {
            return Err(bad(format!(
                "`{name}` maps to `{file}`, which is not a plain file name"
            )));
        }
        pairs.push((name.clone(), file.to_string()));
    }
    Ok(pairs)
}
