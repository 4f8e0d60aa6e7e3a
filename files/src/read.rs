//! Opening and reading inputs: regular files only, never blocking, loaded whole only
//! under a limit.

use std::fs::{File, Metadata, OpenOptions};
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::Path;

use crate::error::FileError;

/// The kind of file `meta` describes, in words.
pub fn file_kind(meta: &Metadata) -> &'static str {
    let t = meta.file_type();
    if t.is_file() {
        "regular file"
    } else if t.is_dir() {
        "directory"
    } else if t.is_fifo() {
        "FIFO"
    } else if t.is_char_device() {
        "character device"
    } else if t.is_block_device() {
        "block device"
    } else if t.is_socket() {
        "socket"
    } else if t.is_symlink() {
        "symbolic link"
    } else {
        "special file"
    }
}

/// Whether two metadata records describe the same file (device and inode).
pub fn same_file(a: &Metadata, b: &Metadata) -> bool {
    a.dev() == b.dev() && a.ino() == b.ino()
}

/// Opens `path` for reading, refusing anything but a regular file (after following
/// symlinks).
///
/// The open is non-blocking so that a FIFO with no writer cannot hang the caller; for
/// a regular file the flag has no effect (Linux and POSIX ignore it there), so the
/// returned handle reads normally.
///
/// # Errors
/// [`FileError::NotRegular`] naming the kind, or [`FileError::Io`] (not found,
/// permission denied, ...).
pub fn open_regular(path: &Path) -> Result<File, FileError> {
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(FileError::io(format!("cannot open {}", path.display())))?;
    let meta = file
        .metadata()
        .map_err(FileError::io(format!("cannot stat {}", path.display())))?;
    if !meta.is_file() {
        return Err(FileError::NotRegular {
            path: path.to_path_buf(),
            kind: file_kind(&meta),
        });
    }
    Ok(file)
}

/// Reads a regular file whole, refusing one larger than `limit` bytes before reading
/// (and stopping at `limit + 1` bytes should it grow while being read).
///
/// # Errors
/// As [`open_regular`], and [`FileError::TooLarge`] naming `what`.
pub fn read_capped(path: &Path, limit: u64, what: &'static str) -> Result<Vec<u8>, FileError> {
    let file = open_regular(path)?;
    let size = file
        .metadata()
        .map_err(FileError::io(format!("cannot stat {}", path.display())))?
        .len();
    let too_large = |size| FileError::TooLarge {
        path: path.to_path_buf(),
        size,
        limit,
        what,
    };
    if size > limit {
        return Err(too_large(size));
    }
    let mut bytes = Vec::with_capacity(size as usize);
    file.take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(FileError::io(format!("cannot read {}", path.display())))?;
    if bytes.len() as u64 > limit {
        return Err(too_large(bytes.len() as u64));
    }
    Ok(bytes)
}

/// [`read_capped`], then UTF-8.
///
/// # Errors
/// As [`read_capped`], and [`FileError::Io`] (`InvalidData`) for text that is not
/// UTF-8, naming the byte offset.
pub fn read_to_string_capped(
    path: &Path,
    limit: u64,
    what: &'static str,
) -> Result<String, FileError> {
    let bytes = read_capped(path, limit, what)?;
    String::from_utf8(bytes).map_err(|e| FileError::Io {
        context: format!("cannot read {}", path.display()),
        source: std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!(
                "not UTF-8 text (invalid byte at offset {})",
                e.utf8_error().valid_up_to()
            ),
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    use std::time::{Duration, Instant};

    #[test]
    fn directory_is_refused_by_kind() {
        let dir = tempfile::tempdir().unwrap();
        let err = open_regular(dir.path()).unwrap_err();
        assert!(err.to_string().contains("is a directory"), "{err}");
    }

    #[test]
    fn fifo_is_refused_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        let c = CString::new(fifo.as_os_str().as_bytes()).unwrap();
        // SAFETY: `c` is a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let t = Instant::now();
        let err = read_capped(&fifo, 100, "a test file").unwrap_err();
        assert!(t.elapsed() < Duration::from_secs(5));
        assert!(err.to_string().contains("is a FIFO"), "{err}");
    }

    #[test]
    fn char_device_is_refused() {
        let err = read_capped(Path::new("/dev/zero"), 1 << 20, "a tokenizer").unwrap_err();
        assert!(err.to_string().contains("character device"), "{err}");
    }

    #[test]
    fn over_the_limit_is_refused_before_reading() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("big.json");
        std::fs::write(&p, vec![b' '; 101]).unwrap();
        let err = read_capped(&p, 100, "config.json").unwrap_err();
        assert!(matches!(
            err,
            FileError::TooLarge {
                size: 101,
                limit: 100,
                ..
            }
        ));
        assert!(err.to_string().contains("config.json"), "{err}");
        assert_eq!(read_capped(&p, 101, "x").unwrap().len(), 101);
    }

    #[test]
    fn invalid_utf8_names_the_offset() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.txt");
        std::fs::write(&p, b"abc\xffdef").unwrap();
        let err = read_to_string_capped(&p, 100, "a text").unwrap_err();
        assert!(err.to_string().contains("offset 3"), "{err}");
    }
}
