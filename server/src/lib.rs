//! `mamba-server`: an OpenAI-compatible HTTP server for Mamba models.
//!
//! ```text
//! HTTP handlers ──Job──▶ bounded queue ──▶ scheduler thread (continuous batching,
//!      ▲                                   state cache, one forward call per step)
//!      └──────────── Event (tokens, text, finish) per request ◀──┘
//! ```
//!
//! Endpoints: `POST /v1/completions`, `POST /v1/chat/completions`, `GET /v1/models`,
//! `GET /health`, `GET /metrics`, `POST /tokenize`, `POST /detokenize`, and a
//! playground page at `GET /`. Errors have OpenAI's shape
//! (`{"error": {"message", "type", "param", "code"}}`).
#![deny(missing_docs)]

pub mod api;
pub mod cache;
pub mod chat;
pub mod cli;
mod completions;
pub mod metrics;
pub mod routes;
pub mod scheduler;
pub mod stop;

use mamba_runtime::Model;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

/// Everything the server needs besides the model.
#[derive(Clone, Debug)]
pub struct Config {
    /// The model id reported by `/v1/models` (a request naming another is refused).
    pub model_id: String,
    /// Most sequences decoded together (a request with `n` choices takes `n`).
    pub parallel: usize,
    /// Byte budget of the state cache; 0 disables it.
    pub cache_bytes: usize,
    /// Key clients must send as `Authorization: Bearer KEY`; `None`: open.
    pub api_key: Option<String>,
    /// Largest `max_tokens` a request may ask for.
    pub max_tokens_limit: usize,
    /// Most requests waiting for a slot; more get 429.
    pub queue: usize,
    /// Chat template source overriding the model's.
    pub chat_template: Option<String>,
    /// Per-request time limit, queueing included.
    pub timeout: Duration,
    /// Largest request body in bytes; larger gets 413.
    pub max_body: usize,
    /// Most prompt tokens fed per step while other sequences decode (1-512).
    pub prefill_step: usize,
}

/// Why the server could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The chat template does not compile.
    #[error(transparent)]
    Template(#[from] chat::TemplateError),
    /// Socket or thread failure.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Serves `model` on `listener` until `shutdown` completes, then stops accepting
/// and lets requests in flight finish for at most `grace`.
pub async fn serve(
    listener: tokio::net::TcpListener,
    model: Arc<Model>,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
    grace: Duration,
) -> Result<(), ServerError> {
    let chat = chat_template(&model, &config)?;
    let metrics = Arc::new(metrics::Metrics::default());
    let (handle, scheduler) = scheduler::start(
        model.clone(),
        config.parallel,
        config.queue,
        config.cache_bytes,
        config.prefill_step,
        metrics.clone(),
    )?;
    let state = Arc::new(routes::AppState {
        model,
        model_id: config.model_id,
        handle,
        metrics,
        chat,
        api_key: config.api_key,
        limits: api::Limits {
            max_tokens: config.max_tokens_limit,
            max_n: config.parallel,
        },
        timeout: config.timeout,
        max_body: config.max_body,
        created: api::now_unix(),
    });
    let app = routes::router(state);
    let (stopping_tx, stopping_rx) = tokio::sync::oneshot::channel::<()>();
    let server = axum::serve(listener, app).with_graceful_shutdown(async move {
        shutdown.await;
        let _ = stopping_tx.send(());
    });
    let finished_in_time = {
        let server = std::future::IntoFuture::into_future(server);
        tokio::pin!(server);
        let give_up = async {
            if stopping_rx.await.is_ok() {
                tokio::time::sleep(grace).await;
            } else {
                std::future::pending::<()>().await;
            }
        };
        tokio::select! {
            r = &mut server => { r?; true }
            _ = give_up => false,
        }
    };
    if finished_in_time {
        // Every handler is gone, so the scheduler ends once its queue is empty.
        let _ = tokio::task::spawn_blocking(move || scheduler.join()).await;
    }
    Ok(())
}

/// The chat template: `--chat-template`'s, else the model's, else none.
fn chat_template(
    model: &Model,
    config: &Config,
) -> Result<Option<chat::ChatTemplate>, ServerError> {
    let source = config
        .chat_template
        .clone()
        .or_else(|| model.chat_template().map(str::to_string));
    let Some(source) = source else {
        return Ok(None);
    };
    // The strings of the special tokens, empty when the model has none.
    let text = |id: Option<u32>| {
        model
            .tokenizer()
            .zip(id)
            .and_then(|(tok, id)| tok.id_to_token(id))
            .unwrap_or_default()
    };
    let (bos, eos) = (text(model.bos_id()), text(model.eos_id()));
    Ok(Some(chat::ChatTemplate::new(source, bos, eos)?))
}
