//! Typed access to a `config.json` object, with errors naming the file and key.

use std::path::{Path, PathBuf};

use mamba_format::arch::MAX_DIM;
use serde_json::{Map, Value};

use crate::error::ConvertError;

/// One JSON object of a config file (the top level, or `ssm_cfg`).
pub(super) struct Json<'a> {
    /// The config file, for errors.
    pub path: &'a Path,
    /// The object.
    pub obj: &'a Map<String, Value>,
    /// Prepended to keys in errors (`ssm_cfg.`).
    pub prefix: &'a str,
}

impl<'a> Json<'a> {
    /// The key as errors name it (`ssm_cfg.d_state`).
    pub fn key(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    /// A [`ConvertError::BadConfigValue`] for `key`.
    pub fn bad(&self, key: &str, expected: &str, found: &Value) -> ConvertError {
        ConvertError::BadConfigValue {
            path: PathBuf::from(self.path),
            key: self.key(key),
            expected: expected.into(),
            found: short(found),
        }
    }

    /// A [`ConvertError::InconsistentConfig`]: values that are fine one by one but
    /// disagree with each other.
    pub fn inconsistent(&self, why: String) -> ConvertError {
        ConvertError::InconsistentConfig {
            path: PathBuf::from(self.path),
            why,
        }
    }

    /// The value, with JSON `null` treated as absent.
    pub fn get(&self, key: &str) -> Option<&'a Value> {
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

    /// A required dimension in `1..=MAX_DIM`.
    pub fn dim(&self, key: &str) -> Result<usize, ConvertError> {
        self.as_dim(key, self.require(key)?, false)
    }

    /// An optional dimension in `1..=MAX_DIM`.
    pub fn opt_dim(&self, key: &str) -> Result<Option<usize>, ConvertError> {
        self.get(key)
            .map(|v| self.as_dim(key, v, false))
            .transpose()
    }

    /// An optional count in `0..=MAX_DIM`.
    pub fn opt_dim0(&self, key: &str) -> Result<Option<usize>, ConvertError> {
        self.get(key).map(|v| self.as_dim(key, v, true)).transpose()
    }

    /// An optional bool.
    pub fn opt_bool(&self, key: &str) -> Result<Option<bool>, ConvertError> {
        self.get(key)
            .map(|v| v.as_bool().ok_or_else(|| self.bad(key, "true or false", v)))
            .transpose()
    }

    /// An optional string.
    pub fn opt_str(&self, key: &str) -> Result<Option<&'a str>, ConvertError> {
        self.get(key)
            .map(|v| v.as_str().ok_or_else(|| self.bad(key, "a string", v)))
            .transpose()
    }

    /// `key × d_model` (the inner width); `key` defaults to 2 and may be fractional as
    /// long as the product is a whole number.
    pub fn inner_from_expand(&self, key: &str, d_model: usize) -> Result<usize, ConvertError> {
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
    pub fn dt_rank(&self, key: &str, d_model: usize) -> Result<usize, ConvertError> {
        match self.get(key) {
            None => Ok(d_model.div_ceil(16)),
            Some(Value::String(s)) if s == "auto" => Ok(d_model.div_ceil(16)),
            Some(v) => self
                .as_dim(key, v, false)
                .map_err(|_| self.bad(key, "a positive integer or \"auto\"", v)),
        }
    }

    /// RMSNorm epsilon in (0, 1); 1e-5 when absent (the default of both layouts).
    pub fn eps(&self, key: &str) -> Result<f64, ConvertError> {
        self.eps_or(key, 1e-5)
    }

    /// An epsilon in (0, 1), `default` when absent.
    pub fn eps_or(&self, key: &str, default: f64) -> Result<f64, ConvertError> {
        match self.get(key) {
            None => Ok(default),
            Some(v) => match v.as_f64() {
                Some(e) if e > 0.0 && e < 1.0 => Ok(e),
                _ => Err(self.bad(key, "a number in (0, 1)", v)),
            },
        }
    }

    /// The `(min, max)` clamp of dt after its softplus: a two-element list of numbers,
    /// `(0, +∞)` (no clamp) when absent. Each number may be a JSON number or
    /// transformers' encoding of a non-finite float, `{"__float__": "Infinity"}`
    /// (also `"-Infinity"`, `"NaN"`), which is how `save_pretrained` writes the
    /// default `time_step_limit = (0.0, float("inf"))`. The result must satisfy
    /// `0 ≤ min < max`, `min` finite (SPEC.md, `mamba2.dt_min`/`dt_max`).
    pub fn dt_limit(&self, key: &str) -> Result<(f64, f64), ConvertError> {
        let Some(v) = self.get(key) else {
            return Ok((0.0, f64::INFINITY));
        };
        let expected = "[min, max] with 0 ≤ min < max (numbers, or {\"__float__\": \"Infinity\"})";
        let pair = match v.as_array().map(Vec::as_slice) {
            Some([lo, hi]) => json_float(lo).zip(json_float(hi)),
            _ => None,
        };
        match pair {
            Some((lo, hi)) if lo >= 0.0 && lo.is_finite() && hi > lo => Ok((lo, hi)),
            _ => Err(self.bad(key, expected, v)),
        }
    }

    /// An optional token id below `vocab`.
    pub fn token_id(&self, key: &str, vocab: usize) -> Result<Option<u32>, ConvertError> {
        let Some(v) = self.get(key) else {
            return Ok(None);
        };
        match v.as_u64() {
            Some(id) if (id as usize) < vocab => Ok(Some(id as u32)),
            _ => Err(self.bad(key, &format!("a token id below the vocab size {vocab}"), v)),
        }
    }
}

/// A JSON number, or transformers' `{"__float__": "Infinity" | "-Infinity" | "NaN"}`
/// for the floats JSON cannot spell (`transformers` `configuration_utils.py`,
/// `_encode_special_floats`).
fn json_float(v: &Value) -> Option<f64> {
    if let Some(x) = v.as_f64() {
        return Some(x);
    }
    let obj = v.as_object().filter(|o| o.len() == 1)?;
    match obj.get("__float__")?.as_str()? {
        "Infinity" => Some(f64::INFINITY),
        "-Infinity" => Some(f64::NEG_INFINITY),
        "NaN" => Some(f64::NAN),
        _ => None,
    }
}

/// Parses a config file's text. Python's `json` module writes non-finite floats as
/// bare `Infinity`, `-Infinity` and `NaN`, which JSON does not allow; configs
/// written by transformers before it encoded them as `{"__float__": ...}` hold them
/// (`time_step_limit: [0.0, Infinity]`). So when the text is not JSON, it is parsed
/// once more with those three words, outside strings, replaced by transformers'
/// encoding; if that fails too, the first error (whose line and column match the
/// file) is returned.
pub(super) fn parse_config_text(text: &str) -> Result<Value, serde_json::Error> {
    serde_json::from_str(text).or_else(|first| {
        python_floats_as_objects(text)
            .and_then(|t| serde_json::from_str(&t).ok())
            .ok_or(first)
    })
}

/// `text` with bare `Infinity`, `-Infinity` and `NaN` outside strings rewritten as
/// `{"__float__": "..."}`; `None` when there are none.
fn python_floats_as_objects(text: &str) -> Option<String> {
    const WORDS: [&str; 3] = ["-Infinity", "Infinity", "NaN"];
    let mut out = String::with_capacity(text.len());
    let (mut in_string, mut escaped, mut changed) = (false, false, false);
    let mut rest = text;
    while let Some(c) = rest.chars().next() {
        if in_string {
            match (escaped, c) {
                (false, '\\') => escaped = true,
                (false, '"') => in_string = false,
                _ => escaped = false,
            }
        } else if c == '"' {
            in_string = true;
        } else if let Some(w) = WORDS.iter().find(|w| rest.starts_with(**w)) {
            out.push_str(&format!("{{\"__float__\": \"{}\"}}", w));
            rest = &rest[w.len()..];
            changed = true;
            continue;
        }
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    changed.then_some(out)
}

/// A JSON value for an error message, cut to 60 characters.
pub(super) fn short(v: &Value) -> String {
    let s = v.to_string();
    if s.chars().count() > 60 {
        format!("{}...", s.chars().take(57).collect::<String>())
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn limit(v: Value) -> Result<(f64, f64), ConvertError> {
        let obj = json!({ "time_step_limit": v });
        let json = Json {
            path: Path::new("config.json"),
            obj: obj.as_object().unwrap(),
            prefix: "",
        };
        json.dt_limit("time_step_limit")
    }

    #[test]
    fn dt_limit_reads_transformers_special_floats() {
        let inf = json!({"__float__": "Infinity"});
        assert_eq!(limit(json!([0.0, inf])).unwrap(), (0.0, f64::INFINITY));
        assert_eq!(limit(json!([0.001, 0.1])).unwrap(), (0.001, 0.1));
        assert_eq!(limit(json!([0, 1])).unwrap(), (0.0, 1.0));
        assert_eq!(limit(Value::Null).unwrap(), (0.0, f64::INFINITY));
    }

    #[test]
    fn python_non_finite_floats_are_read_outside_strings_only() {
        let text = r#"{"a": [0.0, Infinity], "b": -Infinity, "c": "NaN \" Infinity", "d": NaN}"#;
        let v = parse_config_text(text).unwrap();
        assert_eq!(v["a"][1], json!({"__float__": "Infinity"}));
        assert_eq!(v["b"], json!({"__float__": "-Infinity"}));
        assert_eq!(v["c"], json!("NaN \" Infinity"));
        assert_eq!(v["d"], json!({"__float__": "NaN"}));
        // Still malformed: the error is the original one.
        let err = parse_config_text("{\"a\": Infinity,\n oops}").unwrap_err();
        assert_eq!(err.line(), 1);
        assert!(parse_config_text("{\"a\": Infinite}").is_err());
    }

    #[test]
    fn dt_limit_refuses_impossible_clamps() {
        let f = |s: &str| json!({ "__float__": s });
        for bad in [
            json!([0.0, f("NaN")]),
            json!([f("NaN"), 1.0]),
            json!([f("-Infinity"), 1.0]),
            json!([f("Infinity"), f("Infinity")]),
            json!([0.1, 0.1]),
            json!([-0.1, 1.0]),
            json!([0.0]),
            json!([0.0, 1.0, 2.0]),
            json!([0.0, "inf"]),
            json!([0.0, {"__float__": "inf"}]),
            json!("Infinity"),
        ] {
            let err = limit(bad.clone()).unwrap_err();
            assert!(
                matches!(&err, ConvertError::BadConfigValue { key, .. } if key == "time_step_limit"),
                "{bad}: {err:?}"
            );
        }
    }
}
