//! Hostile input to `mamba-run`, `mamba-perplexity` and `mamba-bench` (issue 11):
//! outputs that name an input or a special file, FIFOs and devices as inputs,
//! files over the size limit, absurd thread counts and sizes, thread limits, and
//! comma lists with empty items. Each must be one clear `error:` line and a
//! non-zero exit, quickly, with nothing outside the test's temporary folder
//! touched.

mod common;
use common::*;

/// The format crate's builders of small `.mbin` files.
#[path = "../../format/tests/common/mod.rs"]
mod mbin;

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A copy of the tiny model in `dir`, for tests that must show it survives.
fn tiny_copy(dir: &Path) -> Option<PathBuf> {
    let model = tiny()?;
    let copy = dir.join("model.mbin");
    std::fs::copy(model, &copy).unwrap();
    Some(copy)
}

/// A FIFO at `path`, or `None` (printing why) where one cannot be made.
fn fifo(path: PathBuf) -> Option<PathBuf> {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: `c` is a valid NUL-terminated path.
    if unsafe { libc::mkfifo(c.as_ptr(), 0o600) } != 0 {
        eprintln!(
            "SKIPPED: cannot create a FIFO: {}",
            std::io::Error::last_os_error()
        );
        return None;
    }
    Some(path)
}

/// Runs `cmd` and expects one `error:` line containing `needle` within 60 s (a
/// hang is killed and reported, not waited for).
fn fails_in_time(mut cmd: Command, needle: &str) -> String {
    let what = format!("{cmd:?}");
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
    let t0 = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if t0.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what} hung (killed after 60 s)");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        matches!(out.status.code(), Some(c) if c != 0),
        "{what} should fail: {:?}\n{stderr}",
        out.status
    );
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(
        lines.len() == 1 && lines[0].starts_with("error: ") && lines[0].contains(needle),
        "{what}: expected one error line mentioning '{needle}', got:\n{stderr}"
    );
    lines[0].to_string()
}

fn cmd(exe: &str, args: &[&str]) -> Command {
    let mut c = Command::new(exe);
    c.args(args);
    c
}

// ─────────────────────── outputs never over inputs ───────────────────────

#[test]
fn perplexity_never_writes_over_an_input() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(model) = tiny_copy(tmp.path()) else {
        return;
    };
    let before = std::fs::read(&model).unwrap();
    let ids = tmp.path().join("ids.txt");
    std::fs::write(&ids, "1 2 3 4 5 6 7 8\n").unwrap();
    let link = tmp.path().join("link");
    std::os::unix::fs::symlink(&model, &link).unwrap();
    let (m, i) = (s(&model), s(&ids));
    for out in [&model, &ids, &link] {
        let line = fails(PPL, &[m, "--ids-file", i, "--nll-out", s(out)]);
        assert!(line.contains("input"), "{line}");
    }
    assert_eq!(std::fs::read(&model).unwrap(), before, "the model changed");
    assert_eq!(std::fs::read_to_string(&ids).unwrap(), "1 2 3 4 5 6 7 8\n");
    // Special files are not outputs either (a directory, a device).
    for out in [tmp.path(), Path::new("/dev/null")] {
        let line = fails(PPL, &[m, "--ids-file", i, "--nll-out", s(out)]);
        assert!(line.contains("not a regular file"), "{line}");
    }
    // A regular file is replaced, through a temporary file that does not stay.
    let nll = tmp.path().join("nll.txt");
    std::fs::write(&nll, "old").unwrap();
    ok(PPL, &[m, "--ids-file", i, "--nll-out", s(&nll), "-t", "1"]);
    assert_eq!(std::fs::read_to_string(&nll).unwrap().lines().count(), 7);
    let mut names: Vec<String> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["ids.txt", "link", "model.mbin", "nll.txt"]);
}

#[test]
fn bench_plot_is_checked_before_the_benchmark_and_never_the_model() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(model) = tiny_copy(tmp.path()) else {
        return;
    };
    let before = std::fs::read(&model).unwrap();
    let sweep = ["-b", "1,2", "-p", "4", "-n", "4", "-r", "1", "--plot"];
    for (out, needle) in [(model.as_path(), "input"), (tmp.path(), "directory")] {
        let mut args = vec![s(&model)];
        args.extend(sweep);
        args.push(s(out));
        let r = run(BENCH, &args);
        assert_ne!(r.code, Some(0), "{}", r.stderr);
        assert!(r.stderr.contains(needle), "{}", r.stderr);
        assert!(r.stdout.is_empty(), "ran before refusing:\n{}", r.stdout);
    }
    assert_eq!(std::fs::read(&model).unwrap(), before, "the model changed");
}

// ─────────────────────── inputs: FIFOs, devices, sizes ───────────────────────

#[test]
fn fifos_and_devices_as_inputs_are_refused_at_once() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(model) = tiny() else { return };
    let Some(f) = fifo(tmp.path().join("fifo")) else {
        return;
    };
    let m = s(model);
    fails_in_time(cmd(PPL, &[m, "--ids-file", s(&f)]), "FIFO");
    fails_in_time(
        cmd(PPL, &[m, "--ids-file", "/dev/zero"]),
        "character device",
    );
    fails_in_time(cmd(RUN, &[m, "-f", s(&f)]), "FIFO");
    fails_in_time(cmd(RUN, &[m, "-f", "/dev/zero"]), "character device");
    if let Some(model) = shakespeare() {
        let m = s(model);
        fails_in_time(cmd(PPL, &[m, "-f", s(&f)]), "FIFO");
        fails_in_time(cmd(PPL, &[m, "-f", "/dev/zero"]), "character device");
    }
}

#[test]
fn text_files_over_the_limit_are_refused_before_reading() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(model) = tiny() else { return };
    // Sparse: no disk space, and never read.
    let big = tmp.path().join("big.txt");
    let f = std::fs::File::create(&big).unwrap();
    f.set_len(mamba_files::limits::MAX_TEXT_BYTES + 1).unwrap();
    let m = s(model);
    fails_in_time(cmd(PPL, &[m, "--ids-file", s(&big)]), "limit");
    fails_in_time(cmd(RUN, &[m, "-f", s(&big)]), "limit");
    if let Some(model) = shakespeare() {
        fails_in_time(cmd(PPL, &[s(model), "-f", s(&big)]), "limit");
    }
    // At the limit, a text is refused when tokenizing it would not fit in memory.
    f.set_len(mamba_files::limits::MAX_TEXT_BYTES).unwrap();
    let needed =
        mamba_files::limits::MAX_TEXT_BYTES * mamba_tools::mem::TOKENIZE_BYTES_PER_TEXT_BYTE;
    if mamba_tools::mem::available_bytes().is_some_and(|a| a < needed) {
        fails_in_time(cmd(RUN, &[m, "-f", s(&big)]), "memory");
    } else {
        eprintln!("SKIPPED: this machine has the memory to tokenize 1 GiB of text");
    }
}

#[test]
fn bench_sizes_beyond_memory_are_errors_not_aborts() {
    let Some(model) = tiny() else { return };
    let m = s(model);
    for (args, needle) in [
        (vec![m, "-b", "1000000000000", "-r", "1"], "memory"),
        (vec![m, "-b", "1,1000000000000", "--json"], "memory"),
        (vec![m, "-p", "9223372036854775807", "-b", "4"], "too large"),
        (
            vec![m, "-p", "18446744073709551615", "-n", "1"],
            "too large",
        ),
    ] {
        let line = fails(BENCH, &args);
        assert!(line.contains(needle), "{args:?}: {line}");
    }
}

#[test]
fn run_reads_a_long_prompt_from_a_file() {
    let Some(model) = shakespeare() else { return };
    // More than the kernel accepts as one argument (128 KiB), over 1 MB in all, in
    // few tokens (long runs of '-' merge well) so that the test stays quick.
    let line = format!("{}\n", "-".repeat(1000));
    let text = format!("ROMEO:\n{}JULIET:", line.repeat(1100));
    assert!(text.len() > 1 << 20);
    let tmp = tempfile::tempdir().unwrap();
    let prompt = tmp.path().join("prompt.txt");
    std::fs::write(&prompt, &text).unwrap();
    let out = ok(RUN, &[s(model), "-f", s(&prompt), "-n", "1", "--temp", "0"]);
    assert!(out.stdout.starts_with(&text), "the prompt is echoed first");
    let tokens: usize = out
        .stderr
        .lines()
        .find_map(|l| l.strip_prefix("prompt:"))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no prompt line:\n{}", out.stderr));
    assert!(tokens > 1100, "{tokens} prompt tokens: not the whole file");
    // One source of prompt only.
    let line = fails(RUN, &[s(model), "-f", s(&prompt), "-p", "x"]);
    assert!(line.contains("cannot be used with"), "{line}");
}

// ─────────────────────── threads ───────────────────────

#[test]
fn thread_counts_are_bounded_and_documented() {
    let too_many =
        (4 * std::thread::available_parallelism().map_or(1, |n| n.get()) + 1).to_string();
    let base: [(&str, Vec<&str>); 3] = [
        (RUN, vec!["m.mbin", "--prompt-ids", "1"]),
        (PPL, vec!["m.mbin", "--ids-file", "ids.txt"]),
        (BENCH, vec!["m.mbin"]),
    ];
    for (exe, args) in base {
        let mut a = args.clone();
        a.extend(["-t", &too_many]);
        let r = run(exe, &a);
        assert_eq!(r.code, Some(2), "{exe} {a:?}: {}", r.stderr);
        assert!(
            r.stderr.contains("4 ×") && r.stderr.starts_with("error: "),
            "{exe}: {}",
            r.stderr
        );
        let help = ok(exe, &["--help"]).stdout;
        assert!(
            help.contains("0 = one per physical core") && help.contains("4 × the logical CPUs"),
            "{exe} --help:\n{help}"
        );
    }
}

/// Runs `exe args` with at most `nproc` processes for its user (`ulimit -u`); as
/// root (where the limit does not apply) as user `nobody`. `None` where that is
/// not permitted.
fn with_process_limit(exe: &str, args: &[&str], nproc: u64) -> Option<std::process::Output> {
    let mut c = cmd(exe, args);
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        c.pre_exec(move || {
            if libc::geteuid() == 0
                && (libc::setgroups(0, std::ptr::null()) != 0
                    || libc::setgid(65534) != 0
                    || libc::setuid(65534) != 0)
            {
                return Err(std::io::Error::last_os_error());
            }
            let lim = libc::rlimit {
                rlim_cur: nproc,
                rlim_max: nproc,
            };
            if libc::setrlimit(libc::RLIMIT_NPROC, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    match c.output() {
        Ok(out) => Some(out),
        Err(e) => {
            eprintln!("SKIPPED: cannot run under a process limit: {e}");
            None
        }
    }
}

#[test]
fn a_thread_that_cannot_start_is_an_error() {
    use std::os::unix::fs::PermissionsExt;
    // The model must be readable by `nobody` when running as root.
    let tmp = tempfile::tempdir().unwrap();
    let Some(copy) = tiny_copy(tmp.path()) else {
        return;
    };
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o644)).unwrap();
    let runs: [(&str, Vec<&str>); 2] = [
        (
            RUN,
            vec![s(&copy), "--prompt-ids", "1,2", "-n", "2", "-t", "2"],
        ),
        (
            BENCH,
            vec![s(&copy), "-p", "4", "-n", "2", "-r", "1", "-t", "2"],
        ),
    ];
    for (exe, args) in runs {
        // One process for the user: the tool itself, and no thread more.
        let Some(out) = with_process_limit(exe, &args, 1) else {
            return;
        };
        let stderr = String::from_utf8_lossy(&out.stderr);
        if stderr.contains("Permission denied") {
            eprintln!("SKIPPED: user nobody cannot read the test files: {stderr}");
            return;
        }
        assert_eq!(out.status.code(), Some(1), "{exe}: {stderr}");
        let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
        assert!(
            lines.len() == 1 && lines[0].starts_with("error: cannot start 2 threads: "),
            "{exe}: {stderr}"
        );
    }
}

// ─────────────────────── comma lists ───────────────────────

#[test]
fn comma_lists_refuse_empty_items_everywhere() {
    for bad in ["1,,2", "1,", ",1", "1, ,2", " "] {
        for (exe, flag) in [(RUN, "--prompt-ids"), (BENCH, "-b")] {
            let r = run(exe, &["m.mbin", flag, bad]);
            assert_eq!(r.code, Some(2), "{exe} {flag} '{bad}': {}", r.stderr);
            assert!(
                r.stderr.starts_with("error: ") && r.stderr.contains("is empty"),
                "{exe} {flag} '{bad}': {}",
                r.stderr
            );
        }
    }
}

// ─────────────────────── poisoned weights ───────────────────────

/// A NaN in the weights reaches the logits: `mamba-run` stops with an error, never
/// prints a token sampled from NaN nor stops as if at end of sequence with exit 0.
#[test]
fn run_stops_with_an_error_on_nan_weights() {
    use mamba_format::QuantType;
    let cfg = mbin::tiny_config();
    let specs = mbin::mamba_specs(&cfg, |_| QuantType::F32);
    let data: Vec<Vec<u8>> = specs
        .iter()
        .map(|sp| {
            let mut d = vec![0u8; sp.ty.bytes_for(sp.shape.iter().product()).unwrap() as usize];
            if sp.name == "layers.1.mixer.out_proj.weight" {
                d[68..72].copy_from_slice(&f32::NAN.to_le_bytes());
            }
            d
        })
        .collect();
    let pairs: Vec<(mamba_format::TensorSpec, &[u8])> = specs
        .iter()
        .cloned()
        .zip(data.iter().map(Vec::as_slice))
        .collect();
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("nan.mbin");
    let bytes = mamba_format::write_to_vec(&mbin::mamba_metadata(&cfg), &pairs).unwrap();
    std::fs::write(&model, bytes).unwrap();
    for temp in ["0", "0.8"] {
        // Notes about the model come first; the error is the last line.
        let r = run(
            RUN,
            &[s(&model), "--prompt-ids", "2,3", "-n", "4", "--temp", temp],
        );
        assert_eq!(r.code, Some(1), "--temp {temp}: {}", r.stderr);
        assert!(r.stdout.trim().is_empty(), "printed tokens: {}", r.stdout);
        let line = r.stderr.lines().last().unwrap_or_default();
        assert!(line.starts_with("error: "), "{}", r.stderr);
        assert!(line.contains("non-finite"), "--temp {temp}: {line}");
    }
}
