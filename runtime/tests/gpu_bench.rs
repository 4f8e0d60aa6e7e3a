//! The GPU benchmark of `scripts/gpu-check/run.sh` (ignored by plain `cargo test`):
//! per batch size B, B prompts of P tokens, then N greedy decode steps of all B
//! sequences together; total time and peak device memory.
//!
//! ```text
//! MAMBA_BENCH_MODEL=model.mbin MAMBA_BENCH_BATCHES=1,2,4 MAMBA_BENCH_PROMPT=1024 \
//! MAMBA_BENCH_GEN=1024 MAMBA_BENCH_OUT=rows.md  gpu_bench-<hash> --ignored --nocapture
//! ```
//! Each finished batch size appends one markdown table row to `MAMBA_BENCH_OUT`
//! (so a run cut short by a timeout keeps the rows it finished) and prints it.

use mamba_runtime::gpu::{GpuBatch, GpuModel};
use mamba_runtime::sampler::argmax;
use mamba_runtime::Model;
use rayon::prelude::*;
use std::io::Write;
use std::time::Instant;

fn env_usize(key: &str, default: usize) -> usize {
    std::env::var(key)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

const GIB: f64 = (1u64 << 30) as f64;

#[test]
#[ignore = "benchmark: run by scripts/gpu-check/run.sh with MAMBA_BENCH_MODEL set"]
fn gpu_bench() {
    let Ok(path) = std::env::var("MAMBA_BENCH_MODEL") else {
        eprintln!("SKIPPED: set MAMBA_BENCH_MODEL to a .mbin file");
        return;
    };
    let Some(dev) = mamba_kernels::gpu::test_device() else {
        return;
    };
    let batches: Vec<usize> = std::env::var("MAMBA_BENCH_BATCHES")
        .unwrap_or_else(|_| "1".into())
        .split(',')
        .map(|b| {
            b.trim()
                .parse()
                .expect("MAMBA_BENCH_BATCHES: comma-separated sizes")
        })
        .collect();
    let (p, n) = (
        env_usize("MAMBA_BENCH_PROMPT", 1024),
        env_usize("MAMBA_BENCH_GEN", 1024),
    );
    let model = Model::open(&path).unwrap();
    let ty = model
        .metadata()
        .get(mamba_format::arch::KEY_QUANTIZATION)
        .and_then(|v| v.as_str())
        .unwrap_or("?")
        .to_string();
    let name = std::path::Path::new(&path)
        .file_name()
        .map_or(path.clone(), |f| f.to_string_lossy().into_owned());
    let name = if std::env::var("MAMBA_GPU_GRAPHS").is_ok_and(|v| v == "0") {
        format!("{name} (MAMBA_GPU_GRAPHS=0)")
    } else {
        name
    };
    let t = Instant::now();
    let gpu = GpuModel::upload(&model, dev).unwrap();
    let info = gpu.device_info();
    eprintln!(
        "{name}: uploaded {:.2} GiB of weights to {} ({}) in {:.1} s",
        gpu.weights_bytes() as f64 / GIB,
        info.name,
        info.platform,
        t.elapsed().as_secs_f64()
    );
    drop(model);
    let v = gpu.vocab_size();
    for &b in &batches {
        gpu.reset_peak_memory();
        let mut device_used = 0u64;
        let mut sample = |gpu: &GpuModel| {
            let m = gpu.memory().unwrap();
            device_used = device_used.max(m.total - m.free);
        };
        let prompts: Vec<Vec<u32>> = (0..b)
            .map(|s| {
                (0..p)
                    .map(|i| ((i * 7919 + s * 104_729 + 11) % v) as u32)
                    .collect()
            })
            .collect();
        let refs: Vec<&[u32]> = prompts.iter().map(|x| x.as_slice()).collect();
        let t0 = Instant::now();
        let mut batch = GpuBatch::new(&gpu, b).unwrap();
        let mut next: Vec<u32> = batch
            .prefill(&refs)
            .unwrap()
            .par_chunks(v)
            .map(argmax)
            .collect();
        let prefill_s = t0.elapsed().as_secs_f64();
        sample(&gpu);
        // Progress on stderr, so a run cut short by a timeout still tells how far it got.
        eprintln!("batch {b}: prefill of {b} x {p} tokens in {prefill_s:.2} s");
        let t1 = Instant::now();
        for i in 0..n {
            next = batch
                .step(&next)
                .unwrap()
                .par_chunks(v)
                .map(argmax)
                .collect();
            if (i + 1) % 256 == 0 && i + 1 < n {
                eprintln!(
                    "batch {b}: {} decode steps in {:.2} s",
                    i + 1,
                    t1.elapsed().as_secs_f64()
                );
            }
        }
        let decode_s = t1.elapsed().as_secs_f64();
        sample(&gpu);
        eprintln!("batch {b}: decode graph replay: {:?}", batch.graph_status());
        let peak_own = gpu.peak_memory_used();
        drop(batch);
        let total = prefill_s + decode_s;
        let row = format!(
            "| {name} | {ty} | {b} | {p} | {n} | {prefill_s:.2} | {decode_s:.2} | {total:.2} | {:.1} | {:.2} | {:.2} |",
            (b * n) as f64 / decode_s,
            peak_own as f64 / GIB,
            device_used as f64 / GIB
        );
        println!("{row}");
        if let Ok(out) = std::env::var("MAMBA_BENCH_OUT") {
            let mut f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&out)
                .unwrap();
            writeln!(f, "{row}").unwrap();
        }
    }
}
