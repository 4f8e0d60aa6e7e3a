//! The rows on which the quantizers are compared with ggml byte for byte: shared by
//! the unit tests (whose golden hashes pin the bytes) and by
//! `examples/ggml_vectors.rs`, which writes them for the C harness of
//! `scripts/ggml-quants/check.sh` (that example includes this file by path, so the
//! two cannot drift apart).
#![allow(dead_code)]

/// xorshift64: deterministic, dependency-free random numbers.
pub struct XorShift(pub u64);

impl XorShift {
    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// Uniform in [-1, 1).
    pub fn uniform(&mut self) -> f32 {
        ((self.next_u64() >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0) as f32
    }

    /// Roughly normal (sum of 4 uniforms), with occasional outliers.
    pub fn spiky(&mut self) -> f32 {
        let s: f32 = (0..4).map(|_| self.uniform()).sum();
        if self.next_u64().is_multiple_of(61) {
            s * 12.0
        } else {
            s
        }
    }
}

/// ggml's `test-quantize-fns` vector `0.1 + 2 cos(i + offset)`. The cosine is taken
/// in f64 and rounded once, so the rows do not depend on the platform's `cosf`.
pub fn cos_vector(n: usize, offset: f64) -> Vec<f32> {
    (0..n)
        .map(|i| (0.1 + 2.0 * (i as f64 + offset).cos()) as f32)
        .collect()
}

/// The rows: ggml's test vector at several offsets, random data at several scales,
/// and adversarial rows (zeros, constants, extreme magnitudes, lone outliers,
/// alternating signs, zero sub-blocks, exact grids and ties).
pub fn rows() -> Vec<Vec<f32>> {
    let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
    let mut v: Vec<Vec<f32>> = [0.0, 0.5, 1.0, 100.0]
        .iter()
        .map(|&o| cos_vector(4096, o))
        .collect();
    for (scale, shift) in [(1.0f32, 0.0f32), (0.01, 0.005), (300.0, -50.0), (1.0, 0.7)] {
        v.push((0..4096).map(|_| rng.uniform() * scale + shift).collect());
    }
    v.push((0..8192).map(|_| rng.spiky()).collect());
    const N: usize = 512;
    v.push(vec![0.0; N]);
    v.push(vec![-0.0; N]);
    for c in [
        1.0f32, -3.5, 1e-30, 1e-38, 1e6, -1e30, 65504.0, 7e4, -2.0e-7,
    ] {
        v.push(vec![c; N]);
    }
    for scale in [1e30f32, 1e20, 1e-20, 1e-30, 1e-37, 3e4, 1e5] {
        v.push((0..N).map(|_| rng.uniform() * scale).collect());
    }
    for (pos, spike) in [(0usize, 100.0f32), (37, -100.0), (255, 1e4), (300, -1e-3)] {
        let mut x: Vec<f32> = (0..N).map(|_| rng.uniform() * 0.01).collect();
        x[pos] = spike;
        v.push(x);
    }
    let mut x = vec![0.0f32; N];
    x[100] = 1.0;
    v.push(x);
    v.push(
        (0..N)
            .map(|i| if i % 2 == 0 { 1.0 } else { -1.0 })
            .collect(),
    );
    v.push(
        (0..N)
            .map(|i| (1 + i % 7) as f32 * if i % 2 == 0 { 1.0 } else { -1.0 })
            .collect(),
    );
    v.push(
        (0..N)
            .map(|i| if (i / 16) % 2 == 0 { 5.0 } else { -0.001 })
            .collect(),
    );
    let mut x = cos_vector(N, 3.0);
    x[..64].fill(0.0);
    x[256..256 + 32].fill(0.0);
    x[400..416].fill(0.0);
    v.push(x);
    let mut x = cos_vector(N, 7.0);
    x[..32].fill(0.0); // a zero first block (IQ4_NL's reused indices)
    x[64..96].fill(0.0);
    v.push(x);
    v.push((0..N).map(|i| i as f32).collect());
    v.push((0..N).map(|i| (i % 16) as f32 - 8.0).collect());
    v.push((0..N).map(|i| (i % 8) as f32 * 0.5 - 2.0).collect());
    v.push((0..N).map(|i| ((i % 33) as f32 - 16.0) * 0.25).collect());
    v.push((0..N).map(|i| (i % 4) as f32).collect());
    v.push(
        (0..N)
            .map(|i| KV[i % 16] as f32 * 0.01 * (1 + i / 32) as f32)
            .collect(),
    );
    v
}

/// The IQ4_NL table, for rows whose values lie exactly on it. (`super` is the
/// `quant` module here and the example's crate root there, which imports `iq4_nl`.)
const KV: [i8; 16] = super::iq4_nl::KVALUES_IQ4NL;
