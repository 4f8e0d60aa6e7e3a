//! Helpers shared by the tools' end-to-end tests: models converted from the shared
//! fixtures, and running the binaries with their exit status and output.
#![allow(dead_code)] // each test binary uses its own subset

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use mamba_testkit::shared_dir;

/// Converts `src` (a checkpoint folder under shared/) to F32 once per test run.
pub fn converted(src: &str, name: &str) -> Option<PathBuf> {
    let input = shared_dir()?.join(src);
    if !input.join("config.json").is_file() {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("{} is missing; required under CI=true", input.display());
        }
        eprintln!("SKIPPED: {} is missing", input.display());
        return None;
    }
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("mamba-tools-tests");
    std::fs::create_dir_all(&dir).unwrap();
    let out = dir.join(name);
    let opts = mamba_convert::ConvertOptions {
        input: mamba_convert::Input::Dir(input.clone()),
        output: out.clone(),
        preset: "f32".parse().expect("f32 preset"),
        force: true,
        tokenizer: None,
        progress: false,
    };
    mamba_convert::convert(&opts).unwrap_or_else(|e| panic!("converting {}: {e}", input.display()));
    Some(out)
}

pub fn tiny() -> Option<&'static Path> {
    static M: OnceLock<Option<PathBuf>> = OnceLock::new();
    M.get_or_init(|| converted("fixtures/mamba-tiny-hf", "tiny-hf-f32.mbin"))
        .as_deref()
}

pub fn shakespeare() -> Option<&'static Path> {
    static M: OnceLock<Option<PathBuf>> = OnceLock::new();
    M.get_or_init(|| converted("models/mamba-shakespeare", "shakespeare-f32.mbin"))
        .as_deref()
}

/// Every tensor of a reference file under shared/, as (shape, values).
pub fn reference(rel: &str) -> HashMap<String, (Vec<usize>, Vec<f64>)> {
    let path = shared_dir().expect("shared dir").join(rel);
    mamba_testkit::read_reference(&path)
        .into_iter()
        .map(|(name, t)| (name, (t.shape, t.data)))
        .collect()
}

pub fn ids(v: &[f64]) -> Vec<u32> {
    v.iter().map(|&x| x as u32).collect()
}

pub struct Run {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

pub fn run(exe: &str, args: &[&str]) -> Run {
    let out = Command::new(exe)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot start {exe}: {e}"));
    Run {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Runs and expects success.
pub fn ok(exe: &str, args: &[&str]) -> Run {
    let r = run(exe, args);
    assert_eq!(r.code, Some(0), "{exe} {args:?} failed:\n{}", r.stderr);
    r
}

/// Runs and expects a clean failure: non-zero exit, exactly one `error: ...` line
/// on stderr, no panic. Returns that line.
pub fn fails(exe: &str, args: &[&str]) -> String {
    let r = run(exe, args);
    assert!(
        matches!(r.code, Some(c) if c != 0),
        "{exe} {args:?} should fail; stdout:\n{}\nstderr:\n{}",
        r.stdout,
        r.stderr
    );
    assert!(
        !r.stderr.contains("panicked"),
        "{exe} {args:?} panicked:\n{}",
        r.stderr
    );
    let lines: Vec<&str> = r.stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(
        lines.len(),
        1,
        "{exe} {args:?}: expected one error line, got:\n{}",
        r.stderr
    );
    assert!(
        lines[0].starts_with("error: "),
        "{exe} {args:?}: {}",
        lines[0]
    );
    lines[0].to_string()
}

pub const RUN: &str = env!("CARGO_BIN_EXE_mamba-run");
pub const PPL: &str = env!("CARGO_BIN_EXE_mamba-perplexity");
pub const BENCH: &str = env!("CARGO_BIN_EXE_mamba-bench");

pub fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}
