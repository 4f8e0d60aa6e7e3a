//! The OpenAI wire format: error bodies, typed reading of request fields (every
//! error names its parameter), and the shared request options.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Map, Value};

/// An error answered as OpenAI does: `{"error": {"message", "type", "param", "code"}}`.
#[derive(Clone, Debug)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Human-readable message.
    pub message: String,
    /// OpenAI's error type (`invalid_request_error`, `authentication_error`, ...).
    pub kind: &'static str,
    /// The request parameter at fault, if one is.
    pub param: Option<String>,
    /// A short machine-readable code, if any.
    pub code: Option<&'static str>,
    /// Seconds for a `Retry-After` header (429).
    pub retry_after: Option<u64>,
}

impl ApiError {
    /// A 400 `invalid_request_error` about `param`.
    pub fn param(param: &str, message: impl Into<String>) -> ApiError {
        ApiError {
            param: Some(param.to_string()),
            ..ApiError::invalid(message)
        }
    }

    /// A 400 `invalid_request_error` not tied to one parameter.
    pub fn invalid(message: impl Into<String>) -> ApiError {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            message.into(),
        )
    }

    /// An error of any status and type.
    pub fn new(status: StatusCode, kind: &'static str, message: String) -> ApiError {
        ApiError {
            status,
            message,
            kind,
            param: None,
            code: None,
            retry_after: None,
        }
    }

    /// The same error with a `code`.
    pub fn with_code(mut self, code: &'static str) -> ApiError {
        self.code = Some(code);
        self
    }

    /// The JSON body.
    pub fn body(&self) -> Value {
        json!({"error": {
            "message": self.message,
            "type": self.kind,
            "param": self.param,
            "code": self.code,
        }})
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut resp = (self.status, axum::Json(self.body())).into_response();
        if let Some(s) = self.retry_after {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
        resp
    }
}

/// The fields of a JSON request object, read with their names so that a missing,
/// mistyped or out-of-range value is reported against its parameter. `null` reads
/// as absent; unknown fields are ignored, as OpenAI clients send extra ones.
pub struct Fields<'a>(pub &'a Map<String, Value>);

impl<'a> Fields<'a> {
    /// Parses a request body into its top-level object.
    pub fn object(body: &'a Value) -> Result<Fields<'a>, ApiError> {
        body.as_object()
            .map(Fields)
            .ok_or_else(|| ApiError::invalid("the request body must be a JSON object"))
    }

    /// The value of `name`, `None` when absent or null.
    pub fn get(&self, name: &str) -> Option<&'a Value> {
        self.0.get(name).filter(|v| !v.is_null())
    }

    /// A number in `[lo, hi]`, or `default` when absent.
    pub fn f32_in(&self, name: &str, default: f32, lo: f32, hi: f32) -> Result<f32, ApiError> {
        match self.get(name) {
            None => Ok(default),
            Some(v) => {
                let x = v
                    .as_f64()
                    .ok_or_else(|| ApiError::param(name, format!("`{name}` must be a number")))?;
                if !(lo as f64..=hi as f64).contains(&x) {
                    return Err(ApiError::param(
                        name,
                        format!("`{name}` = {x} is out of range: must be in [{lo}, {hi}]"),
                    ));
                }
                Ok(x as f32)
            }
        }
    }

    /// An integer in `[lo, hi]`, or `default` when absent.
    pub fn int_in(&self, name: &str, default: u64, lo: u64, hi: u64) -> Result<u64, ApiError> {
        match self.get(name) {
            None => Ok(default),
            Some(v) => self.int_value(name, v, lo, hi),
        }
    }

    /// An optional integer in `[lo, hi]`.
    pub fn opt_int_in(&self, name: &str, lo: u64, hi: u64) -> Result<Option<u64>, ApiError> {
        self.get(name)
            .map(|v| self.int_value(name, v, lo, hi))
            .transpose()
    }

    fn int_value(&self, name: &str, v: &Value, lo: u64, hi: u64) -> Result<u64, ApiError> {
        let range = || format!("`{name}` is out of range: must be an integer in [{lo}, {hi}]");
        if v.as_i64().is_some_and(|x| x < 0) {
            return Err(ApiError::param(name, range()));
        }
        let x = v.as_u64().ok_or_else(|| {
            ApiError::param(name, format!("`{name}` must be a non-negative integer"))
        })?;
        if !(lo..=hi).contains(&x) {
            return Err(ApiError::param(name, range()));
        }
        Ok(x)
    }

    /// A boolean, or `default` when absent.
    pub fn bool(&self, name: &str, default: bool) -> Result<bool, ApiError> {
        match self.get(name) {
            None => Ok(default),
            Some(v) => v
                .as_bool()
                .ok_or_else(|| ApiError::param(name, format!("`{name}` must be a boolean"))),
        }
    }

    /// An optional string.
    pub fn str(&self, name: &str) -> Result<Option<&'a str>, ApiError> {
        match self.get(name) {
            None => Ok(None),
            Some(v) => v
                .as_str()
                .map(Some)
                .ok_or_else(|| ApiError::param(name, format!("`{name}` must be a string"))),
        }
    }
}

/// Most stop strings a request may give (OpenAI's limit).
pub const MAX_STOP: usize = 4;
/// Most `logprobs` / `top_logprobs` alternatives per token.
pub const MAX_LOGPROBS: u64 = 20;

/// Sampling and output options shared by both endpoints, read and range-checked.
#[derive(Clone, Debug)]
pub struct Options {
    /// Most tokens to generate per choice.
    pub max_tokens: usize,
    /// Sampling parameters of choice 0 (choice `i` uses seed `seed + i`).
    pub params: mamba_runtime::SamplerParams,
    /// Strings that end a choice (excluded from its text).
    pub stop: Vec<String>,
    /// Number of choices.
    pub n: usize,
    /// Whether to stream (SSE).
    pub stream: bool,
    /// Whether a stream ends with a chunk carrying `usage`
    /// (`stream_options.include_usage`, as OpenAI: off unless asked).
    pub include_usage: bool,
    /// Whether the end-of-sequence token is sampled as any other token, so that
    /// a choice runs to `max_tokens` or a stop string (`ignore_eos`, as vLLM and
    /// llama-server take it; benchmarks use it).
    pub ignore_eos: bool,
}

/// Limits the server puts on [`Options`].
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Largest `max_tokens`.
    pub max_tokens: usize,
    /// Largest `n` (the number of parallel sequences).
    pub max_n: usize,
}

impl Options {
    /// Reads the sampling options common to completions and chat completions;
    /// `default_max` applies when neither `max_tokens` nor `max_completion_tokens`
    /// is given. `echo`: the request echoes its prompt, so `max_tokens` may be 0
    /// (score the prompt, generate nothing: what evaluation harnesses send).
    pub fn read(
        f: &Fields<'_>,
        limits: Limits,
        default_max: usize,
        echo: bool,
    ) -> Result<Options, ApiError> {
        let lim = limits.max_tokens as u64;
        if !echo && f.get("max_tokens").and_then(Value::as_u64) == Some(0) {
            return Err(ApiError::param(
                "max_tokens",
                "`max_tokens` may be 0 only with `echo`: true (to score the prompt)",
            ));
        }
        let max_tokens = match f.opt_int_in("max_tokens", u64::from(!echo), lim)? {
            Some(n) => n,
            None => f.int_in(
                "max_completion_tokens",
                default_max.min(limits.max_tokens) as u64,
                1,
                lim,
            )?,
        } as usize;
        let seed = match f.get("seed") {
            None => random_seed(),
            Some(v) => v
                .as_u64()
                .or_else(|| v.as_i64().map(|x| x as u64))
                .ok_or_else(|| ApiError::param("seed", "`seed` must be an integer"))?,
        };
        let params = mamba_runtime::SamplerParams {
            temperature: f.f32_in("temperature", 1.0, 0.0, 2.0)?,
            top_p: f.f32_in("top_p", 1.0, 0.0, 1.0)?,
            top_k: f.int_in("top_k", 0, 0, u32::MAX as u64)? as usize,
            min_p: f.f32_in("min_p", 0.0, 0.0, 1.0)?,
            repeat_penalty: f.f32_in("repetition_penalty", 1.0, 0.0, 10.0)?,
            repeat_last_n: f.int_in("repeat_last_n", 64, 0, 1 << 20)? as usize,
            frequency_penalty: f.f32_in("frequency_penalty", 0.0, -2.0, 2.0)?,
            presence_penalty: f.f32_in("presence_penalty", 0.0, -2.0, 2.0)?,
            seed,
        };
        // The runtime's own checks cover the open ends (top_p 0, penalty 0).
        params.validate().map_err(|e| match e {
            mamba_runtime::RuntimeError::BadSampling { name, .. } => {
                let api = if name == "repeat_penalty" {
                    "repetition_penalty"
                } else {
                    name
                };
                ApiError::param(api, e.to_string())
            }
            e => ApiError::invalid(e.to_string()),
        })?;
        let stop = read_stop(f)?;
        let n = f.int_in("n", 1, 1, limits.max_n as u64)? as usize;
        let stream = f.bool("stream", false)?;
        let include_usage = match f.get("stream_options") {
            None => false,
            Some(Value::Object(so)) => Fields(so).bool("include_usage", false).map_err(|_| {
                ApiError::param(
                    "stream_options",
                    "`stream_options.include_usage` must be a boolean",
                )
            })?,
            Some(_) => {
                return Err(ApiError::param(
                    "stream_options",
                    "`stream_options` must be an object",
                ))
            }
        };
        if include_usage && !stream {
            return Err(ApiError::param(
                "stream_options",
                "`stream_options` is only allowed when `stream` is true",
            ));
        }
        let ignore_eos = f.bool("ignore_eos", false)?;
        Ok(Options {
            max_tokens,
            params,
            stop,
            n,
            stream,
            include_usage,
            ignore_eos,
        })
    }
}

fn read_stop(f: &Fields<'_>) -> Result<Vec<String>, ApiError> {
    let bad = || {
        ApiError::param(
            "stop",
            format!("`stop` must be a string or an array of at most {MAX_STOP} non-empty strings"),
        )
    };
    let stop: Vec<String> = match f.get("stop") {
        None => Vec::new(),
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(a)) => a
            .iter()
            .map(|v| v.as_str().map(str::to_string).ok_or_else(bad))
            .collect::<Result<_, _>>()?,
        Some(_) => return Err(bad()),
    };
    if stop.len() > MAX_STOP || stop.iter().any(String::is_empty) {
        return Err(bad());
    }
    Ok(stop)
}

/// A seed for a request that gives none: varies per call.
fn random_seed() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let c = COUNTER.fetch_add(1, Ordering::Relaxed);
    (t ^ c.wrapping_mul(0x9e37_79b9_7f4a_7c15)).wrapping_mul(0xbf58_476d_1ce4_e5b9)
}

/// Seconds since the Unix epoch (the `created` field).
pub fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(v: Value) -> Result<Options, ApiError> {
        let limits = Limits {
            max_tokens: 100,
            max_n: 4,
        };
        Options::read(&Fields::object(&v).unwrap(), limits, 16, false)
    }

    #[test]
    fn errors_name_their_parameter() {
        for (body, param) in [
            (json!({"temperature": "hot"}), "temperature"),
            (json!({"temperature": 3}), "temperature"),
            (json!({"top_p": 0}), "top_p"),
            (json!({"max_tokens": 101}), "max_tokens"),
            (json!({"max_tokens": -1}), "max_tokens"),
            (json!({"max_tokens": 1.5}), "max_tokens"),
            (json!({"n": 5}), "n"),
            (json!({"stop": ["a", "b", "c", "d", "e"]}), "stop"),
            (json!({"stop": [1]}), "stop"),
            (json!({"stop": ""}), "stop"),
            (json!({"frequency_penalty": 2.5}), "frequency_penalty"),
            (json!({"presence_penalty": -3}), "presence_penalty"),
            (json!({"repetition_penalty": 0}), "repetition_penalty"),
            (json!({"seed": "x"}), "seed"),
            (json!({"stream": 1}), "stream"),
            (json!({"stream_options": 1}), "stream_options"),
            (
                json!({"stream": true, "stream_options": {"include_usage": 1}}),
                "stream_options",
            ),
            (
                json!({"stream_options": {"include_usage": true}}),
                "stream_options",
            ),
            (json!({"ignore_eos": "yes"}), "ignore_eos"),
        ] {
            let e = opts(body.clone()).expect_err(&body.to_string());
            assert_eq!(e.status, StatusCode::BAD_REQUEST);
            assert_eq!(e.param.as_deref(), Some(param), "{body}");
        }
    }

    #[test]
    fn defaults_and_nulls() {
        let o = opts(json!({"temperature": null, "stop": "x", "seed": 5})).unwrap();
        assert_eq!(o.max_tokens, 16);
        assert_eq!(o.params.temperature, 1.0);
        assert_eq!(o.params.seed, 5);
        assert_eq!(o.stop, vec!["x".to_string()]);
        assert!(!o.include_usage && !o.ignore_eos);
        let o = opts(json!({"max_completion_tokens": 7})).unwrap();
        assert_eq!(o.max_tokens, 7);
        let o = opts(
            json!({"stream": true, "stream_options": {"include_usage": true},
                            "ignore_eos": true}),
        )
        .unwrap();
        assert!(o.include_usage && o.ignore_eos);
    }
}
