//! Builds the HIP kernel library (`hip/*.hip`) into `libkq.a` when the `gpu` feature
//! is on; a no-op otherwise, so the workspace builds and tests without any GPU
//! toolchain. See `GPU.md`.
//!
//! Platform (`HIP_PLATFORM`, HIP's own variable):
//! - `amd`: `hipcc --offload-arch=…` for each arch in `KQ_AMD_ARCHS` (default
//!   `gfx90a`); links `amdhip64` (`$ROCM_PATH/lib` searched when set).
//! - `nvidia`: `nvcc -x cu` with the `hip/compat_nv` shim first on the include path,
//!   `-gencode` for each arch in `KQ_CUDA_ARCHS` (default `90`) plus PTX of the last;
//!   links cudart statically (the binary then needs only the driver's `libcuda.so.1`).
//!   nvcc is `$CUDA_PATH/bin/nvcc`, else `nvcc` on `PATH`.
//! - `none`: the CPU-only crate (GPU calls return `GpuError::NotCompiled`).
//! - unset: `amd` if `hipcc` is on `PATH`, else `nvidia` if nvcc is found, else `none`.
//!
//! The crate sees `cfg(kq_gpu)` and `cfg(kq_gpu_platform = "amd" | "nvidia")`.
//! Objects are rebuilt only when their source, a header or the flags change.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::SystemTime;

enum Platform {
    Amd { hipcc: PathBuf },
    Nvidia { nvcc: PathBuf, cuda: PathBuf },
}

fn main() {
    println!("cargo:rustc-check-cfg=cfg(kq_gpu)");
    println!("cargo:rustc-check-cfg=cfg(kq_gpu_platform, values(\"amd\", \"nvidia\"))");
    println!("cargo:rerun-if-changed=build.rs");
    if env::var_os("CARGO_FEATURE_GPU").is_none() {
        return;
    }
    for v in [
        "HIP_PLATFORM",
        "KQ_AMD_ARCHS",
        "KQ_CUDA_ARCHS",
        "CUDA_PATH",
        "ROCM_PATH",
        "PATH",
    ] {
        println!("cargo:rerun-if-env-changed={v}");
    }
    let hip_dir = Path::new(&env::var("CARGO_MANIFEST_DIR").unwrap()).join("hip");
    let mut headers = Vec::new();
    let mut sources = Vec::new();
    walk(&hip_dir, &mut |p| {
        println!("cargo:rerun-if-changed={}", p.display());
        match p.extension().and_then(|e| e.to_str()) {
            Some("hip") => sources.push(p.to_path_buf()),
            Some("h") => headers.push(p.to_path_buf()),
            _ => {}
        }
    });
    sources.sort();

    let Some(platform) = select_platform() else {
        return;
    };
    let out = PathBuf::from(env::var("OUT_DIR").unwrap());
    let (compiler, flags, name) = match &platform {
        Platform::Amd { hipcc } => {
            let mut f: Vec<String> = ["-std=c++17", "-O3", "-fPIC", "-Wall"]
                .map(String::from)
                .to_vec();
            for arch in list_var("KQ_AMD_ARCHS", "gfx90a") {
                f.push(format!("--offload-arch={arch}"));
            }
            f.push(format!("-I{}", hip_dir.display()));
            (hipcc.clone(), f, "amd")
        }
        Platform::Nvidia { nvcc, .. } => {
            let mut f: Vec<String> = ["-x", "cu", "-std=c++17", "-O3", "-Xcompiler", "-fPIC"]
                .map(String::from)
                .to_vec();
            f.push(format!("-I{}", hip_dir.join("compat_nv").display()));
            f.push(format!("-I{}", hip_dir.display()));
            let archs = list_var("KQ_CUDA_ARCHS", "90");
            for a in &archs {
                f.push(format!("-gencode=arch=compute_{a},code=sm_{a}"));
            }
            let last = archs.last().expect("KQ_CUDA_ARCHS lists at least one arch");
            f.push(format!("-gencode=arch=compute_{last},code=compute_{last}"));
            (nvcc.clone(), f, "nvidia")
        }
    };

    compile_all(&compiler, &flags, &sources, &headers, &hip_dir, &out);
    let lib = out.join("libkq.a");
    let _ = std::fs::remove_file(&lib);
    let objects: Vec<PathBuf> = sources
        .iter()
        .map(|s| object_path(s, &hip_dir, &out))
        .collect();
    run(Command::new(env::var("AR").unwrap_or_else(|_| "ar".into()))
        .arg("crs")
        .arg(&lib)
        .args(&objects));

    println!("cargo:rustc-link-search=native={}", out.display());
    println!("cargo:rustc-link-lib=static=kq");
    match &platform {
        Platform::Amd { .. } => {
            if let Some(rocm) = env::var_os("ROCM_PATH") {
                println!(
                    "cargo:rustc-link-search=native={}",
                    Path::new(&rocm).join("lib").display()
                );
            }
            println!("cargo:rustc-link-lib=dylib=amdhip64");
        }
        Platform::Nvidia { cuda, .. } => {
            for d in ["lib64", "lib"] {
                if cuda.join(d).is_dir() {
                    println!("cargo:rustc-link-search=native={}", cuda.join(d).display());
                }
            }
            println!("cargo:rustc-link-lib=static=cudart_static");
            for l in ["stdc++", "dl", "pthread", "rt"] {
                println!("cargo:rustc-link-lib=dylib={l}");
            }
        }
    }
    println!("cargo:rustc-cfg=kq_gpu");
    println!("cargo:rustc-cfg=kq_gpu_platform=\"{name}\"");
}

/// The platform from `HIP_PLATFORM`, or auto-detected when it is unset. An explicit
/// `amd`/`nvidia` whose compiler is missing is an error, not a silent CPU build.
fn select_platform() -> Option<Platform> {
    let amd = || find_on_path("hipcc").map(|hipcc| Platform::Amd { hipcc });
    let nvidia = || {
        let nvcc = match env::var_os("CUDA_PATH") {
            Some(root) => Some(Path::new(&root).join("bin/nvcc")).filter(|p| p.is_file()),
            None => find_on_path("nvcc"),
        }?;
        let nvcc = nvcc.canonicalize().unwrap_or(nvcc);
        let cuda = nvcc.parent()?.parent()?.to_path_buf();
        Some(Platform::Nvidia { nvcc, cuda })
    };
    match env::var("HIP_PLATFORM").as_deref() {
        Ok("none") => None,
        Ok("amd") => Some(amd().unwrap_or_else(|| panic!("HIP_PLATFORM=amd but no hipcc on PATH"))),
        Ok("nvidia") => Some(nvidia().unwrap_or_else(|| {
            panic!("HIP_PLATFORM=nvidia but no nvcc found (set CUDA_PATH to the CUDA root, or put nvcc on PATH)")
        })),
        Ok(other) => panic!("HIP_PLATFORM={other}: expected amd, nvidia or none"),
        Err(_) => {
            let p = amd().or_else(nvidia);
            if p.is_none() {
                println!("cargo:warning=feature `gpu` is on but neither hipcc nor nvcc was found: building mamba-kernels without GPU support (set HIP_PLATFORM, CUDA_PATH or PATH)");
            }
            p
        }
    }
}

/// Compiles every source whose object is missing or older than the source, any
/// header or the flags (recorded in a stamp file), in parallel (`NUM_JOBS`).
fn compile_all(
    compiler: &Path,
    flags: &[String],
    sources: &[PathBuf],
    headers: &[PathBuf],
    hip_dir: &Path,
    out: &Path,
) {
    let stamp = out.join("kq-flags.txt");
    let flag_line = format!("{} {}", compiler.display(), flags.join(" "));
    let flags_same = std::fs::read_to_string(&stamp).is_ok_and(|s| s == flag_line);
    let newest_header = headers
        .iter()
        .filter_map(|h| mtime(h))
        .max()
        .unwrap_or(SystemTime::UNIX_EPOCH);
    let stale: Vec<&PathBuf> = sources
        .iter()
        .filter(|s| {
            let obj = object_path(s, hip_dir, out);
            match mtime(&obj) {
                Some(t) => {
                    !flags_same || t < newest_header || !matches!(mtime(s), Some(ts) if ts <= t)
                }
                None => true,
            }
        })
        .collect();
    let jobs: usize = env::var("NUM_JOBS")
        .ok()
        .and_then(|j| j.parse().ok())
        .unwrap_or(1)
        .max(1);
    for batch in stale.chunks(jobs) {
        let children: Vec<_> = batch
            .iter()
            .map(|src| {
                let obj = object_path(src, hip_dir, out);
                let mut cmd = Command::new(compiler);
                cmd.args(flags).arg("-c").arg(src).arg("-o").arg(&obj);
                let child = cmd
                    .spawn()
                    .unwrap_or_else(|e| panic!("cannot run {}: {e}", compiler.display()));
                (cmd, child)
            })
            .collect();
        for (cmd, mut child) in children {
            let status = child.wait().expect("wait for the compiler");
            assert!(
                status.success(),
                "kernel compilation failed ({status}): {cmd:?}"
            );
        }
    }
    std::fs::write(&stamp, flag_line).expect("write the flags stamp");
}

fn object_path(src: &Path, hip_dir: &Path, out: &Path) -> PathBuf {
    let rel = src.strip_prefix(hip_dir).unwrap_or(src).with_extension("o");
    out.join(rel.to_string_lossy().replace(['/', '\\'], "_"))
}

fn mtime(p: &Path) -> Option<SystemTime> {
    std::fs::metadata(p).and_then(|m| m.modified()).ok()
}

fn walk(dir: &Path, f: &mut dyn FnMut(&Path)) {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("read_dir entry").path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            walk(&p, f);
        } else {
            f(&p);
        }
    }
}

fn find_on_path(exe: &str) -> Option<PathBuf> {
    env::split_paths(&env::var_os("PATH")?)
        .map(|d| d.join(exe))
        .find(|p| p.is_file())
}

/// A comma- or space-separated list from an environment variable, or the default.
fn list_var(var: &str, default: &str) -> Vec<String> {
    let v = env::var(var).unwrap_or_default();
    let v = if v.trim().is_empty() {
        default.to_string()
    } else {
        v
    };
    v.split([',', ' '])
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect()
}

fn run(cmd: &mut Command) {
    let status = cmd
        .status()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(status.success(), "{cmd:?} failed: {status}");
}
