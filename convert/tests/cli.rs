//! The `mamba-convert` binary: summary on success, one `error:` line and status 1 on
//! failure, usage and a non-zero status on bad arguments.

mod common;

use std::process::{Command, Output};

use common::*;

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mamba-convert"))
        .args(args)
        .output()
        .expect("running mamba-convert")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn success_prints_the_summary() {
    let Some(dir) = fixture("mamba-tiny-hf") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("m.mbin");
    let o = run(&[
        dir.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--type",
        "q4_k_m",
    ]);
    let err = stderr(&o);
    assert!(o.status.success(), "{err}");
    for needle in [
        "class",
        "embeddings",
        "in_proj",
        "x_proj",
        "dt_proj",
        "out_proj",
        "f32 tensors",
        "bits/weight",
        "peak RSS",
        "q4_k→f16",
    ] {
        assert!(err.contains(needle), "missing {needle:?} in:\n{err}");
    }
    assert!(err.contains("warning: no tokenizer"), "{err}");
    read_valid(&out);

    // --quiet: no table; exists without --force: one error line, status 1, file untouched.
    let before = std::fs::read(&out).unwrap();
    let o = run(&[
        dir.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--quiet",
    ]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("error: ") && err.contains("already exists"),
        "{err}"
    );
    assert_eq!(std::fs::read(&out).unwrap(), before);

    let o = run(&[
        dir.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--quiet",
        "--force",
        "-t",
        "q8_0",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!stderr(&o).contains("bits/weight"));
}

#[test]
fn synthetic_from_the_command_line() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("s.mbin");
    let o = run(&[
        "--synthetic",
        "130m",
        "--seed",
        "3",
        "-o",
        out.to_str().unwrap(),
        "--type",
        "q8_0",
        "--quiet",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    read_valid(&out);
}

#[test]
fn conversion_error_is_one_line_and_status_1() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("m.mbin");
    let missing = tmp.path().join("nothing-here");
    std::fs::create_dir(&missing).unwrap();
    let o = run(&[missing.to_str().unwrap(), "-o", out.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("error: ") && err.contains("config.json"),
        "{err}"
    );
    assert_nothing_written(&out);
}

#[test]
fn unknown_flag_prints_usage() {
    let o = run(&["--frobnicate", "-o", "x.mbin"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("Usage"), "{}", stderr(&o));
}

#[test]
fn bad_type_is_rejected_with_the_accepted_names() {
    let o = run(&["some-dir", "-o", "x.mbin", "--type", "q3_k_s"]);
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(
        err.contains("q3_k_s") && err.contains("q4_k_m") && err.contains("bf16"),
        "{err}"
    );
    assert!(!std::path::Path::new("x.mbin").exists());
}

#[test]
fn help_lists_every_type() {
    let o = run(&["--help"]);
    assert!(o.status.success());
    let help = String::from_utf8_lossy(&o.stdout);
    for p in mamba_convert::Preset::all() {
        assert!(help.contains(p.name()), "--help lacks {p}");
    }
    for flag in [
        "--output",
        "--type",
        "--force",
        "--tokenizer",
        "--synthetic",
        "--seed",
        "--quiet",
        "--dry-run",
    ] {
        assert!(help.contains(flag), "--help lacks {flag}");
    }
    for size in mamba_convert::SyntheticSize::ALL {
        assert!(
            help.contains(size.name()),
            "--help lacks --synthetic {size}"
        );
    }
}

#[test]
fn input_and_synthetic_are_exclusive_and_one_is_required() {
    let o = run(&["-o", "x.mbin"]);
    assert!(!o.status.success());
    let o = run(&["some-dir", "--synthetic", "130m", "-o", "x.mbin"]);
    assert!(!o.status.success());
}
