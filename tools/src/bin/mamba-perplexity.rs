//! `mamba-perplexity`: perplexity of a model; see [`mamba_tools::perplexity`].
fn main() -> std::process::ExitCode {
    let args = mamba_tools::cli::parse::<mamba_tools::perplexity::PplArgs>();
    mamba_tools::cli::finish(mamba_tools::perplexity::run(&args))
}
