//! `mamba-bench`: throughput and batch sweeps; see [`mamba_tools::bench`].
fn main() -> std::process::ExitCode {
    let args = mamba_tools::cli::parse::<mamba_tools::bench::BenchArgs>();
    mamba_tools::cli::finish(mamba_tools::bench::run(&args))
}
