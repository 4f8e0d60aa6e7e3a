//! A conversion killed by SIGINT, SIGTERM or SIGHUP dies of the signal and leaves no
//! temporary file behind.

mod common;

use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::*;

/// The temporary files in `dir`.
fn temp_files(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".tmp"))
        .collect()
}

#[test]
fn a_signal_leaves_no_temporary_file() {
    for (sig, name) in [
        (libc::SIGINT, "SIGINT"),
        (libc::SIGTERM, "SIGTERM"),
        (libc::SIGHUP, "SIGHUP"),
    ] {
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("x.mbin");
        // 370m at q4_k takes far longer to write than this test waits, so the signal
        // always arrives mid-write.
        let mut child = convert_command(&[
            "--synthetic",
            "370m",
            "--type",
            "q4_k",
            "-q",
            "-o",
            out.to_str().unwrap(),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting mamba-convert");
        let t = Instant::now();
        while temp_files(tmp.path()).is_empty() {
            if let Some(status) = child.try_wait().unwrap() {
                panic!("{name}: mamba-convert ended ({status}) before writing");
            }
            if t.elapsed() > Duration::from_secs(120) {
                let _ = child.kill();
                let _ = child.wait();
                panic!("{name}: no temporary file after 120 s");
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        // Well into the write, past the file's creation.
        std::thread::sleep(Duration::from_millis(300));
        let pid = libc::pid_t::try_from(child.id()).unwrap();
        // SAFETY: `pid` is our own child, not yet waited for, so it cannot be reused.
        assert_eq!(unsafe { libc::kill(pid, sig) }, 0, "{name}: kill failed");
        let o = child.wait_with_output().unwrap();
        assert_eq!(
            o.status.signal(),
            Some(sig),
            "{name}: {} {}",
            o.status,
            String::from_utf8_lossy(&o.stderr)
        );
        assert_eq!(temp_files(tmp.path()), Vec::<String>::new(), "{name}");
        assert!(!out.exists(), "{name}: a partial output appeared");
    }
}
