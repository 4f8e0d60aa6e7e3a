//! Where the output may go: `--force` replaces only a regular file that is none of the
//! conversion's inputs, the refusal comes before the checkpoint is read, long output
//! names work, and temporary files of killed runs are reported.

mod common;

use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::*;
use mamba_convert::{convert, ConvertError, Input, Preset};
use mamba_files::FileError;
use mamba_format::QuantType;

const Q8: Preset = Preset::Uniform(QuantType::Q8_0);

/// How long a conversion of a tiny fixture may take before it counts as hung.
const LIMIT: Duration = Duration::from_secs(120);

#[test]
fn force_never_replaces_a_device_fifo_directory_or_socket() {
    let Some((tmp, dir, _)) = scratch("mamba-tiny-hf") else {
        return;
    };
    // No weights: the output must be refused before the checkpoint is looked at.
    let broken = tmp.path().join("no-weights");
    copy_dir(&dir, &broken);
    std::fs::remove_file(broken.join("model.safetensors")).unwrap();

    let mut targets: Vec<(PathBuf, &str)> = Vec::new();
    let devnull = tmp.path().join("devnull");
    if make_char_device(&devnull, 1, 3) {
        targets.push((devnull, "character device"));
    }
    let fifo = tmp.path().join("fifo");
    if make_fifo(&fifo) {
        targets.push((fifo, "FIFO"));
    }
    let sub = tmp.path().join("subdir");
    std::fs::create_dir(&sub).unwrap();
    targets.push((sub, "directory"));
    let sock = tmp.path().join("sock");
    let _listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    targets.push((sock, "socket"));

    for (target, kind) in &targets {
        let before = std::fs::symlink_metadata(target).unwrap().file_type();
        for input in [&dir, &broken] {
            let o = run_convert(
                &[
                    input.to_str().unwrap(),
                    "--force",
                    "-q",
                    "-o",
                    target.to_str().unwrap(),
                ],
                LIMIT,
            );
            let err = String::from_utf8_lossy(&o.stderr);
            assert_eq!(o.status.code(), Some(1), "{}: {err}", target.display());
            assert!(
                err.starts_with("error: output ") && err.contains(&format!("is a {kind}")),
                "{}: {err}",
                target.display()
            );
            assert_eq!(err.lines().count(), 1, "{err}");
        }
        let after = std::fs::symlink_metadata(target).unwrap().file_type();
        assert_eq!(before, after, "{} changed kind", target.display());
        if *kind == "character device" {
            assert!(after.is_char_device());
        }
    }
    // Nothing was created beside them (no temporary file, no output).
    let mut names: Vec<String> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    let mut expected = vec!["mamba-tiny-hf", "no-weights", "sock", "subdir"];
    expected.extend(
        targets
            .iter()
            .filter_map(|(p, _)| p.file_name()?.to_str())
            .filter(|n| ["devnull", "fifo"].contains(n)),
    );
    expected.sort();
    assert_eq!(names, expected);
}

/// Every file a conversion of `dir` reads, by its own name.
fn input_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let n = p.file_name().unwrap().to_string_lossy();
            n == "config.json"
                || n == "pytorch_model.bin"
                || (n.starts_with("model") && n.contains(".safetensors"))
        })
        .collect();
    v.sort();
    v
}

/// Converts `dir` with `--force` into `out` and expects the "is an input" refusal.
fn refused_as_input(dir: &Path, out: &Path, tokenizer: Option<&Path>) {
    let before = std::fs::read(out).unwrap();
    let mut o = opts(Input::Dir(dir.to_path_buf()), out, Q8);
    o.force = true;
    o.tokenizer = tokenizer.map(Path::to_path_buf);
    let err = convert(&o).expect_err(&format!("wrote over input {}", out.display()));
    assert!(
        matches!(
            &err,
            ConvertError::Output {
                source: FileError::OutputIsInput { .. }
            }
        ),
        "{}: {err:?}",
        out.display()
    );
    assert!(err.to_string().contains("is an input"), "{err}");
    assert_eq!(
        std::fs::read(out).unwrap(),
        before,
        "{} changed",
        out.display()
    );
}

#[test]
fn force_never_replaces_an_input_named_linked_or_symlinked() {
    for name in ["mamba-tiny-hf", "mamba-tiny-ssm", "mamba-tiny-sharded-bf16"] {
        let Some((tmp, dir, _)) = scratch(name) else {
            return;
        };
        let inputs = input_files(&dir);
        assert!(inputs.len() >= 2, "{name}: {inputs:?}");
        for (i, input) in inputs.iter().enumerate() {
            refused_as_input(&dir, input, None);
            let hard = tmp.path().join(format!("hard-{i}"));
            std::fs::hard_link(input, &hard).unwrap();
            refused_as_input(&dir, &hard, None);
            let soft = tmp.path().join(format!("soft-{i}"));
            std::os::unix::fs::symlink(input, &soft).unwrap();
            refused_as_input(&dir, &soft, None);
        }
    }
    // The tokenizer is an input too.
    let Some((tmp, dir, _)) = scratch("mamba-tiny-hf") else {
        return;
    };
    let tok = tmp.path().join("tokenizer.json");
    std::fs::write(&tok, r#"{"model": {"vocab": {"a": 0}}}"#).unwrap();
    refused_as_input(&dir, &tok, Some(&tok));
}

#[test]
fn a_250_character_output_name_works() {
    let Some(dir) = fixture("mamba-tiny-hf") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let name = format!("{}.mbin", "m".repeat(245));
    assert_eq!(name.len(), 250);
    let out = tmp.path().join(&name);
    let o = run_convert(
        &[dir.to_str().unwrap(), "-q", "-o", out.to_str().unwrap()],
        LIMIT,
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    read_valid(&out);
    let names: Vec<_> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, vec![std::ffi::OsString::from(name)]);
}

#[test]
fn temporary_files_of_killed_runs_are_reported_not_removed() {
    let Some(dir) = fixture("mamba-tiny-hf") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("m.mbin");
    // PIDs above the kernel's maximum (2^22) never run.
    let stale = tmp.path().join(".m.mbin.tmp4999999");
    std::fs::write(&stale, vec![0u8; 3000]).unwrap();
    let summary = convert_dir(&dir, &out, Q8).unwrap();
    let shown = stale.display().to_string();
    assert!(
        summary.warnings.iter().any(|w| w.contains(&shown)),
        "{:?}",
        summary.warnings
    );
    assert!(stale.exists(), "another run's file was removed");
    read_valid(&out);
}
