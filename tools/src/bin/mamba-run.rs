//! `mamba-run`: generate text; see [`mamba_tools::run`].
fn main() -> std::process::ExitCode {
    let args = mamba_tools::cli::parse::<mamba_tools::run::RunArgs>();
    mamba_tools::cli::finish(mamba_tools::run::run(&args))
}
