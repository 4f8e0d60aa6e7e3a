//! Inputs that are not regular files (FIFOs, devices, directories) are refused at
//! once by their kind, never waited on or read without end, and files loaded whole
//! are refused over their documented limits.

mod common;

use std::path::Path;
use std::time::Duration;

use common::*;
use mamba_convert::ConvertError;
use mamba_files::limits::{MAX_CONFIG_BYTES, MAX_INDEX_BYTES};
use mamba_files::FileError;

/// Far longer than refusing takes; a blocked open or an endless read runs past it.
const LIMIT: Duration = Duration::from_secs(60);

/// Runs the CLI and returns its one error line, checking status 1 and no output.
fn cli_error(args: &[&str], out: &Path) -> String {
    let o = run_convert(args, LIMIT);
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert_eq!(o.status.code(), Some(1), "{args:?}: {err}");
    assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
    assert!(!err.contains("os error 19"), "{args:?}: {err}");
    assert_nothing_written(out);
    err
}

#[test]
fn tokenizer_that_is_not_a_regular_file_is_refused_at_once() {
    let Some((tmp, dir, out)) = scratch("mamba-tiny-hf") else {
        return;
    };
    let fifo = tmp.path().join("tokenizer-fifo");
    let mut cases = vec![
        ("/dev/zero".into(), "is a character device"),
        ("/dev/null".into(), "is a character device"),
        (tmp.path().to_path_buf(), "is a directory"),
    ];
    if make_fifo(&fifo) {
        cases.push((fifo, "is a FIFO"));
    }
    for (tok, want) in cases {
        let tok = tok.to_str().unwrap();
        let dir_args = [dir.to_str().unwrap(), "--tokenizer", tok, "-q", "-o"];
        let err = cli_error(&[&dir_args[..], &[out.to_str().unwrap()]].concat(), &out);
        assert!(err.contains(want), "{tok}: {err}");
        let synth = ["--synthetic", "130m", "--tokenizer", tok, "-q", "-o"];
        let err = cli_error(&[&synth[..], &[out.to_str().unwrap()]].concat(), &out);
        assert!(err.contains(want), "synthetic, {tok}: {err}");
    }
}

#[test]
fn fifo_in_place_of_any_checkpoint_file_is_refused_not_waited_on() {
    let cases = [
        ("mamba-tiny-hf", "config.json"),
        ("mamba-tiny-hf", "model.safetensors"),
        ("mamba-tiny-hf", "tokenizer.json"),
        ("mamba-tiny-ssm", "pytorch_model.bin"),
        ("mamba-tiny-sharded-bf16", "model.safetensors.index.json"),
        (
            "mamba-tiny-sharded-bf16",
            "model-00002-of-00003.safetensors",
        ),
    ];
    for (fixture_name, file) in cases {
        let Some((_tmp, dir, out)) = scratch(fixture_name) else {
            return;
        };
        let path = dir.join(file);
        let _ = std::fs::remove_file(&path);
        if !make_fifo(&path) {
            return;
        }
        let err = cli_error(
            &[dir.to_str().unwrap(), "-q", "-o", out.to_str().unwrap()],
            &out,
        );
        assert!(
            err.contains(&format!("{}: is a FIFO", path.display())),
            "{fixture_name}/{file}: {err}"
        );
    }
}

#[test]
fn directories_and_devices_where_a_file_belongs_are_named() {
    let Some((tmp, dir, out)) = scratch("mamba-tiny-hf") else {
        return;
    };
    let args = |input: &Path| {
        vec![
            input.to_str().unwrap().to_string(),
            "-q".into(),
            "-o".into(),
            out.to_str().unwrap().to_string(),
        ]
    };
    let run = |input: &Path| {
        let a = args(input);
        cli_error(&a.iter().map(String::as_str).collect::<Vec<_>>(), &out)
    };
    // The input directory itself.
    let err = run(Path::new("/dev/null"));
    assert!(err.contains("is a character device"), "{err}");
    let file = tmp.path().join("a-file");
    std::fs::write(&file, b"x").unwrap();
    // A regular file is taken for a GGUF file, and refused as one.
    let err = run(&file);
    assert!(err.contains("not a GGUF file"), "{err}");
    let fifo = tmp.path().join("input-fifo");
    if make_fifo(&fifo) {
        let err = run(&fifo);
        assert!(err.contains("is a FIFO"), "{err}");
    }
    // Files inside it.
    for name in ["model.safetensors", "config.json"] {
        let path = dir.join(name);
        let saved = tmp.path().join(format!("saved-{name}"));
        std::fs::rename(&path, &saved).unwrap();
        std::fs::create_dir(&path).unwrap();
        let err = run(&dir);
        assert!(
            err.contains(&format!("{}: is a directory", path.display())),
            "{name}: {err}"
        );
        std::fs::remove_dir(&path).unwrap();
        std::fs::rename(&saved, &path).unwrap();
    }
}

/// A sparse file of `len` zero bytes (no disk space used).
fn sparse(path: &Path, len: u64) {
    std::fs::File::create(path).unwrap().set_len(len).unwrap();
}

#[test]
fn json_files_over_their_limit_are_refused_before_reading() {
    for (fixture, name, limit) in [
        ("mamba-tiny-hf", "config.json", MAX_CONFIG_BYTES),
        (
            "mamba-tiny-sharded-bf16",
            "model.safetensors.index.json",
            MAX_INDEX_BYTES,
        ),
    ] {
        let Some((_tmp, dir, out)) = scratch(fixture) else {
            return;
        };
        sparse(&dir.join(name), limit + 1);
        let err = fails(&dir, &out);
        assert!(
            matches!(
                &err,
                ConvertError::InputFile {
                    source: FileError::TooLarge { .. },
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(err.to_string().contains(name), "{err}");
    }
}
