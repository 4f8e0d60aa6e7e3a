//! The router: endpoints, the API-key check, request counting, and OpenAI-shaped
//! errors for everything axum would otherwise answer in plain text.

use crate::api::{ApiError, Fields, Limits};
use crate::chat::ChatTemplate;
use crate::completions;
use crate::metrics::Metrics;
use crate::scheduler::Handle;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, FromRequest, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use mamba_runtime::Model;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;

/// Everything the handlers share.
pub struct AppState {
    /// The model.
    pub model: Arc<Model>,
    /// The id `/v1/models` reports and requests may name.
    pub model_id: String,
    /// The scheduler's queue.
    pub handle: Handle,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// The chat template, if the model or `--chat-template` gives one.
    pub chat: Option<ChatTemplate>,
    /// The key clients must present, if any.
    pub api_key: Option<String>,
    /// Limits on request options.
    pub limits: Limits,
    /// Per-request time limit.
    pub timeout: Duration,
    /// Largest request body, bytes.
    pub max_body: usize,
    /// When the server started (Unix seconds), reported as the model's `created`.
    pub created: u64,
}

/// The application's routes over `state`.
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/", get(page))
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .route("/v1/models", get(models))
        .route("/v1/completions", post(completions::completions))
        .route("/v1/chat/completions", post(completions::chat_completions))
        .route("/tokenize", post(tokenize))
        .route("/detokenize", post(detokenize))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(state.clone(), auth))
        .layer(DefaultBodyLimit::max(state.max_body))
        .layer(middleware::from_fn_with_state(state.clone(), count_status))
        .with_state(state)
}

/// A request body parsed as JSON; a body over the limit (413) or malformed JSON
/// (400) is an OpenAI error instead of axum's plain-text rejection.
pub struct JsonBody(pub Value);

impl FromRequest<Arc<AppState>> for JsonBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &Arc<AppState>) -> Result<Self, ApiError> {
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            let status = e.status();
            let message = if status == StatusCode::PAYLOAD_TOO_LARGE {
                format!(
                    "the request body is larger than the limit of {} bytes",
                    state.max_body
                )
            } else {
                e.body_text()
            };
            ApiError::new(status, "invalid_request_error", message)
        })?;
        serde_json::from_slice(&bytes).map(JsonBody).map_err(|e| {
            ApiError::invalid(format!("the request body is not valid JSON: {e}"))
                .with_code("invalid_json")
        })
    }
}

/// Compares without an early exit, so the time taken does not tell how much of a
/// guessed key was right (only its length).
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn auth(State(app): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let Some(key) = &app.api_key else {
        return next.run(req).await;
    };
    // The page and the health check stay open: the page asks for the key itself.
    if matches!(req.uri().path(), "/health" | "/") {
        return next.run(req).await;
    }
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    if constant_time_eq(given.trim().as_bytes(), key.as_bytes()) {
        next.run(req).await
    } else {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "authentication_error",
            "missing or wrong API key (send `Authorization: Bearer KEY`)".into(),
        )
        .with_code("invalid_api_key")
        .into_response()
    }
}

async fn count_status(State(app): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let resp = next.run(req).await;
    app.metrics.request(resp.status().as_u16());
    resp
}

async fn not_found(req: Request) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "invalid_request_error",
        format!("no route for {} {}", req.method(), req.uri().path()),
    )
    .with_code("not_found")
}

async fn method_not_allowed(req: Request) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "invalid_request_error",
        format!("{} is not allowed on {}", req.method(), req.uri().path()),
    )
}

async fn page() -> Html<&'static str> {
    Html(include_str!("page.html"))
}

async fn health() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

async fn metrics(State(app): State<Arc<AppState>>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        app.metrics.render(),
    )
}

async fn models(State(app): State<Arc<AppState>>) -> Json<Value> {
    Json(json!({
        "object": "list",
        "data": [{
            "id": app.model_id,
            "object": "model",
            "created": app.created,
            "owned_by": "mamba-server",
        }],
    }))
}

fn tokenizer(app: &AppState) -> Result<&mamba_runtime::Tokenizer, ApiError> {
    app.model
        .tokenizer()
        .ok_or_else(|| ApiError::invalid("this model has no embedded tokenizer"))
}

async fn tokenize(
    State(app): State<Arc<AppState>>,
    JsonBody(body): JsonBody,
) -> Result<Json<Value>, ApiError> {
    let f = Fields::object(&body)?;
    let content = f
        .str("content")?
        .ok_or_else(|| ApiError::param("content", "`content` (a string) is required"))?;
    let tokens = tokenizer(&app)?
        .encode(content)
        .map_err(|e| ApiError::param("content", e.to_string()))?;
    Ok(Json(json!({ "tokens": tokens })))
}

async fn detokenize(
    State(app): State<Arc<AppState>>,
    JsonBody(body): JsonBody,
) -> Result<Json<Value>, ApiError> {
    let f = Fields::object(&body)?;
    let ids = f
        .get("tokens")
        .and_then(completions::token_ids)
        .ok_or_else(|| ApiError::param("tokens", "`tokens` must be an array of token ids"))?;
    app.model
        .check_tokens(&ids)
        .map_err(|e| ApiError::param("tokens", e.to_string()).with_code("invalid_token"))?;
    let content = tokenizer(&app)?
        .decode(&ids)
        .map_err(|e| ApiError::param("tokens", e.to_string()))?;
    Ok(Json(json!({ "content": content })))
}

#[cfg(test)]
mod tests {
    use super::constant_time_eq;

    #[test]
    fn key_comparison() {
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secret", b"secreT"));
        assert!(!constant_time_eq(b"secret", b"secret2"));
        assert!(!constant_time_eq(b"", b"x"));
    }
}
