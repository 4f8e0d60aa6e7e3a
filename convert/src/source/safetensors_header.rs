//! Saying what is wrong with a safetensors header that the `safetensors` crate
//! refused to deserialize: it reports only "invalid header", so the header is parsed
//! again here, loosely, to name the tensor and the field at fault.

use safetensors::tensor::Metadata;
use safetensors::Dtype;
use serde_json::Value;

/// The key of the free-form string map in a safetensors header.
const METADATA_KEY: &str = "__metadata__";

/// Why the header of `file` (a whole safetensors file whose 8-byte length prefix has
/// already been checked to lie within it) does not deserialize, in words.
pub fn diagnose_header(file: &[u8]) -> String {
    let Some(header) = header_bytes(file) else {
        return "the header runs past the end of the file (truncated file?)".into();
    };
    let text = match std::str::from_utf8(header) {
        Ok(t) => t,
        Err(e) => {
            return format!(
                "the header is not valid UTF-8 (invalid byte at header offset {})",
                e.valid_up_to()
            )
        }
    };
    let value: Value = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(e) => return format!("the header is not valid JSON: {e}"),
    };
    let Value::Object(entries) = &value else {
        return format!("the header is a JSON {}, not an object", json_kind(&value));
    };
    for (name, entry) in entries {
        let problem = if name == METADATA_KEY {
            metadata_problem(entry)
        } else {
            tensor_problem(entry).map(|p| format!("tensor `{name}`: {p}"))
        };
        if let Some(p) = problem {
            return p;
        }
    }
    // Every entry looks right on its own; let the crate's own parser say what it
    // objects to (a duplicate key, for instance).
    match serde_json::from_str::<Metadata>(text) {
        Err(e) => format!("the header does not describe safetensors tensors: {e}"),
        Ok(_) => "the header is invalid".into(),
    }
}

/// The header's bytes, if the length prefix lies within the file.
fn header_bytes(file: &[u8]) -> Option<&[u8]> {
    let len: [u8; 8] = file.get(..8)?.try_into().ok()?;
    let n = usize::try_from(u64::from_le_bytes(len)).ok()?;
    file.get(8..8usize.checked_add(n)?)
}

/// What is wrong with the `__metadata__` entry: it must map strings to strings.
fn metadata_problem(entry: &Value) -> Option<String> {
    let Value::Object(map) = entry else {
        return Some(format!(
            "`{METADATA_KEY}` is a JSON {}, not an object of strings",
            json_kind(entry)
        ));
    };
    map.iter().find(|(_, v)| !v.is_string()).map(|(k, v)| {
        format!(
            "`{METADATA_KEY}` key `{k}` is a JSON {}, not a string",
            json_kind(v)
        )
    })
}

/// What is wrong with one tensor's entry: `dtype`, `shape` and `data_offsets`.
fn tensor_problem(entry: &Value) -> Option<String> {
    let Value::Object(fields) = entry else {
        return Some(format!(
            "entry is a JSON {}, not an object",
            json_kind(entry)
        ));
    };
    let dtype = match fields.get("dtype") {
        None => return Some("no `dtype`".into()),
        Some(d) => d,
    };
    if serde_json::from_value::<Dtype>(dtype.clone()).is_err() {
        return Some(match dtype.as_str() {
            Some(name) => format!("unknown dtype {name}"),
            None => format!("dtype is a JSON {}, not a name", json_kind(dtype)),
        });
    }
    if let Some(p) = dims_problem(fields.get("shape"), "shape", "dimension", None) {
        return Some(p);
    }
    dims_problem(
        fields.get("data_offsets"),
        "data_offsets",
        "offset",
        Some(2),
    )
}

/// What is wrong with a list of sizes (`shape`) or offsets (`data_offsets`, which must
/// have exactly `len` items): each `noun` must be a non-negative integer that fits a
/// `usize`.
fn dims_problem(
    list: Option<&Value>,
    what: &str,
    noun: &str,
    len: Option<usize>,
) -> Option<String> {
    let Some(list) = list else {
        return Some(format!("no `{what}`"));
    };
    let Value::Array(items) = list else {
        return Some(format!("{what} is a JSON {}, not a list", json_kind(list)));
    };
    if let Some(n) = len.filter(|&n| n != items.len()) {
        return Some(format!("{what} has {} items, not {n}", items.len()));
    }
    for item in items {
        let problem = match item {
            Value::Number(x) if x.as_i64().is_some_and(|v| v < 0) => {
                format!("{what} has a negative {noun} {x}")
            }
            Value::Number(x) if x.as_u64().is_none() => {
                format!("{what} has a {noun} {x} that is not a whole number")
            }
            Value::Number(x) if x.as_u64().and_then(|v| usize::try_from(v).ok()).is_none() => {
                format!("{what} has a {noun} {x} too large for this machine")
            }
            Value::Number(_) => continue,
            other => format!("{what} holds a JSON {}, not a number", json_kind(other)),
        };
        return Some(problem);
    }
    None
}

/// The JSON type of `v`, in words.
fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "list",
        Value::Object(_) => "object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A safetensors file with this header and no data.
    fn file(header: &str) -> Vec<u8> {
        let mut v = (header.len() as u64).to_le_bytes().to_vec();
        v.extend_from_slice(header.as_bytes());
        v
    }

    #[test]
    fn names_the_tensor_and_field() {
        let cases = [
            (
                r#"{"x":{"dtype":"F99","shape":[1],"data_offsets":[0,4]}}"#,
                "tensor `x`: unknown dtype F99",
            ),
            (
                r#"{"x":{"dtype":"F32","shape":[-3],"data_offsets":[0,4]}}"#,
                "tensor `x`: shape has a negative dimension -3",
            ),
            (
                r#"{"x":{"dtype":"F32","shape":[1.5],"data_offsets":[0,4]}}"#,
                "tensor `x`: shape has a dimension 1.5 that is not a whole number",
            ),
            (
                r#"{"x":{"dtype":"F32","shape":[1],"data_offsets":[0]}}"#,
                "tensor `x`: data_offsets has 1 items, not 2",
            ),
            (
                r#"{"x":{"dtype":7,"shape":[1],"data_offsets":[0,4]}}"#,
                "tensor `x`: dtype is a JSON number, not a name",
            ),
            (r#"{"x":{"shape":[1]}}"#, "tensor `x`: no `dtype`"),
            (r#"{"__metadata__":{"a":1}}"#, "`__metadata__` key `a`"),
            ("[1]", "the header is a JSON list, not an object"),
            ("{\"x\":", "the header is not valid JSON"),
        ];
        for (header, want) in cases {
            let got = diagnose_header(&file(header));
            assert!(got.contains(want), "{header}: {got}");
        }
        let mut bad_utf8 = file("{\"x\":1}");
        bad_utf8[9] = 0xff;
        assert!(diagnose_header(&bad_utf8).contains("not valid UTF-8"));
    }
}
