//! Command-line flags of `mamba-server`.

use clap::Parser;
use std::net::IpAddr;
use std::path::PathBuf;

/// An OpenAI-compatible HTTP server for a Mamba model (.mbin): /v1/completions,
/// /v1/chat/completions, /v1/models, /health, /metrics, /tokenize, /detokenize and
/// a playground page at /.
#[derive(Parser, Debug)]
#[command(name = "mamba-server", version)]
pub struct Args {
    /// The model file (.mbin).
    pub model: PathBuf,
    /// Address to listen on (default: loopback only).
    #[arg(long, default_value = "127.0.0.1")]
    pub host: IpAddr,
    /// Port to listen on, 0-65535 (0: any free port).
    #[arg(long, default_value_t = 8080)]
    pub port: u16,
    /// Sequences decoded together, 1-256 (also -np N); a request with n choices takes n.
    #[arg(long = "parallel", default_value_t = 4,
          value_parser = clap::value_parser!(u64).range(1..=256))]
    pub parallel: u64,
    /// State cache budget in MiB, 0-1048576 (0 disables the cache).
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u64).range(0..=1 << 20))]
    pub cache_mb: u64,
    /// Require `Authorization: Bearer KEY` on every endpoint but /health and /.
    #[arg(long)]
    pub api_key: Option<String>,
    /// CPU threads, 0-1024 (0: one per physical core).
    #[arg(short = 't', long, default_value_t = 0, value_parser = clap::value_parser!(u64).range(0..=1024))]
    pub threads: u64,
    /// Device: cpu (hip:N is not built into this server).
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Largest max_tokens a request may ask for, 1-1048576.
    #[arg(long, default_value_t = 4096, value_parser = clap::value_parser!(u64).range(1..=1 << 20))]
    pub max_tokens_limit: u64,
    /// Most prompt tokens fed in one step while other sequences are decoding,
    /// 1-512 (a step holds every stream: smaller keeps their tokens steady, larger
    /// gives newcomers their first token sooner; alone, a prompt takes 512).
    #[arg(long, default_value_t = 128, value_parser = clap::value_parser!(u64).range(1..=512))]
    pub prefill_step: u64,
    /// Requests allowed to wait for a slot, 1-65536; more get 429.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..=65536))]
    pub queue: u64,
    /// A Jinja chat template file, used instead of the model's.
    #[arg(long)]
    pub chat_template: Option<PathBuf>,
    /// Per-request time limit in seconds, queueing included, 1-86400.
    #[arg(long, default_value_t = 600, value_parser = clap::value_parser!(u64).range(1..=86400))]
    pub timeout: u64,
    /// Largest request body in bytes, 1024-1073741824.
    #[arg(long, default_value_t = 4 << 20, value_parser = clap::value_parser!(u64).range(1024..=1 << 30))]
    pub max_body: u64,
    /// Model id reported by /v1/models (default: the file's stem).
    #[arg(long)]
    pub alias: Option<String>,
    /// Seconds to let requests in flight finish after SIGTERM/SIGINT, 0-3600.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(0..=3600))]
    pub shutdown_grace: u64,
}

/// Why the flags cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// A GPU device was asked for.
    #[error(
        "--device {0}: the GPU server path is not built; mamba-server serves on the CPU \
         only (use --device cpu, or mamba-run --device {0} for single-stream GPU generation)"
    )]
    GpuNotBuilt(String),
    /// An unknown device name.
    #[error("--device {0}: unknown device (expected cpu)")]
    UnknownDevice(String),
}

impl Args {
    /// Parses the process's arguments; `-np N` (llama.cpp's spelling, not a clap
    /// short flag since it has two letters) means `--parallel N`.
    pub fn parse_env() -> Args {
        Args::parse_from(normalize(std::env::args_os()))
    }

    /// Checks `--device`: only the CPU is served.
    pub fn check_device(&self) -> Result<(), CliError> {
        let d = self.device.trim().to_ascii_lowercase();
        if d == "cpu" {
            Ok(())
        } else if ["hip:", "cuda:", "gpu:"].iter().any(|p| d.starts_with(p)) {
            Err(CliError::GpuNotBuilt(self.device.clone()))
        } else {
            Err(CliError::UnknownDevice(self.device.clone()))
        }
    }

    /// The model id: `--alias`, else the file stem.
    pub fn model_id(&self) -> String {
        self.alias.clone().unwrap_or_else(|| {
            self.model
                .file_stem()
                .map_or("model".into(), |s| s.to_string_lossy().into_owned())
        })
    }
}

/// Rewrites `-np` to `--parallel`.
pub fn normalize(args: impl IntoIterator<Item = std::ffi::OsString>) -> Vec<std::ffi::OsString> {
    args.into_iter()
        .map(|a| if a == "-np" { "--parallel".into() } else { a })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_and_ranges() {
        let a = Args::try_parse_from(["mamba-server", "m.mbin"]).unwrap();
        assert_eq!(a.host.to_string(), "127.0.0.1");
        assert_eq!((a.port, a.parallel), (8080, 4));
        assert_eq!(a.model_id(), "m");
        a.check_device().unwrap();
        let argv = ["mamba-server", "m.mbin", "-np", "8", "--device", "hip:0"];
        let a = Args::try_parse_from(normalize(argv.map(Into::into))).unwrap();
        assert_eq!(a.parallel, 8);
        assert!(matches!(a.check_device(), Err(CliError::GpuNotBuilt(_))));
        assert!(Args::try_parse_from(["mamba-server", "m.mbin", "--parallel", "0"]).is_err());
        assert!(Args::try_parse_from(["mamba-server", "m.mbin", "--queue", "0"]).is_err());
    }
}
