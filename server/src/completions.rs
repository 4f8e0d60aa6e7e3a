//! `/v1/completions` and `/v1/chat/completions`: read the request, queue a job,
//! and answer with one JSON body or a stream of SSE chunks.

use crate::api::{now_unix, ApiError, Fields, Options, MAX_LOGPROBS};
use crate::routes::{AppState, JsonBody};
use crate::scheduler::{Event, FinishReason, Job, PromptLogprobs, SubmitError, TokenLogprob};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::sse::{Event as SseEvent, Sse};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Map, Value};
use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::mpsc::UnboundedReceiver;

/// Which endpoint a response is for.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Completion,
    Chat,
}

/// What shapes the answer, besides the events.
struct Reply {
    kind: Kind,
    id: String,
    created: u64,
    model: String,
    n: usize,
    prompt_tokens: usize,
    /// Prompt text put before each choice's text (`echo`).
    echo: Option<String>,
    /// Whether to report log-probabilities (and, for chat, how many alternatives).
    logprobs: bool,
    /// Whether a stream ends with a `usage` chunk.
    include_usage: bool,
}

impl Reply {
    /// Whether the prompt's tokens are scored too: a completion that echoes its
    /// prompt with log-probabilities lists the prompt's tokens first.
    fn prompt_logprobs(&self) -> bool {
        self.kind == Kind::Completion && self.echo.is_some() && self.logprobs
    }
}

impl Reply {
    /// A reply to a request of `kind` with these options, without `echo`.
    fn new(
        kind: Kind,
        app: &AppState,
        opts: &Options,
        prompt_tokens: usize,
        logprobs: bool,
    ) -> Reply {
        Reply {
            kind,
            id: next_id(match kind {
                Kind::Completion => "cmpl",
                Kind::Chat => "chatcmpl",
            }),
            created: now_unix(),
            model: app.model_id.clone(),
            n: opts.n,
            prompt_tokens,
            echo: None,
            logprobs,
            include_usage: opts.include_usage,
        }
    }
}

/// Token ids from a JSON array of integers.
pub fn token_ids(v: &Value) -> Option<Vec<u32>> {
    v.as_array()?
        .iter()
        .map(|x| x.as_u64().and_then(|x| u32::try_from(x).ok()))
        .collect()
}

fn next_id(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    format!(
        "{prefix}-{}-{}",
        now_unix(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

fn check_model(app: &AppState, f: &Fields<'_>) -> Result<(), ApiError> {
    match f.str("model")? {
        Some(m) if m != app.model_id => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            format!(
                "the model `{m}` does not exist; this server serves `{}`",
                app.model_id
            ),
        )
        .with_code("model_not_found")
        .param_named("model")),
        _ => Ok(()),
    }
}

impl ApiError {
    fn param_named(mut self, p: &str) -> ApiError {
        self.param = Some(p.to_string());
        self
    }
}

/// The prompt of a completion request: ids, and the text to echo.
fn read_prompt(app: &AppState, f: &Fields<'_>) -> Result<(Vec<u32>, String), ApiError> {
    let bad = || {
        ApiError::param(
            "prompt",
            "`prompt` must be a string or an array of token ids (one prompt per request)",
        )
    };
    let mut v = f
        .get("prompt")
        .ok_or_else(|| ApiError::param("prompt", "`prompt` is required"))?;
    // A batch of exactly one prompt is that prompt.
    if let Some([one]) = v.as_array().map(Vec::as_slice) {
        if one.is_string() || one.is_array() {
            v = one;
        }
    }
    let (ids, text) = match v {
        Value::String(s) => {
            let tok = app.model.tokenizer().ok_or_else(|| {
                ApiError::param(
                    "prompt",
                    "this model has no embedded tokenizer; send token ids",
                )
            })?;
            let ids = tok
                .encode(s)
                .map_err(|e| ApiError::param("prompt", e.to_string()))?;
            (ids, s.clone())
        }
        Value::Array(_) => {
            let ids = token_ids(v).ok_or_else(bad)?;
            app.model
                .check_tokens(&ids)
                .map_err(|e| ApiError::param("prompt", e.to_string()).with_code("invalid_token"))?;
            let text = app
                .model
                .tokenizer()
                .and_then(|t| t.decode(&ids).ok())
                .unwrap_or_default();
            (ids, text)
        }
        _ => return Err(bad()),
    };
    if ids.is_empty() {
        return Err(ApiError::param("prompt", "the prompt is empty").with_code("empty_prompt"));
    }
    Ok((ids, text))
}

/// `POST /v1/completions`.
pub async fn completions(
    State(app): State<Arc<AppState>>,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    let arrived = Instant::now();
    let f = Fields::object(&body)?;
    check_model(&app, &f)?;
    let (prompt, prompt_text) = read_prompt(&app, &f)?;
    let echo = f.bool("echo", false)?;
    let opts = Options::read(&f, app.limits, 16, echo)?;
    let logprobs = f.opt_int_in("logprobs", 0, MAX_LOGPROBS)?;
    let reply = Reply {
        echo: echo.then_some(prompt_text),
        ..Reply::new(
            Kind::Completion,
            &app,
            &opts,
            prompt.len(),
            logprobs.is_some(),
        )
    };
    run(
        &app,
        arrived,
        prompt,
        opts,
        logprobs.map(|n| n as usize),
        reply,
    )
    .await
}

/// `POST /v1/chat/completions`.
pub async fn chat_completions(
    State(app): State<Arc<AppState>>,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    let arrived = Instant::now();
    let f = Fields::object(&body)?;
    check_model(&app, &f)?;
    let Some(template) = &app.chat else {
        return Err(ApiError::invalid(
            "this model has no chat template: use /v1/completions, or start the server \
             with --chat-template FILE",
        )
        .with_code("no_chat_template"));
    };
    let messages = read_messages(&f)?;
    let text = template
        .render(&messages)
        .map_err(|e| ApiError::param("messages", e.to_string()))?;
    let tok = app.model.tokenizer().ok_or_else(|| {
        ApiError::invalid("this model has no embedded tokenizer, so it cannot chat")
    })?;
    let prompt = tok
        .encode(&text)
        .map_err(|e| ApiError::param("messages", e.to_string()))?;
    if prompt.is_empty() {
        return Err(ApiError::param("messages", "the rendered prompt is empty"));
    }
    let opts = Options::read(&f, app.limits, app.limits.max_tokens, false)?;
    let logprobs = if f.bool("logprobs", false)? {
        Some(f.int_in("top_logprobs", 0, 0, MAX_LOGPROBS)? as usize)
    } else {
        None
    };
    let reply = Reply::new(Kind::Chat, &app, &opts, prompt.len(), logprobs.is_some());
    run(&app, arrived, prompt, opts, logprobs, reply).await
}

/// OpenAI messages, content flattened to a string (text parts joined).
fn read_messages(f: &Fields<'_>) -> Result<Vec<Value>, ApiError> {
    let bad = |why: &str| ApiError::param("messages", why.to_string());
    let list = f
        .get("messages")
        .and_then(Value::as_array)
        .ok_or_else(|| bad("`messages` must be an array of {role, content} objects"))?;
    if list.is_empty() {
        return Err(bad("`messages` is empty"));
    }
    list.iter()
        .map(|m| {
            let role = m["role"]
                .as_str()
                .ok_or_else(|| bad("every message needs a string `role`"))?;
            let content = match &m["content"] {
                Value::String(s) => s.clone(),
                Value::Null => String::new(),
                Value::Array(parts) => parts
                    .iter()
                    .map(|p| {
                        p["text"]
                            .as_str()
                            .ok_or_else(|| bad("only text content parts are supported"))
                    })
                    .collect::<Result<Vec<_>, _>>()?
                    .concat(),
                _ => return Err(bad("`content` must be a string or an array of text parts")),
            };
            let mut out = m.as_object().cloned().unwrap_or_default();
            out.insert("role".into(), Value::String(role.into()));
            out.insert("content".into(), Value::String(content));
            Ok(Value::Object(out))
        })
        .collect()
}

async fn run(
    app: &AppState,
    arrived: Instant,
    prompt: Vec<u32>,
    opts: Options,
    logprobs: Option<usize>,
    reply: Reply,
) -> Result<Response, ApiError> {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let job = Job {
        prompt,
        params: opts.params,
        n: opts.n,
        max_tokens: opts.max_tokens,
        stop: opts.stop,
        logprobs,
        prompt_logprobs: reply.prompt_logprobs(),
        ignore_eos: opts.ignore_eos,
        deadline: arrived + app.timeout,
        arrived,
        events: tx,
    };
    app.handle.submit(job).map_err(|e| match e {
        SubmitError::Full(_) => ApiError {
            retry_after: Some(1),
            ..ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limit_error",
                e.to_string(),
            )
            .with_code("queue_full")
        },
        SubmitError::Closed => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "server_error",
            e.to_string(),
        ),
    })?;
    if opts.stream {
        Ok(stream(rx, reply).into_response())
    } else {
        collect(rx, reply).await.map(|v| Json(v).into_response())
    }
}

/// One choice, gathered from events.
#[derive(Default)]
struct Choice {
    text: String,
    finish: Option<FinishReason>,
    tokens: usize,
    logprobs: Vec<TokenLogprob>,
}

fn scheduler_gone() -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "server_error",
        "the server stopped before the request finished".into(),
    )
}

async fn collect(mut rx: UnboundedReceiver<Event>, reply: Reply) -> Result<Value, ApiError> {
    let mut choices: Vec<Choice> = (0..reply.n).map(|_| Choice::default()).collect();
    let mut prompt_lps = None;
    while choices.iter().any(|c| c.finish.is_none()) {
        match rx.recv().await.ok_or_else(scheduler_gone)? {
            Event::Admitted { .. } => {}
            Event::PromptLogprobs(p) => prompt_lps = Some(p),
            Event::Token {
                choice,
                text,
                logprob,
            } => {
                let c = &mut choices[choice];
                c.text.push_str(&text);
                c.logprobs.extend(logprob);
            }
            Event::Done {
                choice,
                reason,
                text,
                tokens,
            } => {
                let c = &mut choices[choice];
                c.text.push_str(&text);
                c.finish = Some(reason);
                c.tokens = tokens;
            }
            Event::Error { status, message } => {
                return Err(ApiError::new(status, "server_error", message))
            }
        }
    }
    let completion_tokens: usize = choices.iter().map(|c| c.tokens).sum();
    let out: Vec<Value> = choices
        .into_iter()
        .enumerate()
        .map(|(i, c)| {
            let finish = c.finish.map(FinishReason::as_str);
            match reply.kind {
                Kind::Completion => {
                    let echo = reply.echo.as_deref().unwrap_or("");
                    let logprobs = reply.logprobs.then(|| {
                        legacy_logprobs(prompt_lps.as_ref(), &c.logprobs, echo.chars().count())
                    });
                    json!({"text": format!("{echo}{}", c.text), "index": i,
                           "logprobs": logprobs, "finish_reason": finish})
                }
                Kind::Chat => {
                    let logprobs = reply.logprobs.then(|| chat_logprobs(&c.logprobs));
                    json!({"index": i,
                           "message": {"role": "assistant", "content": c.text},
                           "logprobs": logprobs, "finish_reason": finish})
                }
            }
        })
        .collect();
    let object = match reply.kind {
        Kind::Completion => "text_completion",
        Kind::Chat => "chat.completion",
    };
    Ok(json!({
        "id": reply.id, "object": object, "created": reply.created, "model": reply.model,
        "choices": out, "usage": usage(reply.prompt_tokens, completion_tokens),
    }))
}

fn usage(prompt: usize, completion: usize) -> Value {
    json!({"prompt_tokens": prompt, "completion_tokens": completion,
           "total_tokens": prompt + completion})
}

/// The legacy completions shape; `text_offset` counts characters from the start
/// of the returned text (`offset` = the echoed prompt's length, where generated
/// tokens start). Scored prompt tokens come first, from offset 0, the first one
/// with `null` log-probabilities (nothing precedes it), as OpenAI's API does.
fn legacy_logprobs(prompt: Option<&PromptLogprobs>, lps: &[TokenLogprob], offset: usize) -> Value {
    // (token, its log-probability, the alternatives, its offset); None: the first
    // prompt token's null entries.
    let mut rows: Vec<(&str, Option<&TokenLogprob>, usize)> = Vec::new();
    if let Some(p) = prompt {
        rows.push((&p.first, None, 0));
        let mut at = p.first.chars().count();
        for lp in &p.rest {
            rows.push((&lp.token, Some(lp), at));
            at += lp.token.chars().count();
        }
    }
    let mut at = offset;
    for lp in lps {
        rows.push((&lp.token, Some(lp), at));
        at += lp.token.chars().count();
    }
    let top = |lp: &TokenLogprob| {
        Value::Object(
            lp.top
                .iter()
                .map(|(t, p)| (t.clone(), json!(p)))
                .collect::<Map<_, _>>(),
        )
    };
    json!({
        "tokens": rows.iter().map(|r| r.0).collect::<Vec<_>>(),
        "token_logprobs": rows.iter().map(|r| r.1.map(|l| l.logprob)).collect::<Vec<_>>(),
        "top_logprobs": rows.iter().map(|r| r.1.map(top)).collect::<Vec<_>>(),
        "text_offset": rows.iter().map(|r| r.2).collect::<Vec<_>>(),
    })
}

/// The chat shape: `{"content": [{token, logprob, bytes, top_logprobs}]}`.
fn chat_logprobs(lps: &[TokenLogprob]) -> Value {
    let entry = |t: &str, p: f32| json!({"token": t, "logprob": p, "bytes": t.as_bytes()});
    json!({"content": lps.iter().map(|l| {
        let mut e = entry(&l.token, l.logprob);
        e["top_logprobs"] = l.top.iter().map(|(t, p)| entry(t, *p)).collect();
        e
    }).collect::<Vec<_>>()})
}

/// Turns events into SSE `data:` payloads.
struct Streamer {
    rx: UnboundedReceiver<Event>,
    reply: Reply,
    out: VecDeque<String>,
    /// Per choice: finished, tokens, characters sent (for `text_offset`).
    done: Vec<bool>,
    tokens: Vec<usize>,
    sent_chars: Vec<usize>,
    ended: bool,
}

impl Streamer {
    fn chunk(
        &self,
        choice: usize,
        text: &str,
        lp: Option<&TokenLogprob>,
        finish: Option<FinishReason>,
    ) -> String {
        let finish = finish.map(FinishReason::as_str);
        let (object, c) = match self.reply.kind {
            Kind::Completion => {
                let logprobs = lp.map(|l| {
                    legacy_logprobs(None, std::slice::from_ref(l), self.sent_chars[choice])
                });
                (
                    "text_completion",
                    json!({"text": text, "index": choice,
                                           "logprobs": logprobs, "finish_reason": finish}),
                )
            }
            Kind::Chat => {
                let logprobs = lp.map(|l| chat_logprobs(std::slice::from_ref(l)));
                let delta = if finish.is_some() && text.is_empty() {
                    json!({})
                } else {
                    json!({"content": text})
                };
                (
                    "chat.completion.chunk",
                    json!({"index": choice, "delta": delta,
                                                 "logprobs": logprobs, "finish_reason": finish}),
                )
            }
        };
        json!({"id": self.reply.id, "object": object, "created": self.reply.created,
               "model": self.reply.model, "choices": [c]})
        .to_string()
    }

    fn usage_chunk(&self) -> String {
        let object = match self.reply.kind {
            Kind::Completion => "text_completion",
            Kind::Chat => "chat.completion.chunk",
        };
        json!({"id": self.reply.id, "object": object, "created": self.reply.created,
               "model": self.reply.model, "choices": [],
               "usage": usage(self.reply.prompt_tokens, self.tokens.iter().sum())})
        .to_string()
    }

    /// Handles one event (`None`: the scheduler is gone), queueing payloads.
    fn on(&mut self, ev: Option<Event>) {
        match ev {
            None => {
                self.out.push_back(scheduler_gone().body().to_string());
                self.finish_stream();
            }
            Some(Event::Admitted { .. }) => {
                for i in 0..self.reply.n {
                    let first = match (self.reply.kind, &self.reply.echo) {
                        (Kind::Chat, _) => Some(self.chat_role_chunk(i)),
                        // A scored prompt's echo waits for its log-probabilities.
                        (Kind::Completion, Some(_)) if self.reply.prompt_logprobs() => None,
                        (Kind::Completion, Some(echo)) => {
                            let c = self.chunk(i, echo, None, None);
                            self.sent_chars[i] += echo.chars().count();
                            Some(c)
                        }
                        _ => None,
                    };
                    self.out.extend(first);
                }
            }
            Some(Event::PromptLogprobs(p)) => {
                let echo = self.reply.echo.clone().unwrap_or_default();
                for i in 0..self.reply.n {
                    let lps = legacy_logprobs(Some(&p), &[], 0);
                    let c = json!({"text": echo, "index": i, "logprobs": lps,
                                   "finish_reason": null});
                    self.out.push_back(
                        json!({"id": self.reply.id, "object": "text_completion",
                               "created": self.reply.created, "model": self.reply.model,
                               "choices": [c]})
                        .to_string(),
                    );
                    self.sent_chars[i] += echo.chars().count();
                }
            }
            Some(Event::Token {
                choice,
                text,
                logprob,
            }) => {
                self.tokens[choice] += 1;
                if !text.is_empty() || logprob.is_some() {
                    let c = self.chunk(choice, &text, logprob.as_ref(), None);
                    self.out.push_back(c);
                }
                self.sent_chars[choice] += logprob.map_or(0, |l| l.token.chars().count());
            }
            Some(Event::Done {
                choice,
                reason,
                text,
                tokens,
            }) => {
                self.tokens[choice] = tokens;
                self.done[choice] = true;
                let c = self.chunk(choice, &text, None, Some(reason));
                self.out.push_back(c);
                if self.done.iter().all(|d| *d) {
                    if self.reply.include_usage {
                        self.out.push_back(self.usage_chunk());
                    }
                    self.finish_stream();
                }
            }
            Some(Event::Error { status, message }) => {
                self.out.push_back(
                    ApiError::new(status, "server_error", message)
                        .body()
                        .to_string(),
                );
                self.finish_stream();
            }
        }
    }

    fn chat_role_chunk(&self, i: usize) -> String {
        json!({"id": self.reply.id, "object": "chat.completion.chunk", "created": self.reply.created,
               "model": self.reply.model,
               "choices": [{"index": i, "delta": {"role": "assistant", "content": ""},
                            "logprobs": null, "finish_reason": null}]})
        .to_string()
    }

    fn finish_stream(&mut self) {
        self.out.push_back("[DONE]".into());
        self.ended = true;
    }
}

fn stream(
    rx: UnboundedReceiver<Event>,
    reply: Reply,
) -> Sse<impl futures_util::Stream<Item = Result<SseEvent, Infallible>>> {
    let n = reply.n;
    let st = Streamer {
        rx,
        reply,
        out: VecDeque::new(),
        done: vec![false; n],
        tokens: vec![0; n],
        sent_chars: vec![0; n],
        ended: false,
    };
    // Dropping this stream (the client left) drops the receiver, which the
    // scheduler notices at its next step.
    Sse::new(futures_util::stream::unfold(st, |mut st| async move {
        loop {
            if let Some(data) = st.out.pop_front() {
                return Some((Ok(SseEvent::default().data(data)), st));
            }
            if st.ended {
                return None;
            }
            let ev = st.rx.recv().await;
            st.on(ev);
        }
    }))
}
