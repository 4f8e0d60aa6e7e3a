//! The tiled matmul: every SIMD table against the portable one (same integer
//! arithmetic, so only f32 rounding may differ), the portable one against the exact
//! reference `matmul_ref` (within the documented activation-quantization budget),
//! and independence of the result from the token count and the thread count.

mod common;

use common::*;
use mamba_format::QuantType;
use mamba_kernels::cpu::{self, act, Kernels, GENERIC};
use mamba_kernels::matmul::matmul_ref;
use mamba_kernels::pool::{self, Pool};

/// SIMD vs portable: `|Δ| <= SIMD_TOL · Σ|w·x|` (f32 summation order only).
const SIMD_TOL: f64 = 2e-6;

fn run(k: &Kernels, m: &Matrix, x: &[f32], n: usize) -> Vec<f32> {
    let mut y = vec![f32::NAN; n * m.rows];
    (k.matmul)(&m.view(), x, n, &mut y);
    y
}

fn run_ref(m: &Matrix, x: &[f32], n: usize) -> Vec<f32> {
    let mut y = vec![f32::NAN; n * m.rows];
    matmul_ref(&m.view(), x, n, &mut y);
    y
}

/// Row lengths for `ty`: the block multiples of the brief, plus odd lengths for
/// the float types (which have no block constraint).
fn lengths(ty: QuantType) -> Vec<usize> {
    let mut v: Vec<usize> = BLOCKS.iter().map(|b| b * unit(ty)).collect();
    if ty.is_float() {
        v.extend([1, 3, 4, 7, 9, 13, 100, 255]);
    }
    v
}

/// Checks every output; returns the worst `|Δ| / Σ|w·x|`.
fn check_close(
    what: &str,
    m: &Matrix,
    x: &[f32],
    n: usize,
    got: &[f32],
    want: &[f32],
    tol: f64,
) -> f64 {
    let mut worst = 0.0f64;
    for t in 0..n {
        let xt = &x[t * m.cols..(t + 1) * m.cols];
        for r in 0..m.rows {
            let (g, w) = (got[t * m.rows + r], want[t * m.rows + r]);
            let bound = tol * m.abs_dot(r, xt) + 1e-30;
            assert!(
                ((g - w) as f64).abs() <= bound,
                "{what} {}: rows {} cols {} n {n}: y[{t}][{r}] = {g}, want {w} (bound {bound:e})",
                m.ty,
                m.rows,
                m.cols
            );
            worst = worst.max(((g - w) as f64).abs() / m.abs_dot(r, xt).max(1e-30));
        }
    }
    worst
}

#[test]
fn simd_matmul_matches_portable_on_every_type_and_shape() {
    let mut rng = Rng::new(1);
    for k in simd_tables() {
        for ty in QuantType::ALL {
            let mut worst = 0.0f64;
            for (li, &cols) in lengths(ty).iter().enumerate() {
                for (ni, &n) in NS.iter().enumerate() {
                    let mut rows = ROWS[(li + ni) % ROWS.len()];
                    if cols > 2048 {
                        rows = rows.min(7);
                    }
                    let m = Matrix::random(ty, rows, cols, &mut rng);
                    let x = rng.normals(n * cols, 1.0);
                    let got = run(k, &m, &x, n);
                    let want = run(&GENERIC, &m, &x, n);
                    worst = worst.max(check_close(k.name, &m, &x, n, &got, &want, SIMD_TOL));
                }
            }
            eprintln!(
                "{} {ty}: worst |Δ|/Σ|w·x| vs portable {worst:.2e} (tolerance {SIMD_TOL:.0e})",
                k.name
            );
        }
    }
}

/// Weights of random block bytes: every bit pattern of scales, mins and quants,
/// including ones the reference quantizers never write (Q2_K's wrapped 4-bit
/// scales, Q3_K's -32, IQ4_XS's extreme sub-scales) but an imported file may hold.
/// A block is redrawn until it dequantizes to finite values below 1e6 (the f16
/// scales are random too).
fn random_block_matrix(ty: QuantType, rows: usize, cols: usize, rng: &mut Rng) -> Matrix {
    let (bs, ts) = (ty.block_size(), ty.type_size());
    let mut data = Vec::with_capacity(rows * cols / bs * ts);
    let mut deq = Vec::with_capacity(rows * cols);
    let mut y = vec![0.0f32; bs];
    for _ in 0..rows * cols / bs {
        loop {
            let block: Vec<u8> = (0..ts).map(|_| rng.next_u64() as u8).collect();
            ty.dequantize_row(&block, &mut y);
            if y.iter().all(|v| v.abs() < 1e6) {
                data.extend_from_slice(&block);
                deq.extend_from_slice(&y);
                break;
            }
        }
    }
    Matrix {
        ty,
        rows,
        cols,
        data,
        deq,
    }
}

/// Adversarial activation rows of `cols` values: Gaussian, zeros, a lone spike,
/// tiny and huge magnitudes, alternating signs.
fn adversarial_acts(cols: usize, rng: &mut Rng) -> Vec<f32> {
    let mut x = rng.normals(cols, 1.0);
    x.extend(std::iter::repeat_n(0.0, cols));
    let mut spike = vec![0.0; cols];
    spike[cols / 3] = -7.0;
    x.extend(spike);
    x.extend(rng.normals(cols, 1e-30));
    x.extend(rng.normals(cols, 1e15));
    x.extend((0..cols).map(|i| if i % 2 == 0 { 1.0 } else { -1.0 }));
    x
}

#[test]
fn simd_matmul_matches_portable_on_random_block_bytes_and_extreme_activations() {
    let mut rng = Rng::new(7);
    for k in simd_tables() {
        for ty in QuantType::ALL.into_iter().filter(|t| !t.is_float()) {
            let mut worst = 0.0f64;
            for blocks in [1usize, 3, 9, 17] {
                let cols = blocks * ty.block_size();
                let m = random_block_matrix(ty, 6, cols, &mut rng);
                let x = adversarial_acts(cols, &mut rng);
                let n = x.len() / cols;
                let got = run(k, &m, &x, n);
                let want = run(&GENERIC, &m, &x, n);
                worst = worst.max(check_close(k.name, &m, &x, n, &got, &want, SIMD_TOL));
                // Each token alone gives the same bits (decode tiles).
                for t in 0..n {
                    let one = run(k, &m, &x[t * cols..(t + 1) * cols], 1);
                    assert_eq!(
                        one,
                        got[t * m.rows..(t + 1) * m.rows],
                        "{} {ty} token {t}",
                        k.name
                    );
                }
            }
            eprintln!(
                "{} {ty}: random block bytes, worst |Δ|/Σ|w·x| vs portable {worst:.2e}",
                k.name
            );
        }
    }
}

/// `x̂`: the activations as the quantized path sees them.
fn dequantized_acts(ty: QuantType, x: &[f32]) -> Vec<f32> {
    match act::ActType::for_weights(ty) {
        act::ActType::F32 => x.to_vec(),
        form @ (act::ActType::Q8_1 | act::ActType::Q8_0) => {
            let mut b = vec![bytemuck::Zeroable::zeroed(); x.len() / 32];
            if form == act::ActType::Q8_0 {
                cpu::scalar::quantize_row_q8_0_ref(x, &mut b);
            } else {
                cpu::scalar::quantize_row_q8_1_ref(x, &mut b);
            }
            b.iter()
                .flat_map(|b: &act::BlockQ8_1| b.qs.map(|q| q as f32 * b.d))
                .collect()
        }
        act::ActType::Q8K => {
            let mut b = vec![bytemuck::Zeroable::zeroed(); x.len() / 256];
            cpu::scalar::quantize_row_q8_k_ref(x, &mut b);
            b.iter()
                .flat_map(|b: &act::BlockQ8K| b.qs.map(|q| q as f32 * b.d))
                .collect()
        }
    }
}

/// The portable path against `matmul_ref`: every output within the Cauchy–Schwarz
/// bound of its activation rounding, and the NMSE over Gaussian data within
/// [`act::act_nmse_budget`].
#[test]
fn quantized_activations_stay_within_budget_of_matmul_ref() {
    let mut rng = Rng::new(2);
    for ty in QuantType::ALL {
        let (mut se, mut sy, mut worst_rel) = (0.0f64, 0.0f64, 0.0f64);
        for &blocks in &[1usize, 3, 8, 17] {
            let cols = blocks * unit(ty);
            let (rows, n) = (37, 5);
            let m = Matrix::random(ty, rows, cols, &mut rng);
            let x = rng.normals(n * cols, 1.0);
            let got = run(&GENERIC, &m, &x, n);
            let want = run_ref(&m, &x, n);
            let xq = dequantized_acts(ty, &x);
            for t in 0..n {
                let (xt, xqt) = (&x[t * cols..(t + 1) * cols], &xq[t * cols..(t + 1) * cols]);
                let act_err: f64 = xt
                    .iter()
                    .zip(xqt)
                    .map(|(&a, &b)| ((a - b) as f64).powi(2))
                    .sum::<f64>()
                    .sqrt();
                let x_norm: f64 = xt.iter().map(|&a| (a as f64).powi(2)).sum::<f64>().sqrt();
                for r in 0..rows {
                    let (g, w) = (got[t * rows + r] as f64, want[t * rows + r] as f64);
                    let bound = m.row_norm(r) * act_err + 1e-5 * m.abs_dot(r, xt) + 1e-30;
                    assert!(
                        (g - w).abs() <= bound,
                        "{ty}: y[{t}][{r}] = {g}, ref {w}, bound {bound:e}"
                    );
                    worst_rel = worst_rel.max((g - w).abs() / (m.row_norm(r) * x_norm));
                    se += (g - w).powi(2);
                    sy += w.powi(2);
                }
            }
        }
        let nmse = se / sy;
        eprintln!("{ty}: NMSE vs matmul_ref {nmse:.3e} (budget {:.1e}), worst |Δ|/(‖w‖‖x‖) {worst_rel:.2e}", act::act_nmse_budget(ty));
        assert!(nmse <= act::act_nmse_budget(ty), "{ty}: NMSE {nmse:e}");
    }
}

/// A token's output does not depend on how many tokens share the call (decode vs
/// batch), on every table.
#[test]
fn a_tokens_result_does_not_depend_on_the_batch() {
    let mut rng = Rng::new(3);
    let mut tables = simd_tables();
    tables.push(&GENERIC);
    for k in tables {
        for ty in QuantType::ALL {
            let (rows, cols, n) = (13, 3 * unit(ty), 9);
            let m = Matrix::random(ty, rows, cols, &mut rng);
            let x = rng.normals(n * cols, 1.0);
            let all = run(k, &m, &x, n);
            for t in 0..n {
                let one = run(k, &m, &x[t * cols..(t + 1) * cols], 1);
                assert_eq!(
                    one,
                    all[t * rows..(t + 1) * rows],
                    "{} {ty}: token {t}",
                    k.name
                );
            }
        }
    }
}

/// Every token count up to a full tile (so every partial token tile a kernel
/// dispatches on) gives each token the bits it gets alone, on every table.
#[test]
fn partial_token_tiles_match_single_tokens() {
    let mut rng = Rng::new(6);
    let mut tables = simd_tables();
    tables.push(&GENERIC);
    for k in tables {
        for ty in QuantType::ALL {
            // 9 blocks: a full activation-scale group of 8 and a short one; 6 rows:
            // a full row tile of 4 and a partial one.
            let (rows, cols) = (6, 9 * unit(ty));
            let m = Matrix::random(ty, rows, cols, &mut rng);
            let x = rng.normals(cpu::tile::NR * cols, 1.0);
            let alone: Vec<Vec<f32>> = x.chunks_exact(cols).map(|xt| run(k, &m, xt, 1)).collect();
            for n in 2..=cpu::tile::NR {
                let all = run(k, &m, &x[..n * cols], n);
                for (t, want) in alone.iter().enumerate().take(n) {
                    assert_eq!(
                        want[..],
                        all[t * rows..(t + 1) * rows],
                        "{} {ty} n {n}: token {t}",
                        k.name
                    );
                }
            }
        }
    }
}

/// Splitting rows over threads changes nothing.
#[test]
fn thread_count_does_not_change_results() {
    let mut rng = Rng::new(4);
    let one = Pool::new(1);
    let three = Pool::new(3);
    let mut tables = simd_tables();
    tables.push(&GENERIC);
    for k in tables {
        for ty in [QuantType::F32, QuantType::Q8_0, QuantType::Q4_K] {
            let (rows, cols) = (101, 512);
            let m = Matrix::random(ty, rows, cols, &mut rng);
            // 70 × 512 values: the activations are quantized in parallel too.
            for n in [1, 6, 70] {
                let x = rng.normals(n * cols, 1.0);
                let a = pool::install(&one, || run(k, &m, &x, n));
                let b = pool::install(&three, || run(k, &m, &x, n));
                assert_eq!(a, b, "{} {ty} n {n}", k.name);
            }
        }
    }
}

/// The public entry point uses the chosen table.
#[test]
fn matmul_uses_the_chosen_table() {
    let mut rng = Rng::new(5);
    let m = Matrix::random(QuantType::Q4_0, 5, 64, &mut rng);
    let x = rng.normals(2 * 64, 1.0);
    let mut y = vec![0.0; 10];
    mamba_kernels::matmul(&m.view(), &x, 2, &mut y);
    assert_eq!(y, run(cpu::kernels(), &m, &x, 2));
    if !cpu::scalar_forced() {
        assert_eq!(cpu::kernels().name, cpu::best().name);
    }
}
