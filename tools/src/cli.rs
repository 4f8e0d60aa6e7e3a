//! Shared command-line plumbing of the tools: argument parsing with one-line usage
//! errors, and turning an error into one `error: ...` line and exit code 1.

use std::process::ExitCode;

/// Parses the command line. `--help`/`--version` print and exit 0; a usage error
/// prints one line (`error: ... (see --help)`) on stderr and exits 2.
pub fn parse<T: clap::Parser>() -> T {
    match T::try_parse() {
        Ok(args) => args,
        Err(e) => {
            use clap::error::ErrorKind;
            if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
                let _ = e.print();
                std::process::exit(0);
            }
            eprintln!("{}", clap_one_line(&e.render().to_string()));
            std::process::exit(2);
        }
    }
}

/// Folds clap's multi-line error text into one line: the message lines up to the
/// usage block, without tips, whitespace collapsed.
pub fn clap_one_line(rendered: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for line in rendered.lines() {
        let line = line.trim();
        if line.starts_with("Usage:") || line.starts_with("For more information") {
            break;
        }
        if line.is_empty() || line.starts_with("tip:") {
            continue;
        }
        parts.push(line);
    }
    let msg = parts.join(" ");
    let msg = if msg.starts_with("error:") {
        msg
    } else {
        format!("error: {msg}")
    };
    format!("{msg} (see --help)")
}

/// The message of an error and its causes on one line, `outer: cause: cause`,
/// skipping causes whose text the message already contains (the runtime's errors
/// include their source in their own text).
pub fn one_line(e: &anyhow::Error) -> String {
    let mut msg = String::new();
    for cause in e.chain() {
        let s = cause.to_string();
        if msg.contains(&s) {
            continue;
        }
        if !msg.is_empty() {
            msg.push_str(": ");
        }
        msg.push_str(&s);
    }
    msg.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Ends a tool: `Ok` → exit 0; `Err` → `error: <one line>` on stderr, exit 1.
pub fn finish(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", one_line(&e));
            ExitCode::from(1)
        }
    }
}

/// Sets the kernel thread count (0 or `None`: one per physical core) and returns
/// the number in use.
pub fn set_threads(threads: Option<usize>) -> usize {
    let n = match threads {
        Some(n) if n > 0 => n,
        _ => mamba_runtime::physical_cores(),
    };
    mamba_runtime::set_threads(n);
    n
}

/// `bytes` as MiB with two decimals (`"55.79 MiB"`).
pub fn mib(bytes: u64) -> String {
    format!("{:.2} MiB", bytes as f64 / (1024.0 * 1024.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clap_errors_fold_to_one_line() {
        let r = "error: unexpected argument '--foo' found\n\n  tip: to pass '--foo' as a value, use '-- --foo'\n\nUsage: mamba-run [OPTIONS] <MODEL>\n\nFor more information, try '--help'.\n";
        assert_eq!(
            clap_one_line(r),
            "error: unexpected argument '--foo' found (see --help)"
        );
        let r =
            "error: the following required arguments were not provided:\n  <MODEL>\n\nUsage: x\n";
        assert_eq!(
            clap_one_line(r),
            "error: the following required arguments were not provided: <MODEL> (see --help)"
        );
    }

    #[test]
    fn error_chain_is_deduplicated() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "not found");
        let e = anyhow::Error::new(io)
            .context("x.mbin: not found")
            .context("opening the model");
        assert_eq!(one_line(&e), "opening the model: x.mbin: not found");
    }
}
