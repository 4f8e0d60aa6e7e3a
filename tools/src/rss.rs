//! Resident memory of this process, from `/proc/self/status` (Linux).

/// A `kB` field of `/proc/self/status`, in bytes.
fn status_field(name: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(name))?;
    let kb: u64 = line[name.len()..]
        .trim_start_matches(':')
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kb * 1024)
}

/// Peak resident set size (`VmHWM`) in bytes; `None` off Linux.
pub fn peak_rss_bytes() -> Option<u64> {
    status_field("VmHWM")
}

/// Current resident set size (`VmRSS`) in bytes; `None` off Linux.
pub fn current_rss_bytes() -> Option<u64> {
    status_field("VmRSS")
}

/// Resets the peak RSS to the current RSS by writing `5` to
/// `/proc/self/clear_refs` (Linux ≥ 4.0). Returns false where that is not
/// possible; callers then measure peaks in child processes instead.
pub fn reset_peak_rss() -> bool {
    if peak_rss_bytes().is_none() {
        return false;
    }
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_and_resets_the_peak() {
        let Some(before) = peak_rss_bytes() else {
            return;
        };
        assert!(before >= current_rss_bytes().unwrap_or(0) / 2);
        let big = vec![1u8; 64 << 20];
        std::hint::black_box(&big);
        let peak = peak_rss_bytes().unwrap();
        drop(big);
        if reset_peak_rss() {
            assert!(
                peak_rss_bytes().unwrap() < peak,
                "the peak did not go down after reset"
            );
        }
    }
}
