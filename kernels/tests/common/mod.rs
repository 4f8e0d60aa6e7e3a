//! Shared test helpers: a seeded generator and random weight matrices.
#![allow(dead_code)]

use mamba_format::QuantType;
use mamba_kernels::cpu::{self, Kernels};

/// SplitMix64: small, seeded, good enough for test data.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x9E37_79B9_7F4A_7C15)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn uniform(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32
    }

    /// Standard normal (Box–Muller).
    pub fn normal(&mut self) -> f32 {
        let u1 = (self.uniform() as f64).max(1e-12);
        let u2 = self.uniform() as f64;
        ((-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()) as f32
    }

    pub fn normals(&mut self, n: usize, scale: f32) -> Vec<f32> {
        (0..n).map(|_| self.normal() * scale).collect()
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
}

/// A quantized weight matrix and its dequantized values.
pub struct Matrix {
    pub ty: QuantType,
    pub rows: usize,
    pub cols: usize,
    pub data: Vec<u8>,
    pub deq: Vec<f32>,
}

impl Matrix {
    /// Random Gaussian weights (with a few outliers), quantized with the reference.
    pub fn random(ty: QuantType, rows: usize, cols: usize, rng: &mut Rng) -> Matrix {
        let mut f = rng.normals(rows * cols, 1.0);
        for _ in 0..(rows * cols / 97) {
            let i = rng.below(f.len());
            f[i] *= 6.0;
        }
        let rb = ty.bytes_for(cols as u64).unwrap() as usize;
        let mut data = vec![0u8; rows * rb];
        for (src, dst) in f
            .chunks_exact(cols.max(1))
            .zip(data.chunks_exact_mut(rb.max(1)))
        {
            ty.quantize_row(src, dst);
        }
        let mut deq = vec![0.0f32; rows * cols];
        for (src, dst) in data
            .chunks_exact(rb.max(1))
            .zip(deq.chunks_exact_mut(cols.max(1)))
        {
            ty.dequantize_row(src, dst);
        }
        Matrix {
            ty,
            rows,
            cols,
            data,
            deq,
        }
    }

    pub fn view(&self) -> mamba_kernels::WeightView<'_> {
        mamba_kernels::WeightView::new(self.ty, self.rows, self.cols, &self.data).unwrap()
    }

    /// Σ_c |w[r][c] · x[c]| in f64: the scale of rounding errors of one output.
    pub fn abs_dot(&self, r: usize, x: &[f32]) -> f64 {
        self.deq[r * self.cols..(r + 1) * self.cols]
            .iter()
            .zip(x)
            .map(|(&w, &x)| (w as f64 * x as f64).abs())
            .sum()
    }

    /// ‖w_r‖₂.
    pub fn row_norm(&self, r: usize) -> f64 {
        self.deq[r * self.cols..(r + 1) * self.cols]
            .iter()
            .map(|&w| (w as f64).powi(2))
            .sum::<f64>()
            .sqrt()
    }
}

/// The SIMD tables this CPU supports; prints a skip note when there is none.
pub fn simd_tables() -> Vec<&'static Kernels> {
    let v = cpu::simd();
    if v.is_empty() {
        eprintln!("no SIMD table on this CPU: SIMD-vs-scalar checks skipped");
    }
    v
}

/// Block size used to build row lengths for `ty` (32 for the float types).
pub fn unit(ty: QuantType) -> usize {
    ty.block_size().max(32)
}

/// Row lengths in blocks, as the brief lists them.
pub const BLOCKS: [usize; 10] = [1, 2, 3, 5, 7, 8, 15, 16, 17, 33];
/// Token counts.
pub const NS: [usize; 9] = [1, 2, 3, 4, 5, 7, 8, 9, 17];
/// Row counts (odd, to leave partial tiles).
pub const ROWS: [usize; 6] = [1, 3, 5, 7, 13, 37];
