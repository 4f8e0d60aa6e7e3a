//! `mamba-inspect`: show and verify a `.mbin` file; see [`mamba_tools::inspect`].
fn main() -> std::process::ExitCode {
    let args = mamba_tools::cli::parse::<mamba_tools::inspect::InspectArgs>();
    mamba_tools::cli::finish(mamba_tools::inspect::run(&args))
}
