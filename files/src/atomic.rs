//! Outputs: never over an input or a special file, and atomically in place.

use std::fs::{File, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

use crate::error::FileError;
use crate::read::{file_kind, same_file};
use crate::signals::{register, Registration};

/// The longest file name Linux file systems accept.
const NAME_MAX: usize = 255;

/// Checks that `path` may be written: it does not exist, or it is a regular file that
/// is none of `inputs` and `force` is set. Symlinks are followed for the check (the
/// final rename replaces the link, not its target, but a link to an input is refused
/// all the same).
///
/// # Errors
/// [`FileError::NotRegular`], [`FileError::OutputIsInput`],
/// [`FileError::OutputExists`], or [`FileError::Io`] when the path cannot be examined
/// or has no file name.
pub fn check_output(path: &Path, inputs: &[&Path], force: bool) -> Result<(), FileError> {
    if path.file_name().is_none() {
        return Err(FileError::Io {
            context: format!("output {}", path.display()),
            source: std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a file path"),
        });
    }
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => {
            return Err(FileError::Io {
                context: format!("output {}", path.display()),
                source: e,
            })
        }
    };
    if !meta.is_file() {
        return Err(FileError::NotRegular {
            path: path.to_path_buf(),
            kind: file_kind(&meta),
        });
    }
    for input in inputs {
        if std::fs::metadata(input).is_ok_and(|m| same_file(&m, &meta)) {
            return Err(FileError::OutputIsInput {
                path: path.to_path_buf(),
                input: input.to_path_buf(),
            });
        }
    }
    if !force {
        return Err(FileError::OutputExists {
            path: path.to_path_buf(),
        });
    }
    Ok(())
}

/// The temporary file beside `path`: `.NAME.tmpPID`, or, when that would be longer
/// than a file name may be, `.PREFIX~HASH.tmpPID` with the name's first bytes and a
/// hash of all of it.
pub fn temp_path_for(path: &Path) -> PathBuf {
    let name = path.file_name().unwrap_or_default().as_bytes();
    let pid = std::process::id();
    // ".", the name, ".tmp" and up to 10 digits of PID.
    if 1 + name.len() + 4 + 10 <= NAME_MAX {
        let mut v = b".".to_vec();
        v.extend_from_slice(name);
        v.extend_from_slice(format!(".tmp{pid}").as_bytes());
        return path.with_file_name(std::ffi::OsString::from_vec(v));
    }
    // FNV-1a: only needs to separate names that share their first 200 bytes.
    let hash = name.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    let mut v = b".".to_vec();
    v.extend_from_slice(&name[..200]);
    v.extend_from_slice(format!("~{hash:016x}.tmp{pid}").as_bytes());
    path.with_file_name(std::ffi::OsString::from_vec(v))
}

/// Temporary files beside `path` left by processes that no longer exist (killed by a
/// signal that cannot be caught, or a crash), for the caller to report. Both forms
/// of [`temp_path_for`] are recognised.
pub fn stale_temp_files(path: &Path) -> Vec<PathBuf> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    // The temporary name without its PID: what every process's name starts with.
    let own = temp_path_for(path);
    let own = own.file_name().unwrap_or_default().as_bytes();
    let pid = std::process::id().to_string();
    let Some(prefix) = own.strip_suffix(pid.as_bytes()) else {
        return Vec::new();
    };
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut stale: Vec<PathBuf> = entries
        .flatten()
        .filter_map(|e| {
            let name = e.file_name();
            let digits = name.as_bytes().strip_prefix(prefix)?;
            let pid: u32 = std::str::from_utf8(digits).ok()?.parse().ok()?;
            let gone = !Path::new(&format!("/proc/{pid}")).exists();
            gone.then(|| e.path())
        })
        .collect();
    stale.sort();
    stale
}

/// An output file written through a temporary file beside it and renamed into place
/// by [`AtomicFile::commit`]. Dropped uncommitted (an error, a panic that unwinds) or
/// killed by SIGINT/SIGTERM/SIGHUP, it leaves the output path as it was.
#[derive(Debug)]
pub struct AtomicFile {
    final_path: PathBuf,
    tmp_path: PathBuf,
    inputs: Vec<PathBuf>,
    force: bool,
    file: Option<File>,
    registration: Option<Registration>,
    committed: bool,
}

impl AtomicFile {
    /// Checks the output ([`check_output`]) and creates the temporary file.
    ///
    /// # Errors
    /// As [`check_output`], or the temporary file cannot be created.
    pub fn create(path: &Path, inputs: &[&Path], force: bool) -> Result<AtomicFile, FileError> {
        check_output(path, inputs, force)?;
        let tmp_path = temp_path_for(path);
        // Registered before it exists, so that no signal can fall between the file
        // appearing and its registration (unlinking a path not yet there is harmless).
        let registration = register(&tmp_path);
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp_path)
            .map_err(FileError::io(format!(
                "cannot create {}",
                tmp_path.display()
            )))?;
        Ok(AtomicFile {
            final_path: path.to_path_buf(),
            tmp_path,
            inputs: inputs.iter().map(|p| p.to_path_buf()).collect(),
            force,
            file: Some(file),
            registration,
            committed: false,
        })
    }

    /// The temporary file's path (for error messages).
    pub fn tmp_path(&self) -> &Path {
        &self.tmp_path
    }

    fn file(&mut self) -> &mut File {
        self.file.as_mut().expect("open until commit")
    }

    /// Fsyncs the data, checks the output path again (it may have appeared or
    /// changed while writing), renames the temporary file over it and fsyncs the
    /// directory.
    ///
    /// # Errors
    /// The sync or rename failed, or the output path is no longer writable by the
    /// rules of [`check_output`]; the temporary file is then removed.
    pub fn commit(mut self) -> Result<(), FileError> {
        let ctx = format!("cannot write {}", self.tmp_path.display());
        let file = self.file.take().expect("open until commit");
        file.sync_all().map_err(FileError::io(ctx))?;
        drop(file);
        let inputs: Vec<&Path> = self.inputs.iter().map(PathBuf::as_path).collect();
        check_output(&self.final_path, &inputs, self.force)?;
        std::fs::rename(&self.tmp_path, &self.final_path).map_err(FileError::io(format!(
            "cannot rename {} to {}",
            self.tmp_path.display(),
            self.final_path.display()
        )))?;
        self.committed = true;
        self.registration.take();
        if let Some(dir) = self
            .final_path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
        {
            // Makes the rename durable; failing here loses nothing already written.
            if let Ok(d) = File::open(dir) {
                let _ = d.sync_all();
            }
        }
        Ok(())
    }
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.file().write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.file().flush()
    }
}

impl Seek for AtomicFile {
    fn seek(&mut self, pos: SeekFrom) -> std::io::Result<u64> {
        self.file().seek(pos)
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if !self.committed {
            self.file.take();
            let _ = std::fs::remove_file(&self.tmp_path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commit_replaces_and_drop_removes() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("o.txt");
        std::fs::write(&out, b"old").unwrap();
        let mut f = AtomicFile::create(&out, &[], true).unwrap();
        f.write_all(b"new").unwrap();
        let tmp = f.tmp_path().to_path_buf();
        assert!(tmp.exists());
        drop(f);
        assert!(!tmp.exists());
        assert_eq!(std::fs::read(&out).unwrap(), b"old");
        let mut f = AtomicFile::create(&out, &[], true).unwrap();
        f.write_all(b"new").unwrap();
        f.commit().unwrap();
        assert_eq!(std::fs::read(&out).unwrap(), b"new");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn existing_needs_force() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("o");
        std::fs::write(&out, b"x").unwrap();
        let err = AtomicFile::create(&out, &[], false).unwrap_err();
        assert!(matches!(err, FileError::OutputExists { .. }), "{err}");
    }

    #[test]
    fn inputs_are_never_outputs_hard_links_and_symlinks_included() {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("model.mbin");
        std::fs::write(&input, b"precious").unwrap();
        let hard = dir.path().join("hard");
        std::fs::hard_link(&input, &hard).unwrap();
        let soft = dir.path().join("soft");
        std::os::unix::fs::symlink(&input, &soft).unwrap();
        for out in [&input, &hard, &soft] {
            let err = AtomicFile::create(out, &[&input], true).unwrap_err();
            assert!(matches!(err, FileError::OutputIsInput { .. }), "{err}");
        }
        assert_eq!(std::fs::read(&input).unwrap(), b"precious");
    }

    #[test]
    fn special_files_are_never_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let err = AtomicFile::create(dir.path(), &[], true).unwrap_err();
        assert!(err.to_string().contains("directory"), "{err}");
        let err = AtomicFile::create(Path::new("/dev/null"), &[], true).unwrap_err();
        assert!(err.to_string().contains("character device"), "{err}");
    }

    #[test]
    fn long_names_get_a_short_temp_name() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("a".repeat(250));
        let tmp = temp_path_for(&out);
        assert!(tmp.file_name().unwrap().len() <= NAME_MAX);
        let mut f = AtomicFile::create(&out, &[], false).unwrap();
        f.write_all(b"x").unwrap();
        f.commit().unwrap();
        assert_eq!(std::fs::read(&out).unwrap(), b"x");
    }

    #[test]
    fn stale_temps_of_dead_processes_are_found() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("m.mbin");
        // PIDs above the kernel's maximum (4194304) never exist.
        let stale = dir.path().join(".m.mbin.tmp4999999");
        std::fs::write(&stale, b"").unwrap();
        let live = dir
            .path()
            .join(format!(".m.mbin.tmp{}", std::process::id()));
        std::fs::write(&live, b"").unwrap();
        assert_eq!(stale_temp_files(&out), vec![stale]);
        // The shortened form of a long name too.
        let long = dir.path().join("b".repeat(250));
        let own = temp_path_for(&long);
        let own = own.file_name().unwrap().to_string_lossy().into_owned();
        let dead = own.replace(&format!(".tmp{}", std::process::id()), ".tmp4999999");
        std::fs::write(dir.path().join(&dead), b"").unwrap();
        assert_eq!(stale_temp_files(&long), vec![dir.path().join(dead)]);
    }
}
