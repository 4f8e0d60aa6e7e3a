//! Sizes from the command line checked before anything is allocated: every buffer
//! whose size a flag or an input file decides is computed here with checked
//! arithmetic and compared with the memory the system can give, so that
//! `-b 1000000000000` or `-p 9223372036854775807` is one error line instead of an
//! abort on a failed allocation or an arithmetic overflow.

use anyhow::{bail, Context, Result};
use std::path::Path;

/// Bytes of memory reading, tokenizing and running a text may take per byte of
/// text (the text, the tokenizer's normalized copy with per-byte alignments, its
/// pre-tokenized pieces and per-token arrays, the ids). A rough upper bound: peak
/// RSS of `mamba-run -f` with the GPT-NeoX tokenizer grew by about 55 and 130
/// bytes per byte for 0.2 and 1.1 MB of English text; only the order of magnitude
/// matters.
pub const TOKENIZE_BYTES_PER_TEXT_BYTE: u64 = 128;

/// `a × b`, or an error naming `what` when it does not fit in 64 bits.
pub fn mul(a: u64, b: u64, what: &str) -> Result<u64> {
    a.checked_mul(b)
        .with_context(|| format!("{what}: {a} × {b} is too large to represent"))
}

/// The sum of `parts`, or an error naming `what` on overflow.
pub fn sum(parts: &[u64], what: &str) -> Result<u64> {
    parts
        .iter()
        .try_fold(0u64, |acc, &p| acc.checked_add(p))
        .with_context(|| format!("{what}: the total size is too large to represent"))
}

/// Memory this process can still get: `MemAvailable` from `/proc/meminfo`, lowered
/// to what the cgroup's `memory.max` leaves when that is smaller. `None` where
/// neither can be read (not Linux, or no `/proc`).
pub fn available_bytes() -> Option<u64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok();
    let avail = meminfo.as_deref().and_then(|m| {
        m.lines()
            .find_map(|l| l.strip_prefix("MemAvailable:"))
            .and_then(|v| v.trim().strip_suffix("kB"))
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(|kb| kb.saturating_mul(1024))
    });
    let cgroup = cgroup_left(Path::new("/sys/fs/cgroup"));
    match (avail, cgroup) {
        (Some(a), Some(c)) => Some(a.min(c)),
        (a, c) => a.or(c),
    }
}

/// `memory.max - memory.current` of the cgroup v2 mounted at `root` (the process's
/// own when it runs in a container), or `None` when unlimited or unreadable.
fn cgroup_left(root: &Path) -> Option<u64> {
    let read = |name: &str| std::fs::read_to_string(root.join(name)).ok();
    let max: u64 = read("memory.max")?.trim().parse().ok()?;
    let current: u64 = read("memory.current")?.trim().parse().ok()?;
    Some(max.saturating_sub(current))
}

/// Refuses `needed` bytes for `what` when the system has less memory available
/// (as [`available_bytes`] measures it); passes when that cannot be measured.
pub fn ensure_fits(needed: u64, what: &str) -> Result<()> {
    ensure_fits_in(needed, available_bytes(), what)
}

/// [`ensure_fits`] against a given amount (testable).
pub fn ensure_fits_in(needed: u64, available: Option<u64>, what: &str) -> Result<()> {
    if let Some(avail) = available {
        if needed > avail {
            bail!(
                "{what} needs about {} of memory, but only {} is available",
                mamba_files::human_bytes(needed),
                mamba_files::human_bytes(avail)
            );
        }
    }
    Ok(())
}

/// The size of the file at `path` (following symlinks), for estimates made before
/// reading it; 0 when it cannot be examined (the read that follows reports why).
pub fn file_size(path: &Path) -> u64 {
    std::fs::metadata(path).map_or(0, |m| if m.is_file() { m.len() } else { 0 })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overflow_is_an_error() {
        assert_eq!(mul(3, 4, "x").unwrap(), 12);
        assert!(mul(u64::MAX, 2, "batch")
            .unwrap_err()
            .to_string()
            .contains("batch"));
        assert_eq!(sum(&[1, 2, 3], "x").unwrap(), 6);
        assert!(sum(&[u64::MAX, 1], "x").is_err());
    }

    #[test]
    fn too_much_is_refused_with_both_sizes() {
        ensure_fits_in(10, Some(10), "x").unwrap();
        ensure_fits_in(u64::MAX, None, "x").unwrap();
        let e = ensure_fits_in(3 << 30, Some(1 << 30), "the batch").unwrap_err();
        let e = e.to_string();
        assert!(
            e.contains("the batch") && e.contains("3.00 GiB") && e.contains("1.00 GiB"),
            "{e}"
        );
    }

    #[test]
    fn memory_is_measured_here() {
        // Linux CI and development machines have /proc/meminfo.
        assert!(available_bytes().is_some_and(|b| b > 0));
    }
}
