//! Shared command-line plumbing of the tools: argument parsing with one-line usage
//! errors, and turning an error into one `error: ...` line and exit code 1.

use std::path::Path;
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

/// Help text of every tool's `-t/--threads` flag.
pub const THREADS_HELP: &str =
    "CPU threads, 0 to 4 × the logical CPUs; 0 = one per physical core. \
[default: one per physical core]";

/// The most threads `-t` accepts: 4 × the logical CPUs. More only adds switching
/// and memory, and a few hundred thousand (`-t 100000`) take minutes to start.
pub fn max_threads() -> usize {
    4 * std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// `-t/--threads` value parser: a count in `[0, max_threads()]` (0: one per
/// physical core), refused above as a usage error.
pub fn parse_threads(s: &str) -> Result<usize, String> {
    let n: usize = s
        .trim()
        .parse()
        .map_err(|_| format!("'{s}' is not a thread count"))?;
    let max = max_threads();
    if n > max {
        return Err(format!(
            "{n} threads is more than the {max} allowed (4 × {} logical CPUs)",
            max / 4
        ));
    }
    Ok(n)
}

/// Starts the kernel threads (0 or `None`: one per physical core) and returns the
/// number in use.
///
/// # Errors
/// A thread cannot be started (`ulimit -u`, memory): `cannot start N threads: ...`.
pub fn set_threads(threads: Option<usize>) -> anyhow::Result<usize> {
    // The runtime resolves 0 to one per physical core.
    Ok(mamba_runtime::set_threads(threads.unwrap_or(0))?)
}

/// Parses a comma-separated list (`-b 1,2,4`, `--prompt-ids 5,6,7`) the same way in
/// every tool: items may have spaces around them, but an empty item (`1,,2`, a
/// leading or trailing comma, an empty or blank list) is refused, as is an item
/// that does not parse.
pub fn parse_list<T: std::str::FromStr>(s: &str) -> Result<Vec<T>, String> {
    s.split(',')
        .enumerate()
        .map(|(i, item)| {
            let item = item.trim();
            if item.is_empty() {
                return Err(format!("item {} of '{s}' is empty", i + 1));
            }
            item.parse()
                .map_err(|_| format!("item {} of '{s}' ('{item}') is not valid", i + 1))
        })
        .collect()
}

/// A comma-separated list flag's value, parsed by [`parse_list`] (a type of its
/// own so that clap takes the whole list as one value).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct List<T>(pub Vec<T>);

impl<T: std::str::FromStr> std::str::FromStr for List<T> {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        parse_list(s).map(List)
    }
}

/// The most bytes a text or token-id file given to a tool may have
/// ([`mamba_files::limits::MAX_TEXT_BYTES`], 1 GiB); larger ones are refused
/// before they are read.
pub const MAX_TEXT_BYTES: u64 = mamba_files::limits::MAX_TEXT_BYTES;

/// Reads a text file loaded whole (a prompt, a corpus, an ids file): a regular file
/// only (a FIFO or device is refused without blocking), at most [`MAX_TEXT_BYTES`],
/// UTF-8. Before reading, the memory its processing takes (`bytes_per_byte` × its
/// size) is checked against what is available.
///
/// # Errors
/// Not a regular file, too large, not enough memory, unreadable or not UTF-8; the
/// message names the path.
pub fn read_text(path: &Path, what: &'static str, bytes_per_byte: u64) -> anyhow::Result<String> {
    let size = crate::mem::file_size(path);
    // Over the limit, the read below refuses it with that reason.
    if size <= MAX_TEXT_BYTES {
        let needed = crate::mem::mul(size, bytes_per_byte, what)?;
        crate::mem::ensure_fits(needed, &format!("{what} {}", path.display()))?;
    }
    Ok(mamba_files::read_to_string_capped(
        path,
        MAX_TEXT_BYTES,
        what,
    )?)
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
    fn lists_refuse_empty_items() {
        assert_eq!(parse_list::<u32>("1,2, 3 ").unwrap(), vec![1, 2, 3]);
        assert_eq!(parse_list::<u32>("7").unwrap(), vec![7]);
        for bad in ["", " ", "1,,2", "1, ,2", ",1", "1,", "1,x", "-1", "1 2"] {
            let e = parse_list::<u32>(bad).unwrap_err();
            assert!(e.contains("item"), "{bad}: {e}");
        }
        assert!(parse_list::<u32>("1,,2").unwrap_err().contains("empty"));
    }

    #[test]
    fn threads_are_bounded() {
        assert_eq!(parse_threads("0").unwrap(), 0);
        assert_eq!(parse_threads("1").unwrap(), 1);
        let max = max_threads();
        assert_eq!(parse_threads(&max.to_string()).unwrap(), max);
        let e = parse_threads(&(max + 1).to_string()).unwrap_err();
        assert!(e.contains("4 ×"), "{e}");
        assert!(parse_threads("-1").is_err());
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
