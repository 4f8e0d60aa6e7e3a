//! `--device` handling that needs no model: a GPU device on a build without GPU
//! support is one clean error line (exit 1), an unknown device a usage error (exit 2).

use std::process::Command;

const RUN: &str = env!("CARGO_BIN_EXE_mamba-run");
const PPL: &str = env!("CARGO_BIN_EXE_mamba-perplexity");
const BENCH: &str = env!("CARGO_BIN_EXE_mamba-bench");

/// Runs `exe args`; returns (exit code, the non-empty stderr lines).
fn fails(exe: &str, args: &[&str]) -> (i32, Vec<String>) {
    let out = Command::new(exe)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot start {exe}: {e}"));
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        !stderr.contains("panicked"),
        "{exe} {args:?} panicked:\n{stderr}"
    );
    assert!(out.stdout.is_empty(), "{exe} {args:?} wrote to stdout");
    let code = out.status.code().expect("exited normally");
    let lines: Vec<String> = stderr
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_string)
        .collect();
    assert_eq!(
        lines.len(),
        1,
        "{exe} {args:?}: expected one line:\n{stderr}"
    );
    assert!(
        lines[0].starts_with("error: "),
        "{exe} {args:?}: {}",
        lines[0]
    );
    (code, lines)
}

#[cfg(not(feature = "gpu"))]
#[test]
fn gpu_device_without_gpu_support_is_one_clean_error() {
    // The device is checked before the model is opened: no model file needed.
    for dev in ["hip:0", "cuda:0", "gpu:1"] {
        for (exe, args) in [
            (
                RUN,
                vec!["no-such.mbin", "--prompt-ids", "1,2", "--device", dev],
            ),
            (
                PPL,
                vec!["no-such.mbin", "--ids-file", "x.txt", "--device", dev],
            ),
            (BENCH, vec!["no-such.mbin", "--device", dev]),
        ] {
            let (code, lines) = fails(exe, &args);
            assert_eq!(code, 1, "{exe} {args:?}");
            assert!(lines[0].contains("--device gpu:"), "{}", lines[0]);
            assert!(lines[0].contains("no GPU support"), "{}", lines[0]);
        }
    }
}

#[test]
fn unknown_device_is_a_usage_error() {
    for dev in ["bogus", "tpu:0", "cuda", "hip:x"] {
        for exe in [RUN, PPL, BENCH] {
            let (code, lines) = fails(exe, &["m.mbin", "--device", dev]);
            assert_eq!(code, 2, "{exe} --device {dev}");
            assert!(lines[0].contains(dev), "{}", lines[0]);
            assert!(lines[0].contains("--help"), "{}", lines[0]);
        }
    }
}
