//! `mamba-server MODEL.mbin [flags]`: see `--help`.

use anyhow::{Context, Result};
use mamba_server::cli::Args;
use mamba_server::Config;
use std::sync::Arc;
use std::time::Duration;

fn main() {
    if let Err(e) = run() {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn run() -> Result<()> {
    let args = Args::parse_env();
    args.check_device()?;
    let chat_template = args
        .chat_template
        .as_ref()
        .map(|p| {
            std::fs::read_to_string(p)
                .with_context(|| format!("reading the chat template {}", p.display()))
        })
        .transpose()?;
    let threads =
        mamba_runtime::set_threads(args.threads as usize).context("starting the CPU threads")?;
    let model = mamba_runtime::Model::open(&args.model)
        .with_context(|| format!("loading the model {}", args.model.display()))?;
    let config = Config {
        model_id: args.model_id(),
        parallel: args.parallel as usize,
        cache_bytes: (args.cache_mb as usize) << 20,
        api_key: args.api_key.clone(),
        max_tokens_limit: args.max_tokens_limit as usize,
        queue: args.queue as usize,
        chat_template,
        timeout: Duration::from_secs(args.timeout),
        max_body: args.max_body as usize,
        prefill_step: args.prefill_step as usize,
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    rt.block_on(async move {
        let addr = std::net::SocketAddr::new(args.host, args.port);
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("binding {addr}"))?;
        eprintln!(
            "mamba-server: {} ({}) on http://{} with {threads} threads, {} parallel sequences",
            config.model_id,
            args.model.display(),
            listener.local_addr()?,
            config.parallel
        );
        let grace = Duration::from_secs(args.shutdown_grace);
        mamba_server::serve(listener, Arc::new(model), config, shutdown_signal(), grace).await?;
        eprintln!("mamba-server: stopped");
        Ok(())
    })
}

/// Completes at the first SIGINT or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
    eprintln!("mamba-server: shutting down, letting requests in flight finish");
}
