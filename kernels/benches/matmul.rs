//! Matmul throughput: weight GB/s and GFLOP/s for the shapes of mamba-130m
//! (d_model 768), next to this machine's memory read bandwidth, with 1 and 2
//! threads; then the selective scan and conv1d of one layer. Plain
//! `harness = false` main:
//!
//! ```text
//! cargo bench -p mamba-kernels --bench matmul                 # the table
//! cargo bench -p mamba-kernels --bench matmul -- all-types    # every weight type
//! cargo bench -p mamba-kernels --bench matmul -- shape=lm_head type=q8_0 n=1
//! cargo bench -p mamba-kernels --bench matmul -- tune         # 1 thread, L2-resident, n = 1..64
//! cargo bench -p mamba-kernels --bench matmul -- ops          # scan and conv1d only
//! cargo bench -p mamba-kernels --bench matmul -- layers       # decode's matmuls over 24 layers
//! cargo bench -p mamba-kernels --bench matmul -- mamba2       # Mamba-2 scan: recurrence vs chunked (l=512: one length)
//! ```
//!
//! `tune` reports the fastest of many short calls, which stays meaningful on a
//! machine shared with other work; the tile shapes in `cpu/x86_64/avx2/mod.rs`
//! were chosen with it.
//!
//! Decode (n = 1) is bound by reading the weights, so its GB/s is best read as a
//! fraction of the measured memory bandwidth (shapes larger than the last-level
//! cache: the LM head) or of cache bandwidth (the per-layer matrices, which a real
//! forward pass streams from DRAM too, 24 layers being far larger than the cache).

use mamba_format::QuantType;
use mamba_kernels::pool::{self, Pool};
use mamba_kernels::{cpu, matmul::matmul_ref, WeightView};
use std::hint::black_box;
use std::time::{Duration, Instant};

/// Seconds per call: the best of repeated runs lasting at least `min` in total.
fn time(min: Duration, mut f: impl FnMut()) -> f64 {
    f();
    let (mut best, start, mut runs) = (f64::MAX, Instant::now(), 0);
    while runs < 3 || start.elapsed() < min {
        let t = Instant::now();
        f();
        best = best.min(t.elapsed().as_secs_f64());
        runs += 1;
    }
    best
}

/// CPU seconds used by this process so far (all threads).
fn cpu_seconds() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid out-pointer for clock_gettime.
    unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
}

/// Seconds per call, robust to a shared machine: the fastest of `reps` short calls
/// (one that no other process interrupted), cross-checked by the mean process CPU
/// time; returns the smaller.
fn cpu_time(reps: usize, mut f: impl FnMut()) -> f64 {
    f();
    let (t, mut best) = (cpu_seconds(), f64::MAX);
    for _ in 0..reps {
        let w = Instant::now();
        f();
        best = best.min(w.elapsed().as_secs_f64());
    }
    best.min((cpu_seconds() - t) / reps as f64)
}

/// `-- tune`: single-thread CPU-time GFLOP/s of every type at several token counts.
fn tune() {
    let one = Pool::new(1);
    let (rows, cols) = (256, 768);
    let ns = [1usize, 2, 3, 4, 8, 64];
    print!("{:<6}", "type");
    for n in ns {
        print!(" {:>8}", format!("n={n}"));
    }
    println!("   (GFLOP/s, 1 thread, fastest call; {rows}×{cols}, L2-resident)");
    for ty in QuantType::ALL {
        let data = matrix(ty, rows, cols);
        let w = WeightView::new(ty, rows, cols, &data).unwrap();
        print!("{:<6}", ty.name());
        for n in ns {
            let x: Vec<f32> = (0..n * cols)
                .map(|i| ((i * 7919) % 1000) as f32 / 500.0 - 1.0)
                .collect();
            let mut y = vec![0.0f32; n * rows];
            let reps = (4000 / n).max(150);
            let s = pool::install(&one, || {
                cpu_time(reps, || mamba_kernels::matmul(&w, &x, n, &mut y))
            });
            print!(" {:>8.1}", 2.0 * (rows * cols * n) as f64 / s / 1e9);
        }
        println!();
    }
}

/// Read bandwidth in GB/s: `threads` threads summing disjoint parts of a 512 MiB buffer.
fn memory_bandwidth(threads: usize) -> f64 {
    let buf: Vec<u64> = (0..(512usize << 20) / 8).map(|i| i as u64).collect();
    let secs = time(Duration::from_millis(800), || {
        std::thread::scope(|s| {
            for part in buf.chunks(buf.len().div_ceil(threads)) {
                s.spawn(move || {
                    let mut acc = [0u64; 8];
                    for c in part.chunks_exact(8) {
                        for (a, v) in acc.iter_mut().zip(c) {
                            *a = a.wrapping_add(*v);
                        }
                    }
                    black_box(acc);
                });
            }
        });
    });
    (buf.len() * 8) as f64 / secs / 1e9
}

/// A `rows × cols` matrix of type `ty`: 64 distinct random rows, repeated (the
/// bytes differ in address, which is all the memory system sees).
fn matrix(ty: QuantType, rows: usize, cols: usize) -> Vec<u8> {
    let rb = ty.bytes_for(cols as u64).unwrap() as usize;
    let mut seed = 0x2545_F491_4F6C_DD1Du64;
    let mut distinct = vec![0u8; 64 * rb];
    for row in distinct.chunks_exact_mut(rb) {
        let f: Vec<f32> = (0..cols)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                (seed >> 40) as f32 / (1u64 << 24) as f32 - 0.5
            })
            .collect();
        ty.quantize_row(&f, row);
    }
    distinct.iter().cycle().take(rows * rb).copied().collect()
}

/// The selective scan and conv1d of one mamba-130m layer (d_inner 1536, N 16,
/// K 4), one thread: the chosen kernels against the scalar references.
fn ops(one: &Pool) {
    use mamba_kernels::ops::scan::{ScanInputs, ScanParams};
    let (d_inner, n, r) = (1536usize, 16usize, 48usize);
    let k = cpu::kernels();
    let a: Vec<f32> = (0..d_inner * n).map(|i| -((i % n) as f32 + 1.0)).collect();
    let (d, bias) = (vec![1.0f32; d_inner], vec![-2.0f32; d_inner]);
    let conv_w: Vec<f32> = (0..d_inner * 4)
        .map(|i| (i % 7) as f32 * 0.1 - 0.3)
        .collect();
    println!();
    for l in [1usize, 64] {
        let wave = |m: usize, s: f32| -> Vec<f32> {
            (0..m)
                .map(|i| ((i * 7919 % 1000) as f32 / 500.0 - 1.0) * s)
                .collect()
        };
        let (x, dt, z, bc) = (
            wave(l * d_inner, 1.0),
            wave(l * d_inner, 2.0),
            wave(l * d_inner, 2.0),
            wave(l * (r + 2 * n), 1.0),
        );
        let p = ScanParams {
            a: &a,
            d: &d,
            dt_bias: &bias,
            d_state: n,
        };
        let inp = ScanInputs {
            x: &x,
            dt: &dt,
            bc: &bc,
            bc_stride: r + 2 * n,
            b_off: r,
            c_off: r + n,
            z: &z,
        };
        let (mut h, mut y) = (vec![0.0f32; d_inner * n], vec![0.0f32; d_inner * l]);
        let per = |secs: f64| secs / (l * d_inner) as f64 * 1e9;
        // 32 channels per call, as the runtime splits the scan across threads.
        let scan = |f: mamba_kernels::cpu::ScanFn, h: &mut [f32], y: &mut [f32]| {
            for (c, (hc, yc)) in h.chunks_mut(32 * n).zip(y.chunks_mut(32 * l)).enumerate() {
                f(&p, &inp, 32 * c, hc.len() / n, hc, yc);
            }
        };
        let fast = pool::install(one, || {
            time(Duration::from_millis(300), || {
                scan(k.selective_scan, &mut h, &mut y)
            })
        });
        let slow = pool::install(one, || {
            time(Duration::from_millis(300), || {
                scan(cpu::SCALAR.selective_scan, &mut h, &mut y)
            })
        });
        println!(
            "selective_scan L={l:<3} {}: {:.2} ns/channel/token, reference {:.2} ({:.1}×)",
            k.name,
            per(fast),
            per(slow),
            slow / fast
        );
        let (mut xc, mut st) = (x.clone(), vec![0.0f32; d_inner * 3]);
        let fast = time(Duration::from_millis(300), || {
            (k.conv1d_silu)(&mut xc, d_inner, &mut st, &conv_w, Some(&d))
        });
        let slow = time(Duration::from_millis(300), || {
            (cpu::SCALAR.conv1d_silu)(&mut xc, d_inner, &mut st, &conv_w, Some(&d))
        });
        println!(
            "conv1d_silu    L={l:<3} {}: {:.2} ns/channel/token, reference {:.2} ({:.1}×)",
            k.name,
            per(fast),
            per(slow),
            slow / fast
        );
    }
}

/// `-- layers`: decode's access pattern without the rest of the model: one token
/// through the in_proj and out_proj of 24 layers (two matmuls per layer, about 91
/// MB at q8_0, far beyond the last-level cache), on the kernel pool with 1 and 2
/// threads. Its GB/s is the ceiling the matmuls set for end-to-end decode.
fn layers() {
    let k = cpu::kernels();
    let bw = [memory_bandwidth(1), memory_bandwidth(2)];
    println!(
        "kernels: {}; memory read bandwidth: 1 thread {:.1} GB/s, 2 threads {:.1} GB/s",
        k.name, bw[0], bw[1]
    );
    for ty in [QuantType::Q8_0, QuantType::Q4_0, QuantType::Q4_K] {
        let mats: Vec<(usize, usize, Vec<u8>)> = (0..24)
            .flat_map(|_| [(3072, 768), (768, 1536)])
            .map(|(r, c)| (r, c, matrix(ty, r, c)))
            .collect();
        let bytes: usize = mats.iter().map(|m| m.2.len()).sum();
        let x: Vec<f32> = (0..1536)
            .map(|i| ((i * 7919) % 1000) as f32 / 500.0 - 1.0)
            .collect();
        let mut y = vec![0.0f32; 3072];
        for threads in [1, 2] {
            let pool = Pool::new(threads);
            let secs = pool::install(&pool, || {
                time(Duration::from_millis(1500), || {
                    for (rows, cols, data) in &mats {
                        let w = WeightView::new(ty, *rows, *cols, data).unwrap();
                        mamba_kernels::matmul(&w, &x[..*cols], 1, &mut y[..*rows]);
                    }
                })
            });
            let gbs = bytes as f64 / secs / 1e9;
            println!(
                "{:<5} {threads} thread(s): {:.1} MB in {:.2} ms: {:.1} GB/s ({:.0}% of bandwidth)",
                ty.name(),
                bytes as f64 / 1e6,
                secs * 1e3,
                gbs,
                100.0 * gbs / bw[threads - 1]
            );
        }
    }
}

/// `-- mamba2`: the Mamba-2 scan of one layer (H 8, P 64, N 64, G 1): the
/// recurrence against the chunked algorithm at several chunk sizes and lengths,
/// threaded with 1 and 2 threads, and each table kernel on one thread against
/// the scalar table's.
fn mamba2() {
    use mamba_kernels::ops::ssd::{chunked_scratch_len, Mamba2Inputs, Mamba2Params, Mamba2Task};
    use mamba_kernels::sched::mamba2::{mamba2_scan_with, Mamba2Path, Mamba2Scratch, CHUNK};
    let (h, pp, n, g) = (8usize, 64usize, 64usize, 1usize);
    let (di, l_max) = (h * pp, 512usize);
    let stride = di + 2 * g * n;
    let wave = |m: usize, s: f32, o: f32| -> Vec<f32> {
        (0..m)
            .map(|i| ((i * 7919 % 1000) as f32 / 500.0 - 1.0) * s + o)
            .collect()
    };
    let (a, d, bias) = (wave(h, 3.0, -4.5), wave(h, 1.0, 0.0), vec![0.0f32; h]);
    let (xbc, dt) = (wave(l_max * stride, 1.7, 0.0), wave(l_max * h, 1.7, -2.0));
    let p = Mamba2Params {
        a: &a,
        d: &d,
        dt_bias: &bias,
        head_dim: pp,
        d_state: n,
        n_groups: g,
        dt_min: 0.0,
        dt_max: f32::INFINITY,
    };
    let mut state = vec![0.0f32; di * n];
    let mut scratch = Mamba2Scratch::default();
    let k = cpu::kernels();
    println!(
        "Mamba-2 scan, H {h} P {pp} N {n} G {g}, kernels {}: µs per call (ns per token and head)",
        k.name
    );
    let paths = [
        Mamba2Path::Recurrence,
        Mamba2Path::Chunked(16),
        Mamba2Path::Chunked(32),
        Mamba2Path::Chunked(64),
        Mamba2Path::Chunked(128),
    ];
    for threads in [1, 2] {
        let pool = Pool::new(threads);
        for l in [1usize, 2, 4, 8, 16, 32, 64, 512] {
            let want = |a: String| a.strip_prefix("l=").is_none_or(|v| v == l.to_string());
            if !std::env::args().all(want) {
                continue;
            }
            let inp = Mamba2Inputs {
                xbc: &xbc[..l * stride],
                xbc_stride: stride,
                dt: &dt[..l * h],
                dt_stride: h,
                dt_off: 0,
            };
            let mut y = vec![0.0f32; l * di];
            print!("threads {threads} L {l:<4}");
            for path in paths {
                let reps = (20_000 / l).clamp(20, 2000);
                let secs = pool::install(&pool, || {
                    cpu_time(reps, || {
                        mamba2_scan_with(&p, &inp, &mut state, &mut y, &mut scratch, path)
                    })
                });
                let name = match path {
                    Mamba2Path::Recurrence => "recurrence".to_string(),
                    Mamba2Path::Chunked(q) => format!("Q={q}"),
                };
                print!(
                    "  {name} {:.1} ({:.0})",
                    secs * 1e6,
                    secs * 1e9 / (l * h) as f64
                );
            }
            println!();
        }
    }
    // One thread, table kernels directly: the chosen one against SCALAR.
    let l = l_max;
    let inp = Mamba2Inputs {
        xbc: &xbc,
        xbc_stride: stride,
        dt: &dt,
        dt_stride: h,
        dt_off: 0,
    };
    let mut y = vec![0.0f32; l * di];
    let mut sc = vec![0.0f32; chunked_scratch_len(&p, di, CHUNK)];
    for t in [k, &cpu::SCALAR] {
        let rec = cpu_time(40, || {
            let task = Mamba2Task {
                channels: 0..di,
                l,
                state: &mut state,
                y: &mut y,
                y_stride: di,
            };
            (t.mamba2_scan)(&p, &inp, task)
        });
        let chk = cpu_time(40, || {
            let task = Mamba2Task {
                channels: 0..di,
                l,
                state: &mut state,
                y: &mut y,
                y_stride: di,
            };
            (t.mamba2_chunked)(&p, &inp, task, CHUNK, &mut sc)
        });
        let flops = 2.0 * (l * h) as f64 * (2 * n * pp + CHUNK * pp / 2) as f64;
        println!(
            "table {:<7} L {l}: recurrence {:.0} µs, chunked Q={CHUNK} {:.0} µs ({:.1} GFLOP/s in its products)",
            t.name,
            rec * 1e6,
            chk * 1e6,
            flops / chk / 1e9
        );
    }
}

fn main() {
    if std::env::args().any(|a| a == "mamba2") {
        return mamba2();
    }
    if std::env::args().any(|a| a == "tune") {
        return tune();
    }
    if std::env::args().any(|a| a == "layers") {
        return layers();
    }
    if std::env::args().any(|a| a == "ops") {
        return ops(&Pool::new(1));
    }
    let all = std::env::args().any(|a| a == "all-types");
    // Optional filters: `shape=lm_head`, `n=1`.
    let filter = |key: &str, v: &str| {
        std::env::args()
            .filter_map(|a| a.strip_prefix(&format!("{key}=")).map(str::to_owned))
            .all(|f| f == v)
    };
    let k = cpu::kernels();
    println!(
        "kernels: {} (MAMBA_FORCE_SCALAR={})",
        k.name,
        cpu::scalar_forced()
    );
    let bw = [memory_bandwidth(1), memory_bandwidth(2)];
    println!(
        "memory read bandwidth: 1 thread {:.1} GB/s, 2 threads {:.1} GB/s\n",
        bw[0], bw[1]
    );

    let pools: Vec<_> = [1, 2].iter().map(|&t| Pool::new(t)).collect();
    let types: Vec<QuantType> = if all {
        QuantType::ALL.to_vec()
    } else {
        vec![
            QuantType::Q8_0,
            QuantType::Q4_0,
            QuantType::Q4_K,
            QuantType::F16,
            QuantType::F32,
        ]
    };
    let shapes = [
        ("in_proj", 3072, 768),
        ("x_proj", 80, 1536),
        ("dt_proj", 1536, 48),
        ("out_proj", 768, 1536),
        ("lm_head", 50280, 768),
    ];
    println!(
        "{:<9} {:<6} {:>3} {:>3} {:>9} {:>8} {:>9} {:>8} {:>8}",
        "matrix", "type", "n", "thr", "MB", "ms", "GB/s", "of bw", "GFLOP/s"
    );
    for &(name, rows, cols) in shapes.iter().filter(|s| filter("shape", s.0)) {
        for &ty in types.iter().filter(|t| filter("type", t.name())) {
            if ty.bytes_for(cols as u64).is_none() {
                continue;
            }
            let data = matrix(ty, rows, cols);
            let w = WeightView::new(ty, rows, cols, &data).unwrap();
            for n in [1usize, 64]
                .into_iter()
                .filter(|n| filter("n", &n.to_string()))
            {
                let x: Vec<f32> = (0..n * cols)
                    .map(|i| ((i * 7919) % 1000) as f32 / 500.0 - 1.0)
                    .collect();
                let mut y = vec![0.0f32; n * rows];
                for (ti, pool) in pools.iter().enumerate() {
                    let secs = pool::install(pool, || {
                        time(Duration::from_millis(400), || {
                            mamba_kernels::matmul(&w, &x, n, &mut y)
                        })
                    });
                    let gbs = data.len() as f64 / secs / 1e9;
                    let gflops = 2.0 * (rows * cols * n) as f64 / secs / 1e9;
                    println!(
                        "{name:<9} {:<6} {n:>3} {:>3} {:>9.1} {:>8.3} {gbs:>9.1} {:>7.0}% {gflops:>8.1}",
                        ty.name(),
                        ti + 1,
                        data.len() as f64 / 1e6,
                        secs * 1e3,
                        100.0 * gbs / bw[ti]
                    );
                }
            }
        }
    }

    ops(&pools[0]);

    // The reference path on one shape, for scale.
    let ty = QuantType::Q8_0;
    let data = matrix(ty, 3072, 768);
    let w = WeightView::new(ty, 3072, 768, &data).unwrap();
    let x = vec![0.5f32; 768];
    let mut y = vec![0.0f32; 3072];
    let fast = pool::install(&pools[1], || {
        time(Duration::from_millis(300), || {
            mamba_kernels::matmul(&w, &x, 1, &mut y)
        })
    });
    let slow = pool::install(&pools[1], || {
        time(Duration::from_millis(300), || matmul_ref(&w, &x, 1, &mut y))
    });
    println!(
        "\nin_proj q8_0 n=1, 2 threads: {} {:.3} ms vs matmul_ref {:.3} ms ({:.1}×)",
        k.name,
        fast * 1e3,
        slow * 1e3,
        slow / fast
    );
}
