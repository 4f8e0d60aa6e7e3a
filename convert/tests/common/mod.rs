//! Helpers shared by the integration tests: finding the shared fixtures, converting
//! into a temporary directory, checking a written file, and editing checkpoints.
#![allow(dead_code)] // each test binary uses a different subset

use std::collections::HashMap;
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use mamba_convert::{convert, ConvertError, ConvertOptions, Input, Preset, Summary};
use mamba_format::{MbinFile, ModelConfig, QuantType};
use safetensors::tensor::TensorView;
use safetensors::{Dtype, SafeTensors};

pub use mamba_testkit::shared_dir as shared;

/// `shared()/fixtures/<name>` or `shared()/models/<name>`.
pub fn fixture(name: &str) -> Option<PathBuf> {
    let s = shared()?;
    let p = s.join("fixtures").join(name);
    Some(if p.is_dir() {
        p
    } else {
        s.join("models").join(name)
    })
}

/// All four checkpoint directories used by the tests.
pub const ALL_INPUTS: [&str; 4] = [
    "mamba-tiny-hf",
    "mamba-tiny-ssm",
    "mamba-tiny-sharded-bf16",
    "mamba-shakespeare",
];

/// Options for a plain, quiet conversion.
pub fn opts(input: Input, output: &Path, preset: Preset) -> ConvertOptions {
    ConvertOptions {
        input,
        output: output.to_path_buf(),
        preset,
        force: false,
        tokenizer: None,
        progress: false,
    }
}

/// Converts `dir` at `preset` into `out`.
pub fn convert_dir(dir: &Path, out: &Path, preset: Preset) -> Result<Summary, ConvertError> {
    convert(&opts(Input::Dir(dir.to_path_buf()), out, preset))
}

/// Converts the model folder `dir` at q8_0 into `out`, asserts that no tokenizer
/// warning was given and that the file embeds `dir/tokenizer.json` verbatim, and
/// returns the file's bytes.
pub fn convert_embedding_tokenizer(dir: &Path, out: &Path) -> Vec<u8> {
    let summary = convert_dir(dir, out, Preset::Uniform(QuantType::Q8_0)).unwrap();
    assert!(
        !summary.warnings.iter().any(|w| w.contains("tokenizer")),
        "{:?}",
        summary.warnings
    );
    let bytes = read_valid(out);
    let file = MbinFile::parse(&bytes).unwrap();
    let tok = std::fs::read_to_string(dir.join("tokenizer.json")).unwrap();
    assert_eq!(
        file.metadata
            .require_str("tokenizer.huggingface.json")
            .unwrap(),
        tok
    );
    bytes
}

/// Parses a written file and checks it: parse OK, every checksum and padding OK, and
/// the architecture's tensors and shapes OK. Returns the bytes.
pub fn read_valid(path: &Path) -> Vec<u8> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    {
        let file = MbinFile::parse(&bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let problems = file.verify();
        assert!(problems.is_empty(), "{}: {problems:?}", path.display());
        ModelConfig::from_file(&file).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    }
    bytes
}

/// Asserts that a failed conversion left neither `out` nor a temporary file beside it.
pub fn assert_nothing_written(out: &Path) {
    assert!(
        !out.exists(),
        "{} exists after a failed conversion",
        out.display()
    );
    if let Some(dir) = out.parent().filter(|d| d.is_dir()) {
        let leftovers: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.contains(".tmp"))
            .collect();
        assert!(
            leftovers.is_empty(),
            "temporary files left in {}: {leftovers:?}",
            dir.display()
        );
    }
}

/// The f32 values of a safetensors tensor (f32, f16 or bf16), widened exactly.
pub fn widen(view: &TensorView<'_>) -> Vec<f32> {
    let d = view.data();
    match view.dtype() {
        Dtype::F32 => d
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect(),
        Dtype::BF16 => d
            .chunks_exact(2)
            .map(|b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32())
            .collect(),
        Dtype::F16 => d
            .chunks_exact(2)
            .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32())
            .collect(),
        other => panic!("unexpected dtype {other:?}"),
    }
}

/// Every tensor of a HF checkpoint directory (single file or shards): name →
/// (dtype, shape, raw bytes).
pub fn load_hf_tensors(dir: &Path) -> HashMap<String, (Dtype, Vec<usize>, Vec<u8>)> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let n = p.file_name().unwrap().to_string_lossy();
            n.starts_with("model") && n.ends_with(".safetensors")
        })
        .collect();
    files.sort();
    let mut out = HashMap::new();
    for f in files {
        let bytes = std::fs::read(&f).unwrap();
        let st = SafeTensors::deserialize(&bytes).unwrap();
        for (name, view) in st.tensors() {
            out.insert(
                name,
                (view.dtype(), view.shape().to_vec(), view.data().to_vec()),
            );
        }
    }
    out
}

/// Copies `src` (non-recursively) into `dst`.
pub fn copy_dir(src: &Path, dst: &Path) {
    std::fs::create_dir_all(dst).unwrap();
    for e in std::fs::read_dir(src).unwrap() {
        let p = e.unwrap().path();
        if p.is_file() {
            let to = dst.join(p.file_name().unwrap());
            std::fs::copy(&p, &to).unwrap();
            // fixtures are read-only; copies must be editable
            let mut perm = std::fs::metadata(&to).unwrap().permissions();
            #[allow(clippy::permissions_set_readonly_false)]
            perm.set_readonly(false);
            std::fs::set_permissions(&to, perm).unwrap();
        }
    }
}

/// A tensor to write back: dtype, shape, bytes.
pub type Owned = (Dtype, Vec<usize>, Vec<u8>);

/// Rewrites `<dir>/model.safetensors`: `edit(name, tensor)` returns the replacement,
/// or `None` to drop the tensor.
pub fn rewrite_safetensors(dir: &Path, edit: impl FnMut(&str, Owned) -> Option<Owned>) {
    rewrite_safetensors_adding(dir, edit, Vec::new());
}

/// [`rewrite_safetensors`], then appends `extra` tensors.
pub fn rewrite_safetensors_adding(
    dir: &Path,
    mut edit: impl FnMut(&str, Owned) -> Option<Owned>,
    extra: Vec<(String, Owned)>,
) {
    let path = dir.join("model.safetensors");
    let mut tensors: Vec<(String, Owned)> = {
        let bytes = std::fs::read(&path).unwrap();
        let st = SafeTensors::deserialize(&bytes).unwrap();
        st.tensors()
            .into_iter()
            .filter_map(|(name, view)| {
                let owned = (view.dtype(), view.shape().to_vec(), view.data().to_vec());
                edit(&name, owned).map(|t| (name, t))
            })
            .collect()
    };
    tensors.extend(extra);
    let views: Vec<(String, TensorView<'_>)> = tensors
        .iter()
        .map(|(n, (dt, shape, data))| {
            (
                n.clone(),
                TensorView::new(*dt, shape.clone(), data).unwrap(),
            )
        })
        .collect();
    safetensors::serialize_to_file(views, &None, &path).unwrap();
}

/// Edits `<dir>/config.json` as a JSON object.
pub fn edit_config(dir: &Path, edit: impl FnOnce(&mut serde_json::Map<String, serde_json::Value>)) {
    let path = dir.join("config.json");
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    edit(v.as_object_mut().unwrap());
    std::fs::write(&path, serde_json::to_string_pretty(&v).unwrap()).unwrap();
}

/// The checkpoint name of a standard tensor in a HF file, and whether it is `A`
/// (stored as `A_log`).
pub fn hf_name(std_name: &str) -> (String, bool) {
    if std_name == "embeddings.weight" {
        ("backbone.embeddings.weight".into(), false)
    } else if std_name == "lm_head.weight" {
        (std_name.into(), false)
    } else if let Some(layer) = std_name.strip_suffix(".mixer.A") {
        (format!("backbone.{layer}.mixer.A_log"), true)
    } else {
        (format!("backbone.{std_name}"), false)
    }
}

/// A file's tensor bytes as f32 (for F32 tensors).
pub fn f32_values(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

/// A writable copy of a fixture in a fresh temporary directory, plus the output path
/// (in the same directory, so leftover temporary files would be seen).
pub fn scratch(name: &str) -> Option<(tempfile::TempDir, PathBuf, PathBuf)> {
    let src = fixture(name)?;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join(name);
    copy_dir(&src, &dir);
    let out = tmp.path().join("out.mbin");
    Some((tmp, dir, out))
}

/// Converts `dir` at q8_0 and returns the error, after checking nothing was written.
pub fn fails(dir: &Path, out: &Path) -> ConvertError {
    let err = match convert_dir(dir, out, Preset::Uniform(QuantType::Q8_0)) {
        Ok(_) => panic!("conversion of {} unexpectedly succeeded", dir.display()),
        Err(e) => e,
    };
    eprintln!("expected error: {err}");
    assert_nothing_written(out);
    err
}

/// A `mamba-convert` process with SIGINT, SIGTERM and SIGHUP at their default
/// actions whatever the test harness inherited (a shell starting it in the
/// background ignores SIGINT, and the child would inherit that).
pub fn convert_command(args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mamba-convert"));
    cmd.args(args).stdin(Stdio::null());
    // SAFETY: `signal` is async-signal-safe, as required between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
                libc::signal(sig, libc::SIG_DFL);
            }
            Ok(())
        });
    }
    cmd
}

/// Runs `mamba-convert` with `args`, killing it and failing the test if it has not
/// finished within `limit` (an input that blocks must never hang the suite).
pub fn run_convert(args: &[&str], limit: Duration) -> Output {
    let mut child = convert_command(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting mamba-convert");
    let t = Instant::now();
    while child
        .try_wait()
        .expect("waiting for mamba-convert")
        .is_none()
    {
        if t.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("mamba-convert {args:?} still running after {limit:?}: it hangs");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child
        .wait_with_output()
        .expect("collecting mamba-convert's output")
}

/// `mkfifo(path)`; false (with a printed reason) where this process may not.
pub fn make_fifo(path: &Path) -> bool {
    let c = CString::new(path.as_os_str().as_bytes()).unwrap();
    // SAFETY: `c` is a valid NUL-terminated path.
    if unsafe { libc::mkfifo(c.as_ptr(), 0o600) } == 0 {
        return true;
    }
    eprintln!(
        "SKIPPED (FIFO part): cannot create a FIFO at {}: {}",
        path.display(),
        std::io::Error::last_os_error()
    );
    false
}

/// A character device `major:minor` at `path` (`mknod -m 666 PATH c MAJOR MINOR`);
/// false (with a printed reason) where this process may not (it needs root).
pub fn make_char_device(path: &Path, major: u32, minor: u32) -> bool {
    let c = CString::new(path.as_os_str().as_bytes()).unwrap();
    // SAFETY: `c` is a valid NUL-terminated path; mknod only creates a node there.
    let rc = unsafe {
        libc::mknod(
            c.as_ptr(),
            libc::S_IFCHR | 0o666,
            libc::makedev(major, minor),
        )
    };
    if rc == 0 {
        return true;
    }
    eprintln!(
        "SKIPPED (device part): cannot create a character device at {} (needs root): {}",
        path.display(),
        std::io::Error::last_os_error()
    );
    false
}
