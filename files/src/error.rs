//! [`FileError`]: what can go wrong opening, reading or replacing a file.

use std::path::PathBuf;

/// A refused or failed file operation. Every variant names the path.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// The path exists but is not a regular file (a directory, FIFO, device, socket).
    #[error("{}: is a {kind}, not a regular file", path.display())]
    NotRegular {
        /// The path given.
        path: PathBuf,
        /// What it is, in words ("directory", "FIFO", "character device", ...).
        kind: &'static str,
    },
    /// A file loaded whole is larger than its documented limit.
    #[error("{}: {size} bytes is more than the {limit}-byte limit for {what}", path.display())]
    TooLarge {
        /// The path given.
        path: PathBuf,
        /// Its size in bytes.
        size: u64,
        /// The limit in bytes.
        limit: u64,
        /// What the file was read as ("a tokenizer", "config.json", ...).
        what: &'static str,
    },
    /// An output path names one of the inputs (itself, a hard link or a symlink).
    #[error("{}: is an input of this run ({}); refusing to write over it", path.display(), input.display())]
    OutputIsInput {
        /// The output path.
        path: PathBuf,
        /// The input it is the same file as.
        input: PathBuf,
    },
    /// The output exists and replacing was not asked for.
    #[error("{}: already exists (use --force to overwrite)", path.display())]
    OutputExists {
        /// The output path.
        path: PathBuf,
    },
    /// An operating-system error, with what was being done.
    #[error("{context}: {source}")]
    Io {
        /// What was being done, with the path.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

impl FileError {
    pub(crate) fn io(context: String) -> impl FnOnce(std::io::Error) -> FileError {
        move |source| FileError::Io { context, source }
    }
}
